/**
 * Ingestion runs on a cluster node (docs/scale-out.md "Jobs across nodes", step 4): a queued
 * INGESTION job is claimed whole by one node (cluster-whole-jobs.ts), which reads the staged
 * upload from the data directory every node shares (as exports write there), and writes the
 * list, the memberships and the per-row errors as the SQLite task does
 * (external-audiences/ingestion-task.ts): the rules of the rows are that task's own
 * (`listSink`, `nothingUsable`); only where the rows go differs.
 *
 * The checked rows and errors go, a batch per chunk of the file, to temporary tables of the
 * node's session, invisible to everyone else; the results are written in the one transaction
 * that ends the run (the same statements as SQLite's, in the same order), so there is no restart
 * point inside a run: a node that dies mid-run leaves nothing but its lease, which passes, and
 * the next attempt reads the file again from the start, to the same final members.
 */
import { closeSync, existsSync, openSync, readSync, rmSync } from 'node:fs';
import type pg from 'pg';
import type { PgConnection } from '../../db/pg/index.js';
import { writeUnit } from '../../db/unit.js';
import { requireExternalAudience } from '../external-audiences/external-audiences.js';
import {
  assertNoActiveRun,
  type IngestionMode,
  type IngestionPlan,
  type IngestionRun,
  type IngestionRunResult,
  type IngestionSource,
  ingestionRunKind,
  planIngestion,
  stageIngestionRun,
} from '../external-audiences/ingestion-run.js';
import { listSink, noCounts, nothingUsable, UPLOAD_GONE } from '../external-audiences/ingestion-task.js';
import { recordReader } from '../external-audiences/list-records.js';
import { insertJob } from '../jobs/job-store.js';
import { CURRENT_STATUSES_SQL, statusSql } from '../membership-statuses.js';
import { WORK_CHANNEL } from './cluster-segment-job.js';
import { FailWith, type HeldJob, type Lease, runWholeJob, storeOn, type WholeJobEnd } from './cluster-whole-jobs.js';

/** The kind a node runs with this module. */
export const INGESTION_KIND = 'INGESTION' as const;

/** The file is read in chunks of this size, as the SQLite task reads it. */
const CHUNK_BYTES = 64 * 1024;
/** Rows (or errors) staged per statement at most. */
const BATCH_ROWS = 5_000;

/**
 * startIngestionRun on PostgreSQL: the same checks and staging (`stageIngestionRun`), the list
 * staged under the data directory the nodes share, and the run queued in a unit of the
 * PostgreSQL store (serialised with the other units, so two runs of one audience cannot both
 * pass the check); the nodes are woken once it has committed.
 */
export async function startClusterIngestionRun(
  app: { store: PgConnection; dataDir: string },
  sandboxId: number,
  externalAudienceId: number,
  source: IngestionSource,
  mode: IngestionMode = 'REPLACE',
): Promise<IngestionRun> {
  const { store } = app;
  const input = await stageIngestionRun(store, app.dataDir, sandboxId, externalAudienceId, source, mode);
  let job: IngestionRun;
  try {
    job = await writeUnit(store, async (tx) => {
      // Checked again in the job's unit: the upload took a while.
      await requireExternalAudience(tx, sandboxId, externalAudienceId);
      await assertNoActiveRun(tx, sandboxId, externalAudienceId);
      return (await insertJob(tx, sandboxId, 'INGESTION', input)) as IngestionRun;
    });
  } catch (err) {
    rmSync(input.upload, { force: true });
    throw err;
  }
  // After the commit: a node woken sooner would not see the job yet (and the poll finds it anyway).
  await store.pool.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, String(job.id)]).catch(() => {});
  return job;
}

/** Runs an ingestion run this node holds to its end (lease, cancel and final write: runWholeJob). */
export function runClusterIngestion(
  pool: pg.Pool,
  held: HeldJob<unknown>,
  settings: { node: string; leaseMs: number },
): Promise<WholeJobEnd> {
  const job = held as HeldJob<IngestionRun['input']>;
  return runWholeJob<IngestionRunResult>(pool, job, settings, async (client, lease) => {
    const plan = await planIngestion(
      storeOn(client),
      { id: job.jobId, sandboxId: job.sandboxId, input: job.input } as IngestionRun,
      job.input.now,
    );
    if (!existsSync(plan.upload)) throw new Error(UPLOAD_GONE);
    await client.query(
      `DROP TABLE IF EXISTS pg_temp.ingest_rows; DROP TABLE IF EXISTS pg_temp.ingest_errors;
       CREATE TEMP TABLE ingest_rows (seq bigint NOT NULL, value text NOT NULL, line bigint NOT NULL, payload text NOT NULL);
       CREATE TEMP TABLE ingest_errors (line bigint PRIMARY KEY, message text NOT NULL)`,
    );
    const counts = await stageList(client, plan, lease);
    const unusable = nothingUsable(counts);
    // A run with nothing usable fails, but its errors stay readable (a re-run replaces them).
    if (unusable !== undefined) throw new FailWith(unusable, (tx) => saveErrors(tx, plan.jobId, true), counts);
    lease.check();
    return {
      finish: async (tx) => {
        const matched = await writeRunPg(tx, plan);
        return { result: { ...counts, recordsMatched: matched }, units: plan.bytes };
      },
      after: () => rmSync(plan.upload, { force: true }),
    };
  });
}

/**
 * Reads the plan's file into the session's temporary tables, a batch per chunk, with the
 * SQLite task's rules for every record; returns the counts.
 */
async function stageList(client: pg.ClientBase, plan: IngestionPlan, lease: Lease) {
  const counts = noCounts();
  let seq = 0;
  const rows = { seq: [] as number[], value: [] as string[], line: [] as number[], payload: [] as string[] };
  // A later error on the same line replaces an earlier one, as SQLite's INSERT OR REPLACE does.
  const errors = new Map<number, string>();
  const sink = listSink(plan, counts, {
    row(identity, line, payload) {
      rows.seq.push(seq++);
      rows.value.push(identity);
      rows.line.push(line);
      rows.payload.push(payload);
    },
    error(line, message) {
      errors.set(line, message);
    },
  });
  const flush = async (force: boolean) => {
    if (rows.seq.length > 0 && (force || rows.seq.length >= BATCH_ROWS)) {
      await client.query(
        `INSERT INTO pg_temp.ingest_rows (seq, value, line, payload)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[])`,
        [rows.seq, rows.value, rows.line, rows.payload],
      );
      rows.seq = [];
      rows.value = [];
      rows.line = [];
      rows.payload = [];
    }
    if (errors.size > 0 && (force || errors.size >= BATCH_ROWS)) {
      await client.query(
        `INSERT INTO pg_temp.ingest_errors (line, message)
         SELECT * FROM unnest($1::bigint[], $2::text[])
         ON CONFLICT (line) DO UPDATE SET message = excluded.message`,
        [[...errors.keys()], [...errors.values()]],
      );
      errors.clear();
    }
  };
  const reader = recordReader(plan.format, sink);
  const fd = openSync(plan.upload, 'r');
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  let done = 0;
  try {
    for (;;) {
      lease.check();
      const n = readSync(fd, buffer, 0, CHUNK_BYTES, null);
      if (n === 0) {
        reader.end();
        break;
      }
      reader.push(buffer.subarray(0, n));
      done += n;
      await flush(false);
      lease.progress({
        done,
        total: plan.bytes,
        result: ingestionRunKind.runningResult?.({ done, ...counts, total: plan.bytes }),
      });
    }
    await flush(true);
  } finally {
    closeSync(fd);
  }
  return counts;
}

/** The run's errors into `ingestion_errors` (replacing a previous attempt's); `drop` ends the staging. */
async function saveErrors(client: pg.ClientBase, jobId: number, drop: boolean): Promise<void> {
  await client.query('DELETE FROM ingestion_errors WHERE job_id = $1', [jobId]);
  await client.query(
    'INSERT INTO ingestion_errors (job_id, line, message) SELECT $1::bigint, line, message FROM pg_temp.ingest_errors',
    [jobId],
  );
  if (drop) await client.query('DROP TABLE IF EXISTS pg_temp.ingest_rows; DROP TABLE IF EXISTS pg_temp.ingest_errors');
}

/**
 * writeRun (ingestion-task.ts) on PostgreSQL, inside the transaction that ends the run: the
 * list, then the memberships as a segment job moves them — matched profiles enter (REALIZED) or
 * stay (EXISTING); with REPLACE, members not in the list exit — each change with a history
 * entry; returns how many rows matched a profile. Where SQLite lets a later row overwrite an
 * earlier one of the same key inside one statement, PostgreSQL refuses to touch a row twice in
 * one statement, so the later row is chosen first (DISTINCT ON, last line or last row first).
 */
async function writeRunPg(client: pg.ClientBase, plan: IngestionPlan): Promise<number> {
  const { sandboxId, audienceId, now, jobId, identityNamespace } = plan;
  const cause = `job:${jobId}`;
  await saveErrors(client, jobId, false);
  await client.query(
    `CREATE TEMP TABLE ingest_match ON COMMIT DROP AS
     SELECT DISTINCT ON (i.profile_id) i.profile_id, r.line, r.payload FROM pg_temp.ingest_rows r
     JOIN identities i ON i.sandbox_id = $1 AND i.namespace = $2 AND i.value = r.value
     ORDER BY i.profile_id, r.line DESC`,
    [sandboxId, identityNamespace],
  );
  await client.query('ALTER TABLE pg_temp.ingest_match ADD PRIMARY KEY (profile_id)');
  await client.query('ANALYZE pg_temp.ingest_match');
  const matched = Number(
    (
      await client.query<{ n: number }>(
        `SELECT count(*) AS n FROM pg_temp.ingest_rows r
         WHERE EXISTS (SELECT 1 FROM identities i WHERE i.sandbox_id = $1 AND i.namespace = $2 AND i.value = r.value)`,
        [sandboxId, identityNamespace],
      )
    ).rows[0]!.n,
  );
  const history =
    'INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause)';
  await client.query(
    `${history} SELECT $1::bigint, r.profile_id, $2::bigint, $3::bigint, m.status, ${statusSql('REALIZED')}, $4::text FROM pg_temp.ingest_match r
     LEFT JOIN memberships m ON m.audience_id = $2 AND m.profile_id = r.profile_id
     WHERE m.status IS NULL OR m.status = ${statusSql('EXITED')}`,
    [sandboxId, audienceId, now, cause],
  );
  await client.query(
    `${history} SELECT $1::bigint, m.profile_id, m.audience_id, $2::bigint, ${statusSql('REALIZED')}, ${statusSql('EXISTING')}, $3::text
     FROM memberships m
     WHERE m.audience_id = $4 AND m.status = ${statusSql('REALIZED')}
       AND m.profile_id IN (SELECT profile_id FROM pg_temp.ingest_match)`,
    [sandboxId, now, cause, audienceId],
  );
  if (plan.mode === 'REPLACE') {
    await client.query(
      `${history} SELECT $1::bigint, m.profile_id, m.audience_id, $2::bigint, m.status, ${statusSql('EXITED')}, $3::text FROM memberships m
       WHERE m.audience_id = $4 AND m.status IN ${CURRENT_STATUSES_SQL}
         AND m.profile_id NOT IN (SELECT profile_id FROM pg_temp.ingest_match)`,
      [sandboxId, now, cause, audienceId],
    );
    await client.query(
      `UPDATE memberships SET status = ${statusSql('EXITED')}, exited_at = $1, last_evaluated_at = $1
       WHERE audience_id = $2 AND status IN ${CURRENT_STATUSES_SQL}
         AND profile_id NOT IN (SELECT profile_id FROM pg_temp.ingest_match)`,
      [now, audienceId],
    );
    await client.query(
      'DELETE FROM external_members WHERE audience_id = $1 AND value NOT IN (SELECT value FROM pg_temp.ingest_rows)',
      [audienceId],
    );
  }
  await client.query(
    `UPDATE memberships SET status = ${statusSql('EXISTING')}, last_evaluated_at = $1,
       payload = (SELECT CAST(r.payload AS jsonb) FROM pg_temp.ingest_match r WHERE r.profile_id = memberships.profile_id)
     WHERE audience_id = $2 AND status IN ${CURRENT_STATUSES_SQL}
       AND profile_id IN (SELECT profile_id FROM pg_temp.ingest_match)`,
    [now, audienceId],
  );
  await client.query(
    `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at, payload)
     SELECT $1::bigint, $2::bigint, r.profile_id, ${statusSql('REALIZED')}, $3::bigint, $3::bigint, NULL, CAST(r.payload AS jsonb) FROM pg_temp.ingest_match r
     ON CONFLICT (audience_id, profile_id) DO UPDATE SET status = ${statusSql('REALIZED')}, qualified_at = excluded.qualified_at,
       last_evaluated_at = excluded.last_evaluated_at, exited_at = NULL, payload = excluded.payload
     WHERE memberships.status = ${statusSql('EXITED')}`,
    [sandboxId, audienceId, now],
  );
  // Of two rows with the same identity the later one wins (SQLite inserts both, in that order).
  await client.query(
    `INSERT INTO external_members (sandbox_id, audience_id, namespace, value, payload, imported_at)
     SELECT $1::bigint, $2::bigint, $3::text, value, CAST(payload AS jsonb), $4::bigint
     FROM (SELECT DISTINCT ON (value) value, payload FROM pg_temp.ingest_rows ORDER BY value, seq DESC) AS r
     ON CONFLICT (audience_id, value) DO UPDATE SET payload = excluded.payload, imported_at = excluded.imported_at`,
    [sandboxId, audienceId, identityNamespace, now],
  );
  await client.query(
    `UPDATE audiences SET size = (SELECT count(*) FROM memberships WHERE audience_id = $1 AND status IN ${CURRENT_STATUSES_SQL}),
       last_evaluated_at = $2 WHERE id = $1`,
    [audienceId, now],
  );
  await client.query(
    'DROP TABLE IF EXISTS pg_temp.ingest_rows; DROP TABLE IF EXISTS pg_temp.ingest_errors; DROP TABLE pg_temp.ingest_match',
  );
  return matched;
}
