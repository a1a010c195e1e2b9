/**
 * `npm run bench -- cluster-export [--profiles 50000] [--events-per-profile 0] [--runs 5]
 *   [--format NDJSON] [--fields a.b,c] [--pg-url postgres://postgres@127.0.0.1:5432/test]
 *   [--data-dir .bench-data]`
 *
 * An export on a cluster node (`runClusterExport`, what `segql work` runs, reading PostgreSQL)
 * against the single-process export (`runExport`, what the job worker runs, reading SQLite) of
 * the same store: one audience holding every profile of the standard data set. The store is
 * copied into a PostgreSQL database made for the run on the server `--pg-url` names, and dropped
 * after. The two sides alternate which goes first; before timing, their row counts are compared
 * (MISMATCH otherwise). The cluster side's time includes its claim and its final write, as a
 * node's would; the ratio is cluster / single, run by run.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { Connection } from '../src/db/index.js';
import { copySqliteToPostgres } from '../src/db/pg/copy-from-sqlite.js';
import { migratePg, openPgDatabase, type PgConnection } from '../src/db/pg/index.js';
import { createManualAudience } from '../src/domain/audiences.js';
import { claimExportJob, enqueueClusterExportJob, runClusterExport } from '../src/domain/cluster/cluster-export-job.js';
import { type ExportFormat, insertDataset } from '../src/domain/exports/datasets.js';
import { type ExportJobRequest, exportJobKind } from '../src/domain/exports/export-job.js';
import { runExport } from '../src/domain/exports/export-task.js';
import type { JobServices } from '../src/domain/jobs/job-services.js';
import { insertJob, updateJob } from '../src/domain/jobs/job-store.js';
import { runJobTask } from '../src/domain/jobs/task.js';
import { openWorkCopy } from './batch.bench.js';
import { dataDirArg, intArg, parseArgs, prepareDataset, report, statsOf, throughput } from './lib.js';

const NAME = 'cluster-export';

async function admin(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const profiles = intArg(args, 'profiles', 50_000);
  const eventsPerProfile = intArg(args, 'events-per-profile', 0);
  const runs = intArg(args, 'runs', 5);
  const format = (args.get('format') ?? 'NDJSON') as ExportFormat;
  const fields = args.get('fields')?.split(',') ?? null;
  const adminUrl = args.get('pg-url') ?? 'postgres://postgres@127.0.0.1:5432/test';
  const dataset = await prepareDataset({ profiles, eventsPerProfile, seed: 42, dataDir: dataDirArg(args) });
  const work = await openWorkCopy(dataset, NAME);
  const outDir = join(dataset.dataDir, `cluster-export-${process.pid}`);
  const dbName = `segql_bench_cexport_${randomBytes(4).toString('hex')}`;
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  let pgConn: PgConnection | undefined;
  let failures = 0;
  try {
    const { conn } = work;
    const sandboxId = dataset.sandboxId;
    const audienceId = await audienceOfAll(conn, sandboxId);
    await admin(adminUrl, `CREATE DATABASE ${dbName}`);
    pgConn = openPgDatabase(url.toString());
    await migratePg(pgConn);
    const client = await pgConn.pool.connect();
    try {
      await copySqliteToPostgres(conn.sqlite, client);
      await client.query('ANALYZE');
    } finally {
      client.release();
    }
    const request = (name: string): ExportJobRequest => ({
      audiences: [{ audienceId }],
      fields,
      destination: { format, datasetName: name },
    });
    let n = 0;
    const single = () => singleExport(conn, sandboxId, request(`single-${n++}`), outDir);
    const cluster = () => clusterExport(pgConn!, sandboxId, request(`cluster-${n++}`), outDir);
    const first = [await single(), await cluster()];
    if (first.some((r) => r.rows !== profiles)) {
      console.log(`MISMATCH single rows ${first[0]!.rows}, cluster rows ${first[1]!.rows}, expected ${profiles}`);
      failures++;
    }
    console.log(`rows=${profiles} format=${format} fields=${fields?.join(',') ?? '(whole documents)'}`);
    const singleMs: number[] = [];
    const clusterMs: number[] = [];
    for (let r = 0; r < runs; r++) {
      const order = r % 2 === 0 ? (['single', 'cluster'] as const) : (['cluster', 'single'] as const);
      for (const side of order) {
        if (side === 'single') singleMs.push((await single()).ms);
        else clusterMs.push((await cluster()).ms);
      }
    }
    const ss = statsOf(singleMs);
    const cs = statsOf(clusterMs);
    report(NAME, 'single-ms', ss.median, 'ms', ss);
    report(NAME, 'cluster-ms', cs.median, 'ms', cs);
    const rows = throughput(cs, profiles);
    report(NAME, 'cluster-rows-per-s', rows.median, 'rows/s', rows);
    const ratio = statsOf(clusterMs.map((x, i) => x / singleMs[i]!));
    report(NAME, 'ratio', ratio.median, 'x', ratio);
  } finally {
    await pgConn?.close();
    await admin(adminUrl, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
    rmSync(outDir, { recursive: true, force: true });
    work.close();
  }
  if (failures > 0) console.log(`FAILED ${NAME}: ${failures} check(s) failed (MISMATCH lines above)`);
  return failures > 0 ? 1 : 0;
}

/** A manual audience of every profile, each REALIZED. */
async function audienceOfAll(conn: Connection, sandboxId: number): Promise<number> {
  const audience = await createManualAudience(conn, sandboxId, { name: 'bench-cluster-export' });
  conn.sqlite
    .prepare(
      `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at)
       SELECT ?, ?, id, 'REALIZED', 1, 1 FROM profiles WHERE sandbox_id = ?`,
    )
    .run(sandboxId, audience.id, sandboxId);
  return audience.id;
}

/** One single-process export job run to its end in this thread, as the worker runs it. */
async function singleExport(
  conn: Connection,
  sandboxId: number,
  request: ExportJobRequest,
  dataDir: string,
): Promise<{ ms: number; rows: number }> {
  const { destination } = request;
  const dataset = await insertDataset(conn, sandboxId, destination.datasetName!, destination.format);
  const job = await insertJob(conn, sandboxId, 'EXPORT', {
    audiences: request.audiences!.map((a) => ({ audienceId: a.audienceId, statuses: ['REALIZED', 'EXISTING'] })),
    fields: request.fields ?? null,
    fromIngestTimestamp: null,
    emptyAudienceFilter: false,
    mode: 'FULL',
    changesSince: null,
    datasetId: dataset.id,
    format: destination.format,
    audiencePerFile: false,
    evaluateFirst: false,
    at: null,
  });
  const started = await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
  const t0 = performance.now();
  // The kind's plan reads only the connection and the data directory.
  const plan = await exportJobKind.plan(started as never, Date.now(), { conn, dataDir } as JobServices);
  const result = runJobTask(conn, job.id, runExport, plan, { progress: () => {}, cancelled: () => false });
  return { ms: performance.now() - t0, rows: result.metrics.totalExportedProfileCounter };
}

/** One cluster export: queued, claimed and run to its end as a node runs it. */
async function clusterExport(
  db: PgConnection,
  sandboxId: number,
  request: ExportJobRequest,
  dataDir: string,
): Promise<{ ms: number; rows: number }> {
  const client = await db.pool.connect();
  let jobId: number;
  try {
    await client.query('BEGIN');
    jobId = await enqueueClusterExportJob(client, sandboxId, request);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  const t0 = performance.now();
  const held = await claimExportJob(db.pool, 'bench', 600_000);
  if (held?.jobId !== jobId) throw new Error(`claimed ${held?.jobId}, queued ${jobId}`);
  const end = await runClusterExport(db.pool, held, {
    node: 'bench',
    leaseMs: 600_000,
    dataDir,
    pageRows: 2_000,
    testOnlyPageDelayMs: 0,
  });
  const ms = performance.now() - t0;
  if (end !== 'succeeded') throw new Error(`cluster export ${jobId} ended ${end}`);
  const { rows } = await db.pool.query('SELECT progress_done AS n FROM jobs WHERE id = $1', [jobId]);
  return { ms, rows: rows[0].n as number };
}
