/**
 * How an audience's size moved: one row per segment job that evaluated it, written in the job's
 * finishing transaction (segment-evaluation.ts), read as `Audience.sizeHistory` and watched as
 * `audienceSizeChanged` once the job has committed.
 */

import { statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import { badInput } from './errors.js';
import { type EventBus, topics } from './events.js';
import type { Job } from './jobs/job-store.js';
import { integerBounds, type Page, type PageArgs, pageQuery, toPage } from './paging.js';

export interface AudienceSizePoint {
  id: number;
  audienceId: number;
  jobId: number;
  /** The job's evaluation instant. */
  at: number;
  before: number;
  size: number;
}

const COLUMNS = 'id, sandbox_id AS "sandboxId", audience_id AS "audienceId", job_id AS "jobId", "at", "before", "size"';

// Both bounds are always given: a missing cursor is a bound every id passes.
const PAGE_WHERE = (p: (n: number) => string) =>
  `sandbox_id = ${p(1)} AND audience_id = ${p(2)} AND id < ${p(3)} AND id > ${p(4)}`;
const sq = () => '?';
const pg = (n: number) => `$${n}`;

const q = statements('size-history', {
  /** Newest first: `first`/`after`. Parameters: sandbox, audience, below id, above id, limit. */
  pageForward: {
    sqlite: `SELECT ${COLUMNS} FROM audience_size_history WHERE ${PAGE_WHERE(sq)} ORDER BY id DESC LIMIT ?`,
    postgres: `SELECT ${COLUMNS} FROM audience_size_history WHERE ${PAGE_WHERE(pg)} ORDER BY id DESC LIMIT $5`,
  },
  /** Oldest first: `last`/`before`; the same parameters. */
  pageBackward: {
    sqlite: `SELECT ${COLUMNS} FROM audience_size_history WHERE ${PAGE_WHERE(sq)} ORDER BY id LIMIT ?`,
    postgres: `SELECT ${COLUMNS} FROM audience_size_history WHERE ${PAGE_WHERE(pg)} ORDER BY id LIMIT $5`,
  },
  count: {
    sqlite: 'SELECT count(*) AS n FROM audience_size_history WHERE sandbox_id = ? AND audience_id = ?',
    postgres: 'SELECT count(*) AS n FROM audience_size_history WHERE sandbox_id = $1 AND audience_id = $2',
  },
  ofJob: {
    sqlite: `SELECT ${COLUMNS} FROM audience_size_history WHERE sandbox_id = ? AND job_id = ? ORDER BY audience_id`,
    postgres: `SELECT ${COLUMNS} FROM audience_size_history WHERE sandbox_id = $1 AND job_id = $2 ORDER BY audience_id`,
  },
});

/** An audience's sizes after each evaluation, newest first. */
export async function listAudienceSizeHistory(
  conn: Store,
  sandboxId: number,
  audienceId: number,
  args: PageArgs,
): Promise<Page<AudienceSizePoint> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const { below, above } = integerBounds(query);
  const rows = await conn.all<AudienceSizePoint>(query.direction === 'forward' ? q.pageForward : q.pageBackward, [
    sandboxId,
    audienceId,
    below,
    above,
    query.fetch,
  ]);
  return {
    ...toPage(rows, query, (r) => [r.id]),
    totalCount: async () => (await conn.get<{ n: number }>(q.count, [sandboxId, audienceId]))!.n,
  };
}

/** The size changes a job wrote, one per audience it evaluated. */
export async function sizeChangesOfJob(conn: Store, sandboxId: number, jobId: number): Promise<AudienceSizePoint[]> {
  return conn.all<AudienceSizePoint>(q.ofJob, [sandboxId, jobId]);
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
  deps: { conn: Store; bus: EventBus },
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
