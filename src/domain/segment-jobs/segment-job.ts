import type { App } from '../app.js';
import { audiencesByIds } from '../audiences.js';
import { definitionsByIds, dependenciesOf, requireDefinition, type SegmentDefinition } from '../definitions.js';
import { badInput } from '../errors.js';
import { JobCancelled, type JobContext, type JobHandler } from '../jobs/job-runner.js';
import { insertJob, type Job, updateJob } from '../jobs/job-store.js';
import { startModuleWorker } from '../jobs/worker-thread.js';
import { isEvaluated } from '../lifecycle.js';
import type { SegmentPlan } from './segment-evaluation.js';
import type { SegmentWorkerData, SegmentWorkerMessage } from './segment-worker.js';

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
  return app.conn.sqlite.transaction(() => {
    const ids = hasIds ? [...new Set(input.definitionIds)] : null;
    for (const id of ids ?? []) requireDefinition(app.conn, sandboxId, id);
    return insertJob(
      app.conn,
      sandboxId,
      'SEGMENT',
      { definitionIds: ids, all: Boolean(input.all), at: input.at ?? null },
      options,
    );
  })();
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

function buildPlan(app: App, job: Job, now: number): SegmentPlan {
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
  const deps = dependenciesOf(
    conn,
    sandboxId,
    selected.map((d) => d.id),
  );
  const ordered = dependencyOrder(selected, deps);
  return {
    jobId: job.id,
    sandboxId,
    now,
    definitions: ordered.map((d) => ({
      definitionId: d.id,
      audienceId: d.audienceId,
      expressionText: d.expressionText,
    })),
    referencedAudienceIds: [...new Set([...deps.values()].flat())],
    chunkSize: app.limits.segmentChunkSize,
    notes,
  };
}

/** Runs the evaluation in a worker thread and relays its progress and the cancel flag. */
function runInWorker(ctx: JobContext, plan: SegmentPlan): Promise<void> {
  const cancelFlag = new SharedArrayBuffer(4);
  const flag = new Int32Array(cancelFlag);
  const data: SegmentWorkerData = { dbFile: ctx.app.conn.sqlite.name, plan, cancelFlag };
  const worker = startModuleWorker(new URL('./segment-worker.ts', import.meta.url), data);
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      ctx.signal.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => {
      Atomics.store(flag, 0, 1);
      // A worker stuck in one long statement cannot see the flag; stop it after a grace period.
      setTimeout(() => {
        if (!settled) void worker.terminate();
      }, 5000).unref();
    };
    ctx.signal.addEventListener('abort', onAbort);
    worker.on('message', (m: SegmentWorkerMessage) => {
      if (m.type === 'progress') ctx.progress(m.done, m.total);
      else if (m.type === 'done') settle(resolve);
      else if (m.type === 'cancelled') settle(() => reject(new JobCancelled()));
      else settle(() => reject(new Error(m.message)));
    });
    worker.on('error', (err) => settle(() => reject(err)));
    worker.on('exit', (code) => settle(() => reject(new Error(`segment worker stopped (exit code ${code})`))));
  });
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
    await runInWorker(ctx, plan);
    return { finalized: true };
  },
};
