/**
 * A segment job on a cluster of nodes sharing one PostgreSQL (docs/scale-out.md "One job on
 * several nodes"). Its life:
 *
 * 1. queued: a `jobs` row, as in one process (`enqueueClusterSegmentJob`);
 * 2. started by one node in one transaction: the job row taken with SKIP LOCKED, the plan fixed
 *    (definitions, order, `now`) into its input so every range evaluates the same thing, and the
 *    sandbox's profile ids split at their quantiles into `job_ranges` (`startQueuedSegmentJob`);
 * 3. each range evaluated by whichever node claims it, under a lease, its verdicts staged in
 *    `job_range_results` in the transaction that marks it DONE (`runRange`);
 * 4. ended by one node once every range is DONE: one transaction, under the sandbox's ingest
 *    lock (so streaming never decides on a membership it is writing), turns the staged verdicts
 *    into memberships, history and sizes and marks the job SUCCEEDED — or, for a job being
 *    cancelled, drops them and marks it CANCELLED (`endJob`).
 *
 * A node that dies in 2 or 4 leaves nothing (its transaction rolls back and the row lock goes
 * with its connection); one that dies in 3 loses its lease and the range runs again elsewhere.
 */
import type pg from 'pg';
import { Cancelled } from '../jobs/cancelled.js';
import type { LifecycleState } from '../lifecycle.js';
import { ingestLock } from '../pooled-ingest.js';
import { evaluateRangePg } from '../segment-jobs/pg-range-evaluation.js';
import { writeSegmentResultsPg } from '../segment-jobs/pg-segment-results.js';
import type { FailedDefinition, SegmentPlan } from '../segment-jobs/segment-evaluation.js';
import { type PlannedDefinition, planSegmentJob, type SegmentJobInput } from '../segment-jobs/segment-job.js';
import { PROGRESS_MS } from './progress-cadence.js';
import {
  completeRange,
  failJob,
  type HeldRange,
  LeaseLost,
  type LeaseState,
  releaseFailedRange,
  renewRange,
} from './range-queue.js';

/** The channel nodes LISTEN on: a job queued or started means work may be waiting. */
export const WORK_CHANNEL = 'segql_work';

/** How the cluster splits and runs segment jobs. */
export interface ClusterSettings {
  /** This node's name in leases (unique across the cluster). */
  node: string;
  /** How long a range stays a node's without a renewal. */
  leaseMs: number;
  /** About how many profiles a range holds: small enough to spread a job over the nodes, large enough that one statement per definition and range stays cheap. */
  rangeProfiles: number;
  /** The plan's chunk size (kept for parity with the single-process plan). */
  chunkSize: number;
}

/** A segment job's input on a cluster: the single-process input, plus the plan its start fixed. */
interface ClusterSegmentInput extends SegmentJobInput {
  plan?: SegmentPlan;
}

/** How a job came to be queued: by hand, or by a schedule's due time. */
export interface EnqueueOptions {
  trigger?: 'MANUAL' | 'SCHEDULE';
  scheduleId?: number | null;
  now?: number;
}

/**
 * Queues a segment job for the cluster and wakes the nodes (at commit, when `db` is inside a
 * transaction); returns its id.
 */
export async function enqueueClusterSegmentJob(
  db: Pick<pg.ClientBase, 'query'>,
  sandboxId: number,
  input: SegmentJobInput,
  options: EnqueueOptions = {},
): Promise<number> {
  const now = options.now ?? Date.now();
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO jobs (sandbox_id, kind, status, input, trigger, schedule_id, created_at, updated_at)
     VALUES ($1, 'SEGMENT', 'QUEUED', $2, $3, $4, $5, $5) RETURNING id`,
    [sandboxId, JSON.stringify(input), options.trigger ?? 'MANUAL', options.scheduleId ?? null, now],
  );
  await db.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, String(rows[0]!.id)]);
  return rows[0]!.id;
}

/**
 * Starts the oldest queued segment job, if any and if no other node is starting it: fixes its
 * plan and splits it into ranges, in one transaction. Returns the job's id.
 */
export async function startQueuedSegmentJob(pool: pg.Pool, settings: ClusterSettings): Promise<number | undefined> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ id: number; sandboxId: number; input: ClusterSegmentInput }>(
      `SELECT id, sandbox_id AS "sandboxId", input FROM jobs
       WHERE status = 'QUEUED' AND kind = 'SEGMENT'
         AND (after_job_id IS NULL OR EXISTS (SELECT 1 FROM jobs AS a WHERE a.id = jobs.after_job_id AND a.status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')))
       ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`,
    );
    const job = rows[0];
    if (!job) {
      await client.query('COMMIT');
      return undefined;
    }
    const now = job.input.now ?? job.input.at ?? Date.now();
    const plan = await planFromPg(client, job.id, job.sandboxId, job.input, now, settings.chunkSize);
    const ranges = await splitProfileIds(client, job.sandboxId, settings.rangeProfiles);
    if (ranges.length > 0) {
      await client.query(
        `INSERT INTO job_ranges (job_id, range_no, sandbox_id, lo, hi, status, updated_at)
         SELECT $1, n - 1, $2, lo, hi, 'QUEUED', $3 FROM unnest($4::bigint[], $5::bigint[]) WITH ORDINALITY AS t(lo, hi, n)`,
        [job.id, job.sandboxId, Date.now(), ranges.map((r) => r.lo), ranges.map((r) => r.hi)],
      );
    }
    const profiles = ranges.reduce((n, r) => n + r.count, 0);
    await client.query(
      `UPDATE jobs SET status = 'PROCESSING', input = $1, attempts = attempts + 1, started_at = $2, updated_at = $2,
         progress_done = 0, progress_total = $3
       WHERE id = $4`,
      [JSON.stringify({ ...job.input, now, plan }), Date.now(), profiles * plan.definitions.length, job.id],
    );
    await client.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, String(job.id)]);
    await client.query('COMMIT');
    return job.id;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** Reads what planning needs from PostgreSQL and plans as a single process would (planSegmentJob). */
async function planFromPg(
  db: pg.ClientBase,
  jobId: number,
  sandboxId: number,
  input: SegmentJobInput,
  now: number,
  chunkSize: number,
): Promise<SegmentPlan> {
  const ids = input.all
    ? (
        await db.query<{ id: number }>(
          'SELECT id FROM segment_definitions WHERE sandbox_id = $1 AND eval_batch ORDER BY id',
          [sandboxId],
        )
      ).rows.map((r) => r.id)
    : (input.definitionIds ?? []);
  const definitions = (
    await db.query<PlannedDefinition>(
      `SELECT id, name, audience_id AS "audienceId", expression_text AS "expressionText", version
       FROM segment_definitions WHERE sandbox_id = $1 AND id = ANY($2::bigint[])`,
      [sandboxId, ids],
    )
  ).rows;
  const audiences = (
    await db.query<{ id: number; state: LifecycleState }>(
      'SELECT id, lifecycle_state AS state FROM audiences WHERE sandbox_id = $1 AND id = ANY($2::bigint[])',
      [sandboxId, definitions.map((d) => d.audienceId)],
    )
  ).rows;
  const dependencies = new Map<number, number[]>();
  for (const r of (
    await db.query<{ definitionId: number; audienceId: number }>(
      `SELECT definition_id AS "definitionId", audience_id AS "audienceId" FROM definition_dependencies
       WHERE sandbox_id = $1 AND definition_id = ANY($2::bigint[]) ORDER BY audience_id`,
      [sandboxId, definitions.map((d) => d.id)],
    )
  ).rows) {
    dependencies.set(r.definitionId, [...(dependencies.get(r.definitionId) ?? []), r.audienceId]);
  }
  return planSegmentJob(
    {
      ids,
      definitions: new Map(definitions.map((d) => [d.id, d])),
      audienceStates: new Map(audiences.map((a) => [a.id, a.state])),
      dependencies,
    },
    { jobId, sandboxId, now, chunkSize },
  );
}

/**
 * The sandbox's profile ids cut at their quantiles into ranges of about `rangeProfiles` each
 * (ids have gaps where profiles were deleted, so cutting the id span evenly would not even out
 * the work). Profiles created after the cut have larger ids and wait for the next job, as they
 * would past a single process's read snapshot.
 */
async function splitProfileIds(
  db: pg.ClientBase,
  sandboxId: number,
  rangeProfiles: number,
): Promise<{ lo: number; hi: number; count: number }[]> {
  const { rows } = await db.query<{ n: number; lo: number | null; hi: number | null }>(
    'SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM profiles WHERE sandbox_id = $1',
    [sandboxId],
  );
  const { n, lo, hi } = rows[0]!;
  if (n === 0 || lo === null || hi === null) return [];
  const parts = Math.max(1, Math.ceil(n / Math.max(1, rangeProfiles)));
  if (parts === 1) return [{ lo, hi, count: n }];
  const fractions = Array.from({ length: parts - 1 }, (_, i) => (i + 1) / parts);
  const cuts = (
    await db.query<{ cuts: string[] | number[] }>(
      'SELECT percentile_disc($2::float8[]) WITHIN GROUP (ORDER BY id) AS cuts FROM profiles WHERE sandbox_id = $1',
      [sandboxId, fractions],
    )
  ).rows[0]!.cuts.map(Number);
  const out: { lo: number; hi: number; count: number }[] = [];
  let start = lo;
  for (const cut of [...cuts, hi]) {
    if (cut < start) continue;
    out.push({ lo: start, hi: cut, count: 0 });
    start = cut + 1;
  }
  // The counts only weigh the job's progress total; each range counts its own profiles when it runs.
  for (const r of out) r.count = Math.round(n / out.length);
  out[out.length - 1]!.count += n - out.reduce((s, r) => s + r.count, 0);
  return out;
}

/** A job's fixed plan, read once per job by each node that runs one of its ranges. */
export async function planOf(db: Pick<pg.ClientBase, 'query'>, jobId: number): Promise<SegmentPlan | undefined> {
  const { rows } = await db.query<{ input: ClusterSegmentInput }>('SELECT input FROM jobs WHERE id = $1', [jobId]);
  return rows[0]?.input.plan;
}

/** What became of a range this node ran. */
export type RangeEnd = 'done' | 'lost' | 'cancelled' | 'failed';

/**
 * Evaluates a range this node holds, renewing its lease every third of the lease time. When a
 * renewal finds the lease lost or the job being cancelled, the statement running for it is
 * cancelled on the server (pg_cancel_backend), so a lost range stops using the database at once.
 */
export async function runRange(
  pool: pg.Pool,
  range: HeldRange,
  plan: SegmentPlan,
  settings: ClusterSettings,
): Promise<RangeEnd> {
  const client = await pool.connect();
  const pid = (client as unknown as { processID: number }).processID;
  let progress = 0;
  let state = 'held' as LeaseState;
  let renewing: Promise<void> = Promise.resolve();
  let lastRenewal = performance.now();
  const renew = async () => {
    lastRenewal = performance.now();
    try {
      state = await renewRange(pool, range, settings.node, settings.leaseMs, progress);
    } catch {
      // A renewal that could not reach the database is tried again at the next beat; the lease decides.
      return;
    }
    if (state !== 'held') await pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => {});
  };
  const beat = setInterval(
    () => {
      renewing = renewing.then(renew);
    },
    Math.max(50, Math.floor(settings.leaseMs / 3)),
  );
  const started = performance.now();
  let clean = false;
  try {
    await evaluateRangePg(
      client,
      plan,
      { jobId: range.jobId, rangeNo: range.rangeNo, lo: range.lo, hi: range.hi },
      {
        cancelled: () => state !== 'held',
        progress: (done) => {
          progress = done;
          // Progress reaches subscribers as often as the single-process runner publishes it (at
          // most every PROGRESS_MS); a renewal carries it, and finds a cancel sooner than the beat.
          const now = performance.now();
          if (now - lastRenewal >= PROGRESS_MS) {
            lastRenewal = now;
            renewing = renewing.then(renew);
          }
        },
        commit: (tx, outcome) =>
          completeRange(tx, range, settings.node, {
            profiles: outcome.profiles,
            failed: outcome.failed,
            evaluationMs: performance.now() - started,
            units: outcome.profiles * plan.definitions.length,
          }),
      },
    );
    clean = true;
    return 'done';
  } catch (err) {
    if (state === 'lost' || err instanceof LeaseLost) return 'lost';
    if (state === 'cancelling' || err instanceof Cancelled) return 'cancelled';
    await releaseFailedRange(pool, range, settings.node, err instanceof Error ? err.message : String(err));
    return 'failed';
  } finally {
    clearInterval(beat);
    await renewing;
    // A connection a cancel may have reached (or that failed mid-transaction) is closed, not reused.
    client.release(!clean);
  }
}

/**
 * Ends a job whose ranges are all DONE (or that is being cancelled), unless another node is
 * ending it: the job row is taken with SKIP LOCKED and held for the one transaction that writes
 * its results, so exactly one node ends it and a node that dies doing so leaves it to the next.
 */
export async function endJob(pool: pg.Pool, jobId: number): Promise<'succeeded' | 'failed' | 'cancelled' | 'not yet'> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ status: string; input: ClusterSegmentInput; startedAt: number | null }>(
      `SELECT status, input, started_at AS "startedAt" FROM jobs
       WHERE id = $1 AND status IN ('PROCESSING', 'CANCELLING') FOR UPDATE SKIP LOCKED`,
      [jobId],
    );
    const job = rows[0];
    const plan = job?.input.plan;
    if (!job || !plan) {
      await client.query('ROLLBACK');
      return 'not yet';
    }
    const now = Date.now();
    if (job.status === 'CANCELLING') {
      await client.query(
        `WITH ended AS (UPDATE jobs SET status = 'CANCELLED', finished_at = $1, updated_at = $1 WHERE id = $2 RETURNING id),
           ranges AS (DELETE FROM job_ranges WHERE job_id = $2)
         DELETE FROM job_range_results WHERE job_id = $2`,
        [now, jobId],
      );
      await client.query('COMMIT');
      return 'cancelled';
    }
    const ranges = (
      await client.query<{
        status: string;
        lo: number;
        hi: number;
        profiles: number | null;
        failed: FailedDefinition[] | null;
        ms: number | null;
      }>('SELECT status, lo, hi, profiles, failed, evaluation_ms AS ms FROM job_ranges WHERE job_id = $1', [jobId])
    ).rows;
    if (ranges.some((r) => r.status !== 'DONE')) {
      await client.query('ROLLBACK');
      return 'not yet';
    }
    // A definition fails the same way in every range that reaches it; one entry each.
    const failed = [
      ...new Map(ranges.flatMap((r) => r.failed ?? []).map((f) => [f.definitionId, f] as const)).values(),
    ];
    if (failed.length > 0 && failed.length === plan.definitions.length) {
      await client.query('ROLLBACK');
      await failJob(
        pool,
        jobId,
        `Every definition failed: ${failed.map((f) => `definition ${f.definitionId}: ${f.reason}`).join('; ')}`,
      );
      return 'failed';
    }
    // The sandbox's ingest lock, which pooled ingests take with their streaming step (and the
    // expiry sweep): without it, streaming could decide on a membership from a status this write
    // is changing, or move one between its statements. Taken after the job row, which no ingest
    // locks, so the two orders cannot deadlock.
    const [kind, key] = ingestLock(plan.sandboxId);
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [kind, key]);
    const spans = ranges.map((r) => ({ lo: r.lo, hi: r.hi, profiles: r.profiles ?? 0 }));
    const startedAt = job.startedAt ?? now;
    const metrics = await writeSegmentResultsPg(
      client,
      plan,
      {
        spans,
        segmentationMs: ranges.reduce((n, r) => n + (r.ms ?? 0), 0),
        // writeSegmentResultsPg measures total time on the performance clock, from the job's start.
        started: performance.now() - (now - startedAt),
        failed,
      },
      pool,
    );
    const units = metrics.totalProfiles * plan.definitions.length;
    await client.query(
      `UPDATE jobs SET status = 'SUCCEEDED', result = $1, finished_at = $2, updated_at = $2, progress_done = $3, progress_total = $3,
         lease_owner = NULL, lease_until = NULL
       WHERE id = $4`,
      [JSON.stringify({ metrics, notes: plan.notes }), Date.now(), units, jobId],
    );
    await client.query('DELETE FROM job_ranges WHERE job_id = $1', [jobId]);
    await client.query('COMMIT');
    return 'succeeded';
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
