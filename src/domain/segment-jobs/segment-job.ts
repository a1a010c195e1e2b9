import type { Connection } from '../../db/index.js';
import type { Store } from '../../db/store.js';
import { audiencesByIds } from '../audiences.js';
import {
  definitionsByIds,
  dependenciesOf,
  dependencyOrder,
  requireDefinition,
  type SegmentDefinition,
} from '../definitions.js';
import { badInput } from '../errors.js';
import { defineJobKind } from '../jobs/job-kind.js';
import type { JobQueue } from '../jobs/job-queue.js';
import type { JobOf, NewJobOptions } from '../jobs/job-store.js';
import type { JobInputBase } from '../jobs/job-types.js';
import { isEvaluated, type LifecycleState } from '../lifecycle.js';
import type { SegmentMetrics, SegmentPlan } from './segment-evaluation.js';

/** What a caller asks a segment job to evaluate. */
interface SegmentJobRequest {
  /** Definitions to evaluate; or `all` for every batch-enabled one whose audience is evaluated. */
  definitionIds?: number[] | null;
  all?: boolean | null;
  /** The evaluation instant asked for; default: when the job starts. */
  at?: number | null;
}

/** What a segment job stores as its input. */
export interface SegmentJobInput extends JobInputBase {
  /** Null with `all`. */
  definitionIds: number[] | null;
  all: boolean;
  at: number | null;
}

/** How far the evaluation is: profiles × definitions. */
export interface SegmentProgress {
  done: number;
  total: number;
}

/** What a finished segment job keeps. */
export interface SegmentJobResult {
  metrics: SegmentMetrics;
  /** Remarks on the run, e.g. definitions skipped because their audience is INACTIVE. */
  notes: string[];
}

declare module '../jobs/job-types.js' {
  interface JobKindTypes {
    SEGMENT: { input: SegmentJobInput; progress: SegmentProgress; result: SegmentJobResult };
  }
}

export type SegmentJob = JobOf<'SEGMENT'>;

/** Validates and queues a segment job, waking the runner. */
export async function createSegmentJob(
  app: { conn: Store; jobs: JobQueue },
  sandboxId: number,
  request: SegmentJobRequest,
  options: NewJobOptions = {},
): Promise<SegmentJob> {
  const hasIds = request.definitionIds != null && request.definitionIds.length > 0;
  if (hasIds === Boolean(request.all)) {
    throw badInput('Give either segmentDefinitionIds (at least one) or all: true', 'input.segmentDefinitionIds');
  }
  return app.jobs.enqueue(
    app.conn,
    sandboxId,
    'SEGMENT',
    (_chain, tx) =>
      hasIds
        ? segmentJobInput(tx, sandboxId, request.definitionIds!, request.at ?? null)
        : { definitionIds: null, all: true, at: request.at ?? null },
    options,
  );
}

/**
 * The input of a segment job over these definitions, each checked to exist: for createSegmentJob,
 * and for a job that queues a segment job to run first (an export with evaluateFirst).
 */
export async function segmentJobInput(
  conn: Store,
  sandboxId: number,
  definitionIds: readonly number[],
  at: number | null,
): Promise<SegmentJobInput> {
  const ids = [...new Set(definitionIds)];
  for (const id of ids) await requireDefinition(conn, sandboxId, id);
  return { definitionIds: ids, all: false, at };
}

async function buildPlan(conn: Connection, job: SegmentJob, now: number, chunkSize: number): Promise<SegmentPlan> {
  const sandboxId = job.sandboxId;
  const ids = job.input.all
    ? (conn.sqlite
        .prepare('SELECT id FROM segment_definitions WHERE sandbox_id = ? AND eval_batch = 1 ORDER BY id')
        .pluck()
        .all(sandboxId) as number[])
    : (job.input.definitionIds ?? []);
  const definitions = await definitionsByIds(conn, sandboxId, ids);
  const audiences = await audiencesByIds(
    conn,
    sandboxId,
    [...definitions.values()].map((d) => d.audienceId),
  );
  const states = new Map([...audiences.values()].map((a) => [a.id, a.lifecycleState]));
  const deps = await dependenciesOf(conn, sandboxId, [...definitions.keys()]);
  return planSegmentJob(
    { ids, definitions, audienceStates: states, dependencies: deps },
    {
      jobId: job.id,
      sandboxId,
      now,
      chunkSize,
    },
  );
}

/** A definition as planning needs it (either database's row gives this much). */
export type PlannedDefinition = Pick<SegmentDefinition, 'id' | 'name' | 'audienceId' | 'expressionText' | 'version'>;

/** What planning reads, from whichever database holds the sandbox. */
export interface PlanSources {
  /** The definitions asked for, in the order asked. */
  ids: readonly number[];
  definitions: ReadonlyMap<number, PlannedDefinition>;
  /** Audience id → its lifecycle state (absent: the audience is gone). */
  audienceStates: ReadonlyMap<number, LifecycleState>;
  /** Definition id → the audiences it names with inSegment. */
  dependencies: ReadonlyMap<number, number[]>;
}

/**
 * A segment job's plan from what the store holds: the definitions still there whose audience is
 * evaluated, in inSegment dependency order, with a note for each one skipped. The SQLite job
 * handler and the cluster's planner (which reads PostgreSQL) both end here.
 */
export function planSegmentJob(
  sources: PlanSources,
  options: { jobId: number; sandboxId: number; now: number; chunkSize: number },
): SegmentPlan {
  const notes: string[] = [];
  const selected: PlannedDefinition[] = [];
  for (const id of sources.ids) {
    const def = sources.definitions.get(id);
    if (!def) {
      notes.push(`Definition ${id} was deleted before the job ran; skipped`);
      continue;
    }
    const state = sources.audienceStates.get(def.audienceId);
    if (!state || !isEvaluated(state)) {
      notes.push(`"${def.name}" skipped: its audience is ${state ?? 'gone'}`);
      continue;
    }
    selected.push(def);
  }
  const deps = new Map(selected.map((d) => [d.id, sources.dependencies.get(d.id) ?? []]));
  return {
    ...options,
    notes,
    definitions: dependencyOrder(selected, deps).map((d) => ({
      definitionId: d.id,
      audienceId: d.audienceId,
      expressionText: d.expressionText,
      version: d.version,
    })),
    referencedAudienceIds: [...new Set([...deps.values()].flat())],
  };
}

/**
 * The plan for evaluating `definitions` (all evaluated): for the batch benchmark, which builds
 * the plan the job handler would.
 */
export async function orderedPlan(
  conn: Store,
  sandboxId: number,
  definitions: SegmentDefinition[],
  options: { jobId: number; now: number; chunkSize: number; notes: string[] },
): Promise<SegmentPlan> {
  const deps = await dependenciesOf(
    conn,
    sandboxId,
    definitions.map((d) => d.id),
  );
  const plan = planSegmentJob(
    {
      ids: definitions.map((d) => d.id),
      definitions: new Map(definitions.map((d) => [d.id, d])),
      audienceStates: new Map(definitions.map((d) => [d.audienceId, 'PUBLISHED'])),
      dependencies: deps,
    },
    { jobId: options.jobId, sandboxId, now: options.now, chunkSize: options.chunkSize },
  );
  return { ...plan, notes: [...options.notes, ...plan.notes] };
}

// Registered with the runner as this module loads (src/domain/app.ts loads it).
defineJobKind({
  kind: 'SEGMENT',
  task: new URL('./segment-evaluation.ts', import.meta.url),
  timeoutMs: 10 * 60_000,
  plan: (job, now, { conn, limits }): Promise<SegmentPlan> => buildPlan(conn, job, now, limits.segmentChunkSize),
});
