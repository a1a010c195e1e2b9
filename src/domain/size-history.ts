/**
 * How an audience's size moved: one row per segment job that evaluated it, written in the job's
 * finishing transaction (segment-evaluation.ts), read as `Audience.sizeHistory` and watched as
 * `audienceSizeChanged` once the job has committed.
 */
import { and, desc, eq, gt, lt, type SQL } from 'drizzle-orm';
import type { Connection } from '../db/index.js';
import { audienceSizeHistory } from '../db/schema.js';
import { badInput } from './errors.js';
import { type EventBus, topics } from './events.js';
import type { Job } from './jobs/job-store.js';
import { countRows, type Page, type PageArgs, pageQuery, toPage } from './paging.js';

export interface AudienceSizePoint {
  id: number;
  audienceId: number;
  jobId: number;
  /** The job's evaluation instant. */
  at: number;
  before: number;
  size: number;
}

/** An audience's sizes after each evaluation, newest first. */
export async function listAudienceSizeHistory(
  conn: Connection,
  sandboxId: number,
  audienceId: number,
  args: PageArgs,
): Promise<Page<AudienceSizePoint> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const conditions: SQL[] = [
    eq(audienceSizeHistory.sandboxId, sandboxId),
    eq(audienceSizeHistory.audienceId, audienceId),
  ];
  const base = [...conditions];
  if (query.after) conditions.push(lt(audienceSizeHistory.id, Number(query.after[0])));
  if (query.before) conditions.push(gt(audienceSizeHistory.id, Number(query.before[0])));
  const rows = conn.db
    .select()
    .from(audienceSizeHistory)
    .where(and(...conditions))
    .orderBy(query.direction === 'forward' ? desc(audienceSizeHistory.id) : audienceSizeHistory.id)
    .limit(query.fetch)
    .all();
  return {
    ...toPage(rows, query, (r) => [r.id]),
    totalCount: () => countRows(conn, audienceSizeHistory, and(...base)),
  };
}

/** The size changes a job wrote, one per audience it evaluated. */
export async function sizeChangesOfJob(
  conn: Connection,
  sandboxId: number,
  jobId: number,
): Promise<AudienceSizePoint[]> {
  return conn.db
    .select()
    .from(audienceSizeHistory)
    .where(and(eq(audienceSizeHistory.sandboxId, sandboxId), eq(audienceSizeHistory.jobId, jobId)))
    .orderBy(audienceSizeHistory.audienceId)
    .all();
}

/** How far a size moved, as a fraction of where it was; from 0 to anything else is an infinite move. */
export function changeFraction(before: number, after: number): number {
  if (before === after) return 0;
  return before === 0 ? Number.POSITIVE_INFINITY : Math.abs(after - before) / before;
}

export interface SizeChangeFilter {
  /** Only these audiences (null or empty: all of the sandbox). */
  audienceIds?: readonly number[] | null;
  /** Report a change only when the size moved by more than this fraction. */
  minChangeFraction: number;
}

/**
 * Size changes as segment jobs commit: after a job of the sandbox reaches SUCCEEDED (its results
 * are committed by then), the audiences whose size it moved by more than the fraction.
 */
export function watchAudienceSizeChanges(
  deps: { conn: Connection; bus: EventBus },
  sandboxId: number,
  filter: SizeChangeFilter,
  signal?: AbortSignal,
): AsyncGenerator<AudienceSizePoint> {
  const { minChangeFraction } = filter;
  if (!Number.isFinite(minChangeFraction) || minChangeFraction < 0) {
    throw badInput('minChangeFraction must be a number of at least 0 (0.1 is a move of 10 %)', 'minChangeFraction');
  }
  const only = filter.audienceIds && filter.audienceIds.length > 0 ? new Set(filter.audienceIds) : null;
  // Attached now, not at the first pull: a job that finishes right after subscribing is not missed.
  const jobs = deps.bus.subscribe<Job>(topics.sandboxJobs(sandboxId), signal);
  return (async function* () {
    try {
      for await (const { payload: job } of jobs) {
        if (job.kind !== 'SEGMENT' || job.status !== 'SUCCEEDED') continue;
        for (const point of await sizeChangesOfJob(deps.conn, sandboxId, job.id)) {
          if (only !== null && !only.has(point.audienceId)) continue;
          if (changeFraction(point.before, point.size) > minChangeFraction) yield point;
        }
      }
    } finally {
      jobs.close();
    }
  })();
}
