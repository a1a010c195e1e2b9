/**
 * An export job on a cluster of nodes sharing one PostgreSQL and one data directory
 * (docs/scale-out.md "Jobs across nodes"). Unlike a segment job it is not split: one node runs
 * it whole, as one process would, and the queue's guarantees come from the job row itself:
 *
 * 1. queued: a `jobs` row, with its dataset created in the same transaction when it is new
 *    (`enqueueClusterExportJob`, checked by the single-process rules, export-job.ts; two queuing
 *    into the same new dataset at once take turns, so both use the one the first created);
 * 2. claimed by one node with `FOR UPDATE SKIP LOCKED`, under a lease (`jobs.lease_owner`,
 *    `lease_until`, and `attempts` as the lease's number) that the node renews every third of
 *    the lease time while it works (`claimExportJob`, `runClusterExport`);
 * 3. read in one REPEATABLE READ transaction (one snapshot for the whole export) and written by
 *    the single-process export's own writer, under temporary names that carry the attempt;
 * 4. finished in one transaction that names the lease: the job SUCCEEDED with its result, the
 *    dataset's files, marks and current export recorded, and the files renamed last.
 *
 * A node that stops renewing (killed, paused, cut off) loses the job once its lease has passed:
 * any node's sweep puts it back in the queue (`requeueExpiredExports`), another node re-runs it
 * from scratch after removing what the dead attempt left, and the old holder's final write finds
 * its lease gone and records nothing. A job lost MAX_RANGE_ATTEMPTS times fails, as ranges do.
 */
import { mkdirSync } from 'node:fs';
import type pg from 'pg';
import { datasetDir } from '../exports/datasets.js';
import {
  type ExportJobInput,
  type ExportJobRequest,
  exportPlanOf,
  removeUnfinishedFiles,
  resolveExportRequest,
} from '../exports/export-job.js';
import type { ExportPlan } from '../exports/export-plan.js';
import { ExportWriter } from '../exports/export-writer.js';
import { removeOtherRecordFiles } from '../exports/record-index.js';
import { Cancelled } from '../jobs/cancelled.js';
import { type EnqueueOptions, enqueueClusterSegmentJob, WORK_CHANNEL } from './cluster-segment-job.js';
import {
  cancelHeldJob,
  claimLeasedJob,
  failHeldJob,
  type HeldJob,
  LeaseBeat,
  renewJobLease,
  requeueExpiredJobs,
} from './leased-job.js';
import { countExportRowsPg, exportRowsPg, insertDatasetPg, readExportFactsPg } from './pg-export-reads.js';
import { LeaseLost, type LeaseState } from './range-queue.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** How a node runs exports. */
export interface ExportSettings {
  /** This node's name in leases. */
  node: string;
  leaseMs: number;
  /** The data directory the dataset folders live under: the same for every node (one machine, or a shared mount). */
  dataDir: string;
  /** Rows read per statement (a keyset page). */
  pageRows: number;
  /** Test-only: a pause after each page, so a test can kill a node mid-export. Zero otherwise. */
  testOnlyPageDelayMs: number;
}

/** An export job this node holds: attempt `attempts` is its lease's number. */
export type HeldExport = HeldJob<ExportJobInput & { now: number }>;

/**
 * Checks an export request as createExportJob does, and queues it for the cluster, in the
 * caller's transaction (`db` must be inside one): a dataset named but not there yet is created,
 * and with `evaluateFirst` a segment job over the audiences' definitions is queued first, both
 * pinned to one instant. Returns the export job's id; the nodes are woken at commit.
 */
export async function enqueueClusterExportJob(
  db: Queryable,
  sandboxId: number,
  request: ExportJobRequest,
  options: EnqueueOptions = {},
): Promise<number> {
  const now = options.now ?? Date.now();
  const name = request.destination?.datasetName;
  if (name != null) await lockDatasetName(db, sandboxId, name);
  const facts = await readExportFactsPg(db, sandboxId, {
    audienceIds: (request.audiences ?? []).map((a) => a.audienceId),
    datasetId: request.destination?.datasetId,
    datasetName: request.destination?.datasetName,
  });
  const { input, dataset, datasetName, definitionIds } = await resolveExportRequest(facts, request);
  const target = dataset ?? (await insertDatasetPg(db, sandboxId, datasetName!, input.format, now));
  let afterJobId: number | null = null;
  let stored: ExportJobInput = { ...input, datasetId: target.id };
  if (input.evaluateFirst) {
    const at = input.at ?? now;
    // Started by the same trigger, but not one of a schedule's runs: the export is.
    afterJobId = await enqueueClusterSegmentJob(
      db,
      sandboxId,
      { definitionIds, all: false, at },
      { trigger: options.trigger, now },
    );
    stored = { ...stored, at };
  }
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO jobs (sandbox_id, kind, status, input, trigger, schedule_id, after_job_id, created_at, updated_at)
     VALUES ($1, 'EXPORT', 'QUEUED', $2, $3, $4, $5, $6, $6) RETURNING id`,
    [sandboxId, JSON.stringify(stored), options.trigger ?? 'MANUAL', options.scheduleId ?? null, afterJobId, now],
  );
  await db.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, String(rows[0]!.id)]);
  return rows[0]!.id;
}

/**
 * Makes two transactions that find-or-create the dataset `name` take turns, as SQLite's one
 * writer makes them: held until the caller's transaction ends, so the second reads the dataset
 * the first created (and checks its format against it) instead of failing on the unique name
 * index. Keyed by sandbox and name as the rules trim it; a hash collision only makes two
 * unrelated names wait for each other.
 */
async function lockDatasetName(db: Queryable, sandboxId: number, name: string): Promise<void> {
  await db.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`dataset:${sandboxId}:${name.trim()}`]);
}

/** Takes the oldest queued export whose first job (if any) has ended, for `node` (leased-job.ts). */
export function claimExportJob(
  db: Queryable,
  node: string,
  leaseMs: number,
  now = Date.now(),
): Promise<HeldExport | undefined> {
  return claimLeasedJob(db, 'EXPORT', node, leaseMs, now);
}

/** Extends the lease of an export `node` holds and records its progress (leased-job.ts). */
export function renewExportLease(
  db: Queryable,
  held: HeldExport,
  node: string,
  leaseMs: number,
  progress: { done: number; total: number | null },
  now = Date.now(),
): Promise<LeaseState> {
  return renewJobLease(db, held, node, leaseMs, progress, now);
}

/** Puts every export whose lease has passed back in the queue (leased-job.ts), with its dataset. */
export async function requeueExpiredExports(
  db: Queryable,
  now = Date.now(),
): Promise<{ jobId: number; status: 'QUEUED' | 'FAILED' | 'CANCELLED'; sandboxId: number; datasetId: number }[]> {
  return (await requeueExpiredJobs<ExportJobInput>(db, 'EXPORT', 'export', now)).map(
    ({ jobId, status, sandboxId, input }) => ({ jobId, status, sandboxId, datasetId: Number(input.datasetId) }),
  );
}

/** What became of an export this node held. */
export type ExportEnd = 'succeeded' | 'failed' | 'cancelled' | 'lost';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs an export this node holds to its end, renewing the lease every third of the lease time.
 * When a renewal finds the lease lost or a cancel asked for, the statement running for the
 * export is cancelled on the server (pg_cancel_backend) and the writing stops at the next page.
 */
export async function runClusterExport(pool: pg.Pool, held: HeldExport, settings: ExportSettings): Promise<ExportEnd> {
  const unmet = await unmetFirstJob(pool, held.afterJobId);
  if (unmet) return (await failHeldJob(pool, held, settings.node, unmet)) ? 'failed' : 'lost';

  const started = performance.now();
  const client = await pool.connect();
  const progress = { done: 0, total: null as number | null };
  const beat = new LeaseBeat(pool, client, held, settings.node, settings.leaseMs, () => progress);
  const checkLease = () => beat.check();

  let writer: ExportWriter | undefined;
  let plan: ExportPlan | undefined;
  let clean = false;
  try {
    // One snapshot for the plan and every row, as one SQLite read transaction gives the single-process export.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const facts = await readExportFactsPg(client, held.sandboxId, {
      audienceIds: held.input.audiences.map((a) => a.audienceId),
      datasetId: held.input.datasetId,
    });
    plan = await exportPlanOf(
      facts,
      { id: held.jobId, sandboxId: held.sandboxId, input: held.input },
      held.input.now,
      settings.dataDir,
    );
    mkdirSync(plan.dir, { recursive: true });
    // What a dead attempt left: its temporary files, and files it renamed before its final write failed.
    removeUnfinishedFiles(plan.dir, held.jobId);
    progress.total = await countExportRowsPg(client, plan);
    // The total at once, rather than at the first beat (a third of the lease away).
    beat.renewNow();
    writer = new ExportWriter(plan, `${held.jobId}-${held.attempts}`);
    for (const audience of plan.audiences) {
      writer.beginAudience(audience);
      for await (const page of exportRowsPg(client, plan, audience, settings.pageRows)) {
        checkLease();
        for (const row of page) writer.writeRow(row);
        progress.done = writer.written;
        beat.progressed();
        if (settings.testOnlyPageDelayMs > 0) await sleep(settings.testOnlyPageDelayMs);
      }
      writer.endAudience();
    }
    writer.end();
    await client.query('COMMIT');
    // The final write must not meet a cancel meant for the reading: the beat stops first. The
    // lease is still checked, by the write itself.
    await beat.stop();
    checkLease();
    await finishExport(client, held, settings.node, plan, writer, started);
    clean = true;
    removeOtherRecordFiles(plan.dir, held.jobId);
    return 'succeeded';
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    await beat.stop();
    // Only this attempt's files: another attempt may be writing beside them.
    writer?.removeTemporaryFiles();
    if (beat.lease === 'lost' || err instanceof LeaseLost) return 'lost';
    if (beat.lease === 'cancelling' || err instanceof Cancelled) {
      await cancelHeldJob(pool, held, settings.node);
      return 'cancelled';
    }
    const reason = err instanceof Error ? err.message : String(err);
    return (await failHeldJob(pool, held, settings.node, reason)) ? 'failed' : 'lost';
  } finally {
    await beat.stop();
    // A connection a cancel may have reached (or that failed mid-transaction) is closed, not reused.
    client.release(!clean);
  }
}

/**
 * The final write, in one transaction: the job SUCCEEDED with its result if this node still
 * holds its lease (else LeaseLost and nothing is written), the files, marks and current export
 * of the dataset recorded, and the files renamed last, so nothing has its final name unless the
 * transaction got that far.
 */
async function finishExport(
  client: pg.PoolClient,
  held: HeldExport,
  node: string,
  plan: ExportPlan,
  writer: ExportWriter,
  started: number,
): Promise<void> {
  await client.query('BEGIN');
  const finishedAt = Date.now();
  const { files, manifest, result } = writer.complete(started, finishedAt);
  const { rowCount } = await client.query(
    `UPDATE jobs SET status = 'SUCCEEDED', result = $1, finished_at = $2, updated_at = $2, progress_done = $3,
       progress_total = $3, lease_owner = NULL, lease_until = NULL
     WHERE id = $4 AND status = 'PROCESSING' AND lease_owner = $5 AND attempts = $6`,
    [JSON.stringify(result), finishedAt, writer.written, held.jobId, node, held.attempts],
  );
  if (rowCount !== 1) {
    // A cancel that reached the job before this write wins, as in one process (jobs/task.ts):
    // the job ends CANCELLED now rather than when its lease runs out.
    const { rows } = await client.query<{ status: string }>(
      'SELECT status FROM jobs WHERE id = $1 AND lease_owner = $2 AND attempts = $3',
      [held.jobId, node, held.attempts],
    );
    throw rows[0]?.status === 'CANCELLING' ? new Cancelled() : new LeaseLost(held);
  }
  const all = [...files, manifest];
  await client.query(
    `INSERT INTO dataset_files (dataset_id, name, job_id, rows, bytes, sha256, created_at)
     SELECT $1, name, $2, rows, bytes, sha256, $3
     FROM unnest($4::text[], $5::bigint[], $6::bigint[], $7::text[]) AS f(name, rows, bytes, sha256)
     ON CONFLICT (dataset_id, name) DO UPDATE SET job_id = excluded.job_id, rows = excluded.rows,
       bytes = excluded.bytes, sha256 = excluded.sha256, created_at = excluded.created_at`,
    [
      plan.datasetId,
      plan.jobId,
      finishedAt,
      all.map((f) => f.name),
      all.map((f) => f.rows),
      all.map((f) => f.bytes),
      all.map((f) => f.sha256),
    ],
  );
  await client.query('UPDATE datasets SET current_job_id = $1, last_export_at = $2 WHERE id = $3', [
    plan.jobId,
    plan.now,
    plan.datasetId,
  ]);
  // The dataset's marks are its current export's only (RecordMarks.save does the same in SQLite).
  await client.query('DELETE FROM dataset_record_marks WHERE dataset_id = $1', [plan.datasetId]);
  const { marks } = writer.marks;
  await client.query(
    `INSERT INTO dataset_record_marks (dataset_id, job_id, row, file, "offset")
     SELECT $1, $2, row, file, "offset" FROM unnest($3::bigint[], $4::text[], $5::bigint[]) AS m(row, file, "offset")`,
    [plan.datasetId, plan.jobId, marks.map((m) => m.row), marks.map((m) => m.file), marks.map((m) => m.offset)],
  );
  writer.publish();
  await client.query('COMMIT');
}

/** Why an export cannot run because the job queued first for it did not succeed; undefined when it may. */
async function unmetFirstJob(db: Queryable, afterJobId: number | null): Promise<string | undefined> {
  if (afterJobId == null) return undefined;
  const first = (
    await db.query<{ kind: string; status: string; error: string | null }>(
      'SELECT kind, status, error FROM jobs WHERE id = $1',
      [afterJobId],
    )
  ).rows[0];
  if (first?.status === 'SUCCEEDED') return undefined;
  if (!first) return 'The job queued to run first for it was deleted; nothing was done';
  const why = first.error ? `: ${first.error}` : '';
  return `The ${first.kind} job queued to run first for it ended ${first.status}${why}; nothing was done`;
}

/** Removes what the attempts of an export that will not run again left in its dataset's folder. */
export function removeAbandonedExportFiles(dataDir: string, sandboxId: number, datasetId: number, jobId: number): void {
  removeUnfinishedFiles(datasetDir(dataDir, sandboxId, datasetId), jobId);
}
