/**
 * Export jobs on cluster nodes reading PostgreSQL write the files the single-process export
 * writes from SQLite on the same store: NDJSON, CSV and Parquet, whole profiles and chosen
 * fields, FULL and CHANGES, with the same result, dataset files and record marks. And the
 * queue's lease: a node whose lease passed cannot finish (its final write refuses), another
 * node re-runs the job from scratch, and a job lost three times fails. Skipped without
 * SEGQL_TEST_DATABASE_URL.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelClusterJob } from '../../src/domain/cluster/cluster-cancel.js';
import {
  claimExportJob,
  type ExportSettings,
  enqueueClusterExportJob,
  requeueExpiredExports,
  runClusterExport,
} from '../../src/domain/cluster/cluster-export-job.js';
import { type ClusterNode, type NodeEvent, startClusterNode } from '../../src/domain/cluster/cluster-node.js';
import {
  type ClusterSettings,
  endJob,
  enqueueClusterSegmentJob,
  startQueuedSegmentJob,
} from '../../src/domain/cluster/cluster-segment-job.js';
import { claimRange, jobsToEnd, renewRange } from '../../src/domain/cluster/range-queue.js';
import { datasetDir, insertDataset } from '../../src/domain/exports/datasets.js';
import {
  type ExportJobRequest,
  type ExportJobResult,
  exportFacts,
  exportPlanOf,
  resolveExportRequest,
} from '../../src/domain/exports/export-job.js';
import exportTask from '../../src/domain/exports/export-task.js';
import { insertJob, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';
import { type PgTestDatabase, pgAdminUrl, pgCopyOf } from '../db/pg-test-database.js';
import { buildSegmentStore, type SegmentStore, STORE_NOW } from '../db/segment-store.js';

/** The export instant both sides are asked for, so their manifests and CHANGES windows agree. */
const EXPORT_AT = STORE_NOW + 3_600_000;

/** Keys sorted at every depth: two JSON texts with the same members in another order compare equal. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}
const records = (bytes: Buffer) =>
  bytes
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.stringify(canonical(JSON.parse(l))));

describe.skipIf(!pgAdminUrl)('export jobs on cluster nodes (PostgreSQL)', () => {
  let store: SegmentStore;
  let db: PgTestDatabase;
  let sqliteDir: string;
  let clusterDir: string;
  const nodes: ClusterNode[] = [];
  const events: NodeEvent[] = [];
  let audienceIds: number[];

  beforeAll(async () => {
    store = await buildSegmentStore('cluster_export', 1_500, 4);
    await store.runSqliteJob();
    db = await pgCopyOf(store.conn.sqlite, 'cexp_export');
    sqliteDir = mkdtempSync(join(tmpdir(), 'cexp-sqlite-'));
    clusterDir = mkdtempSync(join(tmpdir(), 'cexp-cluster-'));
    // Three audiences with members, one of them large.
    const sizes = store.conn.sqlite
      .prepare('SELECT id, size FROM audiences WHERE size > 20 ORDER BY size DESC')
      .raw()
      .all() as [number, number][];
    audienceIds = [sizes[0]![0], sizes[Math.floor(sizes.length / 2)]![0], sizes.at(-1)![0]];
    for (let i = 0; i < 2; i++) {
      nodes.push(
        await startClusterNode({
          pool: db.conn.pool,
          url: db.url,
          node: `node-${i}`,
          leaseMs: 3_000,
          pollMs: 100,
          dataDir: clusterDir,
          exportPageRows: 300,
          onEvent: (event) => events.push(event),
        }),
      );
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    store?.close();
    await db?.drop();
    for (const dir of [sqliteDir, clusterDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The single-process export of `request`, as the job worker runs it, into sqliteDir. */
  async function sqliteExport(
    request: ExportJobRequest,
  ): Promise<{ jobId: number; datasetId: number; result: ExportJobResult }> {
    const { conn } = store;
    const facts = exportFacts(conn, store.sandboxId);
    const { input, dataset, datasetName } = await resolveExportRequest(facts, request);
    const target = dataset ?? (await insertDataset(conn, store.sandboxId, datasetName!, input.format));
    const job = await insertJob(conn, store.sandboxId, 'EXPORT', { ...input, datasetId: target.id });
    await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
    const plan = await exportPlanOf(facts, job, input.at!, sqliteDir);
    const result = runJobTask(conn, job.id, exportTask, plan, { progress: () => {}, cancelled: () => false });
    return { jobId: job.id, datasetId: target.id, result };
  }

  async function clusterExport(request: ExportJobRequest): Promise<{ jobId: number; result: ExportJobResult }> {
    const client = await db.conn.pool.connect();
    let jobId: number;
    try {
      await client.query('BEGIN');
      jobId = await enqueueClusterExportJob(client, store.sandboxId, request);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const deadline = Date.now() + 60_000;
    while (!events.some((e) => e.type === 'job-ended' && e.jobId === jobId)) {
      const error = events.find((e) => e.type === 'error');
      if (error?.type === 'error') throw error.error;
      if (Date.now() > deadline) throw new Error(`export ${jobId} did not end in 60 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const row = (await db.conn.pool.query('SELECT status, error, result FROM jobs WHERE id = $1', [jobId])).rows[0];
    expect({ status: row.status, error: row.error }).toEqual({ status: 'SUCCEEDED', error: null });
    return { jobId, result: row.result };
  }

  /** Every file of a dataset folder by name; no temporary file may be left. */
  function folder(root: string, datasetId: number): Map<string, Buffer> {
    const dir = datasetDir(root, store.sandboxId, datasetId);
    const names = readdirSync(dir).sort();
    expect(names.filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    return new Map(names.map((n) => [n, readFileSync(join(dir, n))]));
  }

  const withoutTime = (r: ExportJobResult) => ({ ...r, metrics: { ...r.metrics, totalTimeMs: 0 } });

  /**
   * Runs `request` both ways and compares. Whole attribute documents come back from `jsonb` with
   * their keys in its order, so those lines (and only those) are compared as records: the same
   * members, hence the same length; every other file, byte for byte.
   */
  async function compare(request: ExportJobRequest, name: string) {
    const single = await sqliteExport({ ...request, destination: { ...request.destination, datasetName: name } });
    const cluster = await clusterExport({ ...request, destination: { ...request.destination, datasetName: name } });
    // The copy keeps the ids in step, so both name their files alike.
    expect(cluster.jobId).toBe(single.jobId);
    const wholeDocuments = request.fields == null;
    expect(withoutTime(cluster.result)).toEqual({
      ...withoutTime(single.result),
      files: wholeDocuments
        ? single.result.files.map((f) => ({ ...f, sha256: expect.any(String) }))
        : single.result.files,
      manifest: { ...single.result.manifest, bytes: expect.any(Number), sha256: expect.any(String) },
    });
    const expected = folder(sqliteDir, single.datasetId);
    const actual = folder(clusterDir, single.datasetId);
    expect([...actual.keys()]).toEqual([...expected.keys()]);
    for (const [file, bytes] of expected) {
      const got = actual.get(file)!;
      if (file === 'manifest.json') {
        const strip = (b: Buffer) => {
          const m = JSON.parse(b.toString('utf8'));
          return {
            ...m,
            writtenAt: null,
            files: wholeDocuments ? m.files.map((f: object) => ({ ...f, sha256: null })) : m.files,
          };
        };
        expect(strip(got)).toEqual(strip(bytes));
      } else if (wholeDocuments && file.endsWith('.ndjson')) {
        expect(got.length).toBe(bytes.length);
        expect(records(got)).toEqual(records(bytes));
      } else {
        expect(got.equals(bytes), `${file} byte for byte`).toBe(true);
      }
    }
    const sql = {
      files: 'SELECT name, job_id, rows, bytes FROM dataset_files WHERE dataset_id = $1 ORDER BY name',
      marks: 'SELECT job_id, row, file, "offset" FROM dataset_record_marks WHERE dataset_id = $1 ORDER BY row',
      dataset: 'SELECT current_job_id, last_export_at FROM datasets WHERE id = $1',
    };
    for (const text of Object.values(sql)) {
      const sqliteRows = store.conn.sqlite.prepare(text.replace('$1', '?')).raw().all(single.datasetId);
      const pgRows = (await db.conn.pool.query({ text, values: [single.datasetId], rowMode: 'array' })).rows;
      expect(pgRows).toEqual(sqliteRows);
    }
    return { single, cluster, expected };
  }

  const audiences = () => audienceIds.map((audienceId) => ({ audienceId }));

  it('writes NDJSON of whole profiles with the records of the single-process export', async () => {
    const { single, expected } = await compare(
      { audiences: audiences(), at: EXPORT_AT, destination: { format: 'NDJSON' } },
      'whole',
    );
    expect(single.result.metrics.totalExportedProfileCounter).toBeGreaterThan(300);
    // Profiles with two and three identities are among them, in the same order.
    const first = [...expected.values()][0]!.toString('utf8');
    expect(first).toContain('"identities":[{"namespace":"crmId"');
  }, 60_000);

  it('writes chosen fields per audience, CSV and Parquet byte for byte, and a CHANGES export', async () => {
    const fields = ['loyalty.tier', 'homeAddress', 'preferences.categories', 'consents'];
    await compare(
      {
        audiences: audiences(),
        fields,
        at: EXPORT_AT,
        destination: { format: 'NDJSON', audiencePerFile: true },
      },
      'fields',
    );
    await compare({ audiences: audiences(), at: EXPORT_AT, destination: { format: 'CSV' } }, 'csv');
    await compare(
      { audiences: audiences(), fields, at: EXPORT_AT, destination: { format: 'PARQUET', audiencePerFile: true } },
      'parquet',
    );
    // A second export into a dataset runs CHANGES: every move since just before the store's evaluation.
    const changes = {
      audiences: audiences(),
      fields,
      mode: 'CHANGES' as const,
      changesSince: STORE_NOW - 1,
      at: EXPORT_AT,
      destination: { format: 'CSV' as const },
    };
    await compare({ ...changes, mode: 'FULL', changesSince: null }, 'changes');
    const { single } = await compare(changes, 'changes');
    expect(single.result.mode).toBe('CHANGES');
    expect(single.result.metrics.totalExportedProfileCounter).toBeGreaterThan(300);
  }, 120_000);

  describe('leases', () => {
    const settings = (node: string, testOnlyPageDelayMs = 0): ExportSettings => ({
      node,
      leaseMs: 60_000,
      dataDir: clusterDir,
      pageRows: 100,
      testOnlyPageDelayMs,
    });
    const segmentSettings: ClusterSettings = {
      node: 'node-s',
      leaseMs: 60_000,
      rangeProfiles: 1_000,
      chunkSize: 10_000,
    };
    const enqueue = async (name: string) => {
      const client = await db.conn.pool.connect();
      try {
        await client.query('BEGIN');
        const id = await enqueueClusterExportJob(client, store.sandboxId, {
          audiences: audiences(),
          at: EXPORT_AT,
          destination: { format: 'CSV', datasetName: name },
        });
        await client.query('COMMIT');
        return id;
      } finally {
        client.release();
      }
    };

    beforeAll(async () => {
      // From here the test is the only node: it claims, loses and re-runs by hand.
      await Promise.all(nodes.splice(0).map((n) => n.stop()));
    });

    it('refuses the final write of a node whose lease passed, and another node re-runs the job', async () => {
      const single = await sqliteExport({
        audiences: audiences(),
        at: EXPORT_AT,
        destination: { format: 'CSV', datasetName: 'lease' },
      });
      const jobId = await enqueue('lease');
      const a = (await claimExportJob(db.conn.pool, 'node-a', 60_000))!;
      expect(a).toMatchObject({ jobId, attempts: 1 });
      expect(await claimExportJob(db.conn.pool, 'node-b', 60_000)).toBeUndefined();
      // Node A writes slowly; while it does, its lease passes (as after a long pause) and B takes the job.
      const runA = runClusterExport(db.conn.pool, a, settings('node-a', 40));
      const datasetId = (await db.conn.pool.query("SELECT id FROM datasets WHERE name = 'lease'")).rows[0].id as number;
      const dir = datasetDir(clusterDir, store.sandboxId, datasetId);
      const tempOfA = () => {
        try {
          return readdirSync(dir).filter((n) => n.startsWith(`.tmp-${jobId}-1-`));
        } catch {
          return [];
        }
      };
      while (tempOfA().length === 0) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
      expect(await requeueExpiredExports(db.conn.pool, Date.now() + 60_001)).toMatchObject([
        { jobId, status: 'QUEUED' },
      ]);
      const b = (await claimExportJob(db.conn.pool, 'node-b', 60_000))!;
      expect(b).toMatchObject({ jobId, attempts: 2 });
      expect(await runClusterExport(db.conn.pool, b, settings('node-b'))).toBe('succeeded');
      // A goes on to its final write, which names attempt 1: refused, and A removes only its own files.
      expect(await runA).toBe('lost');
      const job = (
        await db.conn.pool.query('SELECT status, attempts, lease_owner, lease_until, result FROM jobs WHERE id = $1', [
          jobId,
        ])
      ).rows[0];
      expect(job).toMatchObject({ status: 'SUCCEEDED', attempts: 2, lease_owner: null, lease_until: null });
      expect(job.result.metrics.totalExportedProfileCounter).toBe(single.result.metrics.totalExportedProfileCounter);
      // (The evaluateFirst test queued a segment job in PostgreSQL only: the job ids differ by one.)
      const expected = folder(sqliteDir, single.datasetId);
      const actual = folder(clusterDir, datasetId);
      expect([...actual.keys()]).toEqual(
        [...expected.keys()].map((n) => n.replace(String(single.jobId), String(jobId))),
      );
      expect(actual.get(`export-${jobId}.csv`)!.equals(expected.get(`export-${single.jobId}.csv`)!)).toBe(true);
    }, 60_000);

    it('stops a running export that is cancelled, leaving no file of it', async () => {
      const jobId = await enqueue('cancelled');
      const held = (await claimExportJob(db.conn.pool, 'node-c', 600))!;
      const run = runClusterExport(db.conn.pool, held, { ...settings('node-c', 100), leaseMs: 600 });
      await new Promise((r) => setTimeout(r, 200));
      await cancelClusterJob(db.conn.pool, jobId);
      expect(await run).toBe('cancelled');
      const job = (await db.conn.pool.query('SELECT status, lease_owner FROM jobs WHERE id = $1', [jobId])).rows[0];
      expect(job).toEqual({ status: 'CANCELLED', lease_owner: null });
      const datasetId = (await db.conn.pool.query("SELECT id FROM datasets WHERE name = 'cancelled'")).rows[0]
        .id as number;
      expect(readdirSync(datasetDir(clusterDir, store.sandboxId, datasetId))).toEqual([]);
    });

    it('queues two exports into the same new dataset at once, and both write into the one created', async () => {
      const request: ExportJobRequest = {
        audiences: audiences(),
        at: EXPORT_AT,
        destination: { format: 'CSV', datasetName: ' raced ' },
      };
      const [a, b] = [await db.conn.pool.connect(), await db.conn.pool.connect()];
      try {
        await a.query('BEGIN');
        await b.query('BEGIN');
        const first = await enqueueClusterExportJob(a, store.sandboxId, request);
        // The second finds no dataset of that name yet: it must wait for the first, not create another.
        let settled = false;
        const second = enqueueClusterExportJob(b, store.sandboxId, request).finally(() => {
          settled = true;
        });
        await new Promise((r) => setTimeout(r, 300));
        expect(settled).toBe(false);
        await a.query('COMMIT');
        const secondId = await second;
        await b.query('COMMIT');
        const inputs = (
          await db.conn.pool.query('SELECT id, input FROM jobs WHERE id = ANY($1::bigint[]) ORDER BY id', [
            [first, secondId],
          ])
        ).rows.map((r) => r.input.datasetId);
        const datasets = (await db.conn.pool.query("SELECT id FROM datasets WHERE name = 'raced'")).rows;
        expect(datasets).toHaveLength(1);
        expect(inputs).toEqual([datasets[0].id, datasets[0].id]);
        // Two nodes claim one each and run them side by side.
        const heldA = (await claimExportJob(db.conn.pool, 'node-ra', 60_000))!;
        const heldB = (await claimExportJob(db.conn.pool, 'node-rb', 60_000))!;
        expect([heldA.jobId, heldB.jobId]).toEqual([first, secondId]);
        expect(
          await Promise.all([
            runClusterExport(db.conn.pool, heldA, settings('node-ra')),
            runClusterExport(db.conn.pool, heldB, settings('node-rb')),
          ]),
        ).toEqual(['succeeded', 'succeeded']);
        const files = (
          await db.conn.pool.query('SELECT name, job_id FROM dataset_files WHERE dataset_id = $1 ORDER BY name', [
            datasets[0].id,
          ])
        ).rows;
        expect(files.filter((f) => f.name.endsWith('.csv'))).toEqual([
          { name: `export-${first}.csv`, job_id: first },
          { name: `export-${secondId}.csv`, job_id: secondId },
        ]);
      } finally {
        await a.query('ROLLBACK').catch(() => {});
        await b.query('ROLLBACK').catch(() => {});
        a.release();
        b.release();
      }
    });

    describe('cancel', () => {
      const jobRow = async (id: number) =>
        (await db.conn.pool.query('SELECT status, finished_at AS "finishedAt" FROM jobs WHERE id = $1', [id])).rows[0];
      const enqueueEvaluated = async (name: string) => {
        const client = await db.conn.pool.connect();
        try {
          await client.query('BEGIN');
          const id = await enqueueClusterExportJob(client, store.sandboxId, {
            audiences: audiences(),
            evaluateFirst: true,
            at: EXPORT_AT,
            destination: { format: 'CSV', datasetName: name },
          });
          await client.query('COMMIT');
          const first = (await db.conn.pool.query('SELECT after_job_id FROM jobs WHERE id = $1', [id])).rows[0]
            .after_job_id as number;
          return { id, first };
        } finally {
          client.release();
        }
      };

      it('ends an export CANCELLED when the cancel reaches it only at its final write', async () => {
        const jobId = await enqueue('cancel-late');
        const held = (await claimExportJob(db.conn.pool, 'node-f', 60_000))!;
        // A lease of a minute: no renewal falls inside the export, so only its final write meets the cancel.
        const run = runClusterExport(db.conn.pool, held, settings('node-f', 100));
        await new Promise((r) => setTimeout(r, 150));
        expect((await cancelClusterJob(db.conn.pool, jobId))?.after).toBe('CANCELLING');
        expect(await run).toBe('cancelled');
        expect(await jobRow(jobId)).toEqual({ status: 'CANCELLED', finishedAt: expect.any(Number) });
        const datasetId = (await db.conn.pool.query("SELECT id FROM datasets WHERE name = 'cancel-late'")).rows[0]
          .id as number;
        expect(readdirSync(datasetDir(clusterDir, store.sandboxId, datasetId))).toEqual([]);
      });

      it('cancels a queued evaluateFirst export and the segment job queued for it, at once', async () => {
        const { id, first } = await enqueueEvaluated('cancel-queued');
        const outcome = await cancelClusterJob(db.conn.pool, id);
        expect(outcome).toEqual({
          kind: 'EXPORT',
          before: 'QUEUED',
          after: 'CANCELLED',
          changed: [
            { id, status: 'CANCELLED' },
            { id: first, status: 'CANCELLED' },
          ],
        });
        expect(await jobRow(id)).toEqual({ status: 'CANCELLED', finishedAt: expect.any(Number) });
        expect(await jobRow(first)).toEqual({ status: 'CANCELLED', finishedAt: expect.any(Number) });
        // No node starts either of them any more.
        expect(await startQueuedSegmentJob(db.conn.pool, segmentSettings)).toBeUndefined();
        expect(await claimExportJob(db.conn.pool, 'node-d', 60_000)).toBeUndefined();
      });

      it('asks the running segment job of a waiting export to stop, and the next sweep ends it', async () => {
        const { id, first } = await enqueueEvaluated('cancel-running');
        expect(await startQueuedSegmentJob(db.conn.pool, segmentSettings)).toBe(first);
        const range = (await claimRange(db.conn.pool, 'node-e', 60_000))!;
        expect(range.jobId).toBe(first);
        const outcome = await cancelClusterJob(db.conn.pool, id);
        expect(outcome?.changed).toEqual([
          { id, status: 'CANCELLED' },
          { id: first, status: 'CANCELLING' },
        ]);
        // The holder of a range hears of it at its next renewal; the job ends at the next sweep.
        expect(await renewRange(db.conn.pool, range, 'node-e', 60_000, 1)).toBe('cancelling');
        expect(await jobsToEnd(db.conn.pool)).toContain(first);
        expect(await endJob(db.conn.pool, first)).toBe('cancelled');
        expect((await jobRow(first)).status).toBe('CANCELLED');
        expect(
          (await db.conn.pool.query('SELECT count(*)::int AS n FROM job_ranges WHERE job_id = $1', [first])).rows[0].n,
        ).toBe(0);
      });

      it('cancels a running segment job alone, and leaves a finished or unknown job as it is', async () => {
        const segment = await enqueueClusterSegmentJob(db.conn.pool, store.sandboxId, {
          definitionIds: [store.definitions[0]!.id],
          all: false,
          at: EXPORT_AT,
        });
        expect(await startQueuedSegmentJob(db.conn.pool, segmentSettings)).toBe(segment);
        expect(await cancelClusterJob(db.conn.pool, segment)).toEqual({
          kind: 'SEGMENT',
          before: 'PROCESSING',
          after: 'CANCELLING',
          changed: [{ id: segment, status: 'CANCELLING' }],
        });
        // Asked again while it stops: nothing more to change.
        expect(await cancelClusterJob(db.conn.pool, segment)).toMatchObject({ before: 'CANCELLING', changed: [] });
        expect(await endJob(db.conn.pool, segment)).toBe('cancelled');
        expect(await cancelClusterJob(db.conn.pool, segment)).toEqual({
          kind: 'SEGMENT',
          before: 'CANCELLED',
          after: 'CANCELLED',
          changed: [],
        });
        expect(await cancelClusterJob(db.conn.pool, segment, { sandboxId: store.sandboxId + 1 })).toBeUndefined();
        expect(await cancelClusterJob(db.conn.pool, 999_999)).toBeUndefined();
      });
    });

    it('fails a job lost three times rather than run it forever', async () => {
      const jobId = await enqueue('lost');
      for (let attempt = 1; attempt <= 3; attempt++) {
        expect(await claimExportJob(db.conn.pool, `node-${attempt}`, 1_000)).toMatchObject({
          jobId,
          attempts: attempt,
        });
        const requeued = await requeueExpiredExports(db.conn.pool, Date.now() + 1_001);
        expect(requeued).toMatchObject([{ jobId, status: attempt < 3 ? 'QUEUED' : 'FAILED' }]);
      }
      expect(await claimExportJob(db.conn.pool, 'node-4', 1_000)).toBeUndefined();
      const job = (await db.conn.pool.query('SELECT status, error, finished_at FROM jobs WHERE id = $1', [jobId]))
        .rows[0];
      expect(job.status).toBe('FAILED');
      expect(job.error).toBe('The export was lost 3 times (its nodes stopped renewing their lease)');
      expect(job.finished_at).toEqual(expect.any(Number));
    });
  });

  it('runs the segment job an evaluateFirst export queues first, then the export at the same instant', async () => {
    // Last, as it changes the memberships in PostgreSQL only; the leases tests stopped the nodes.
    nodes.push(
      await startClusterNode({
        pool: db.conn.pool,
        url: db.url,
        node: 'node-evaluate-first',
        pollMs: 100,
        dataDir: clusterDir,
        onEvent: (event) => events.push(event),
      }),
    );
    const before = (await db.conn.pool.query("SELECT count(*)::int AS n FROM jobs WHERE kind = 'SEGMENT'")).rows[0].n;
    const { jobId } = await clusterExport({
      audiences: audiences(),
      evaluateFirst: true,
      at: EXPORT_AT,
      destination: { format: 'NDJSON', datasetName: 'evaluated' },
    });
    const rows = (
      await db.conn.pool.query(
        `SELECT e.input AS export, s.kind, s.status, s.input AS segment, s.trigger, s.schedule_id AS "scheduleId"
         FROM jobs e JOIN jobs s ON s.id = e.after_job_id WHERE e.id = $1`,
        [jobId],
      )
    ).rows;
    expect(rows).toHaveLength(1);
    const [row] = rows;
    expect(row).toMatchObject({ kind: 'SEGMENT', status: 'SUCCEEDED', trigger: 'MANUAL', scheduleId: null });
    expect(row.segment.at).toBe(EXPORT_AT);
    expect(row.export.now).toBe(EXPORT_AT);
    expect(row.segment.definitionIds.sort()).toEqual(
      store.definitions
        .filter((d) => audienceIds.includes(d.audienceId))
        .map((d) => d.id)
        .sort(),
    );
    expect((await db.conn.pool.query("SELECT count(*)::int AS n FROM jobs WHERE kind = 'SEGMENT'")).rows[0].n).toBe(
      before + 1,
    );
  }, 60_000);

  it('takes a queued segment job’s ranges while its export slot holds a long export', async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    const seen: NodeEvent[] = [];
    nodes.push(
      await startClusterNode({
        pool: db.conn.pool,
        url: db.url,
        node: 'node-fair',
        leaseMs: 3_000,
        pollMs: 100,
        rangeProfiles: 500,
        dataDir: clusterDir,
        // Ten rows a page, a page every 100 ms: the export takes many seconds.
        exportPageRows: 10,
        testOnlyExportPageDelayMs: 100,
        onEvent: (event) => seen.push(event),
      }),
    );
    const until = async (what: string, done: () => boolean) => {
      const deadline = Date.now() + 60_000;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`${what}: not within 60 s`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const client = await db.conn.pool.connect();
    let exportId: number;
    try {
      await client.query('BEGIN');
      exportId = await enqueueClusterExportJob(client, store.sandboxId, {
        audiences: audiences(),
        at: EXPORT_AT,
        destination: { format: 'CSV', datasetName: 'beside ranges' },
      });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await until('the export is claimed', () => seen.some((e) => e.type === 'export-claimed' && e.jobId === exportId));
    const segmentId = await enqueueClusterSegmentJob(db.conn.pool, store.sandboxId, {
      definitionIds: store.definitions.slice(0, 3).map((d) => d.id),
      all: false,
      at: EXPORT_AT,
    });
    await until('the segment job ends', () => seen.some((e) => e.type === 'job-ended' && e.jobId === segmentId));
    // Every range ran on this node while its export was still being written.
    const ranges = seen.filter((e) => e.type === 'range-ended' && e.range.jobId === segmentId);
    expect(ranges.length).toBeGreaterThanOrEqual(3);
    expect(seen.some((e) => e.type === 'export-ended')).toBe(false);
    expect((await db.conn.pool.query('SELECT status FROM jobs WHERE id = $1', [segmentId])).rows[0].status).toBe(
      'SUCCEEDED',
    );
    expect(
      (await db.conn.pool.query('SELECT status, progress_done FROM jobs WHERE id = $1', [exportId])).rows[0],
    ).toMatchObject({ status: 'PROCESSING' });
    // And the export, undisturbed, runs to its end.
    await until('the export ends', () => seen.some((e) => e.type === 'job-ended' && e.jobId === exportId));
    expect(seen).toContainEqual({ type: 'export-ended', jobId: exportId, attempts: 1, end: 'succeeded' });
    expect(seen.filter((e) => e.type === 'error')).toEqual([]);
  }, 120_000);
});
