import type { Connection } from '../../db/index.js';
import type { App } from '../app.js';
import { audiencesByIds } from '../audiences.js';
import { definitionsByIds, dependenciesOf, requireDefinition, type SegmentDefinition } from '../definitions.js';
import { badInput } from '../errors.js';
import { JobCancelled, type JobHandler } from '../jobs/job-runner.js';
import { insertJob, type Job, updateJob } from '../jobs/job-store.js';
import { TaskCancelledError } from '../jobs/worker-thread.js';
import { isEvaluated } from '../lifecycle.js';
import type { SegmentPlan } from './segment-evaluation.js';

export interface SegmentJobInput {
  /** Definitions to evaluate; or `all` for every batch-enabled one whose audience is evaluated. */
  definitionIds?: number[] | null;
  all?: boolean | null;
  /** The evaluation instant asked for; default: when the job starts. */
  at?: number | null;
  /** Fixed at first start and reused by a re-run after a crash. */
  now?: number;
}

/** Validates and queues a segment job; the runner picks it up. */
export function createSegmentJob(
  app: App,
  sandboxId: number,
  input: SegmentJobInput,
  options: { trigger?: Job['trigger']; scheduleId?: number | null } = {},
): Job {
  const hasIds = input.definitionIds != null && input.definitionIds.length > 0;
  if (hasIds === Boolean(input.all)) {
    throw badInput('Give either segmentDefinitionIds (at least one) or all: true', 'input.segmentDefinitionIds');
  }
  return app.conn.sqlite
    .transaction(() => {
      const ids = hasIds ? [...new Set(input.definitionIds)] : null;
      for (const id of ids ?? []) requireDefinition(app.conn, sandboxId, id);
      return insertJob(
        app.conn,
        sandboxId,
        'SEGMENT',
        { definitionIds: ids, all: Boolean(input.all), at: input.at ?? null },
        options,
      );
    })
    .immediate();
}

/** Orders definitions so each comes after the definitions whose audiences it names through inSegment. */
export function dependencyOrder(definitions: SegmentDefinition[], deps: Map<number, number[]>): SegmentDefinition[] {
  const byAudience = new Map(definitions.map((d) => [d.audienceId, d]));
  const ordered: SegmentDefinition[] = [];
  const state = new Map<number, 'visiting' | 'done'>();
  const visit = (d: SegmentDefinition) => {
    if (state.get(d.id) === 'done') return;
    if (state.get(d.id) === 'visiting') throw new Error(`inSegment cycle through definition "${d.name}"`);
    state.set(d.id, 'visiting');
    for (const audienceId of deps.get(d.id) ?? []) {
      const dep = byAudience.get(audienceId);
      if (dep) visit(dep);
    }
    state.set(d.id, 'done');
    ordered.push(d);
  };
  for (const d of [...definitions].sort((a, b) => a.id - b.id)) visit(d);
  return ordered;
}

function buildPlan(app: Pick<App, 'conn' | 'limits'>, job: Job, now: number): SegmentPlan {
  const { conn } = app;
  const input = job.input as SegmentJobInput;
  const sandboxId = job.sandboxId;
  const notes: string[] = [];
  const ids = input.all
    ? (conn.sqlite
        .prepare('SELECT id FROM segment_definitions WHERE sandbox_id = ? AND eval_batch = 1 ORDER BY id')
        .pluck()
        .all(sandboxId) as number[])
    : (input.definitionIds ?? []);
  const found = definitionsByIds(conn, sandboxId, ids);
  const audiences = audiencesByIds(
    conn,
    sandboxId,
    [...found.values()].map((d) => d.audienceId),
  );
  const selected: SegmentDefinition[] = [];
  for (const id of ids) {
    const def = found.get(id);
    if (!def) {
      notes.push(`Definition ${id} was deleted before the job ran; skipped`);
      continue;
    }
    const audience = audiences.get(def.audienceId);
    if (!audience || !isEvaluated(audience.lifecycleState)) {
      notes.push(`"${def.name}" skipped: its audience is ${audience?.lifecycleState ?? 'gone'}`);
      continue;
    }
    selected.push(def);
  }
  return orderedPlan(conn, sandboxId, selected, { jobId: job.id, now, chunkSize: app.limits.segmentChunkSize, notes });
}

/**
 * The plan for evaluating `definitions`: in inSegment dependency order, with every audience
 * they name (inside the plan or not). The job handler and the batch benchmark both use it.
 */
export function orderedPlan(
  conn: Connection,
  sandboxId: number,
  definitions: SegmentDefinition[],
  options: { jobId: number; now: number; chunkSize: number; notes: string[] },
): SegmentPlan {
  const deps = dependenciesOf(
    conn,
    sandboxId,
    definitions.map((d) => d.id),
  );
  return {
    ...options,
    sandboxId,
    definitions: dependencyOrder(definitions, deps).map((d) => ({
      definitionId: d.id,
      audienceId: d.audienceId,
      expressionText: d.expressionText,
    })),
    referencedAudienceIds: [...new Set([...deps.values()].flat())],
  };
}

export const segmentJobHandler: JobHandler = {
  kind: 'SEGMENT',
  timeoutMs: 10 * 60_000,
  async run(ctx) {
    const { job, app } = ctx;
    const input = job.input as SegmentJobInput;
    const now = input.now ?? input.at ?? job.startedAt ?? Date.now();
    if (input.now === undefined) updateJob(app.conn, job.id, { input: JSON.stringify({ ...input, now }) });
    const plan = buildPlan(app, job, now);
    try {
      await app.workers.run(
        'SEGMENT',
        'segment',
        app.conn.sqlite.name,
        plan,
        (p: { done: number; total: number }) => ctx.progress(p.done, p.total),
        ctx.signal,
      );
    } catch (err) {
      if (err instanceof TaskCancelledError) throw new JobCancelled();
      throw err;
    }
    return { finalized: true };
  },
};
