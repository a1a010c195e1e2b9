import type { Connection } from '../../db/index.js';
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
import type { JobRunner } from '../jobs/job-runner.js';
import type { JobOf, NewJobOptions } from '../jobs/job-store.js';
import type { JobInputBase } from '../jobs/job-types.js';
import { isEvaluated } from '../lifecycle.js';
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
export function createSegmentJob(
  app: { conn: Connection; jobs: JobRunner },
  sandboxId: number,
  request: SegmentJobRequest,
  options: NewJobOptions = {},
): SegmentJob {
  const hasIds = request.definitionIds != null && request.definitionIds.length > 0;
  if (hasIds === Boolean(request.all)) {
    throw badInput('Give either segmentDefinitionIds (at least one) or all: true', 'input.segmentDefinitionIds');
  }
  return app.jobs.enqueue(
    sandboxId,
    'SEGMENT',
    () =>
      hasIds
        ? segmentJobInput(app.conn, sandboxId, request.definitionIds!, request.at ?? null)
        : { definitionIds: null, all: true, at: request.at ?? null },
    options,
  );
}

/**
 * The input of a segment job over these definitions, each checked to exist: for createSegmentJob,
 * and for a job that queues a segment job to run first (an export with evaluateFirst).
 */
export function segmentJobInput(
  conn: Connection,
  sandboxId: number,
  definitionIds: readonly number[],
  at: number | null,
): SegmentJobInput {
  const ids = [...new Set(definitionIds)];
  for (const id of ids) requireDefinition(conn, sandboxId, id);
  return { definitionIds: ids, all: false, at };
}

function buildPlan(conn: Connection, job: SegmentJob, now: number, chunkSize: number): SegmentPlan {
  const input = job.input;
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
  return orderedPlan(conn, sandboxId, selected, { jobId: job.id, now, chunkSize, notes });
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
      version: d.version,
    })),
    referencedAudienceIds: [...new Set([...deps.values()].flat())],
  };
}

// Registered with the runner as this module loads (src/domain/app.ts loads it).
defineJobKind({
  kind: 'SEGMENT',
  task: new URL('./segment-evaluation.ts', import.meta.url),
  timeoutMs: 10 * 60_000,
  plan: (job, now, { conn, limits }): SegmentPlan => buildPlan(conn, job, now, limits.segmentChunkSize),
});
