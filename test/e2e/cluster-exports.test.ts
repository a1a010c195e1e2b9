/**
 * Two `segql work` processes on one PostgreSQL and one data directory run exports. An export
 * queued with `segql export` is claimed by one node, which is killed with SIGKILL mid-write; the
 * other takes the job back once the lease has passed, re-runs it and finishes, and the dataset's
 * files are complete and equal to an uninterrupted run's (the single-process export of the same
 * store). An EXPORT schedule due every second starts its runs on the cluster, each due time
 * accounted for once. Skipped without SEGQL_TEST_DATABASE_URL.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetDir, insertDataset } from '../../src/domain/exports/datasets.js';
import { exportFacts, exportPlanOf, resolveExportRequest } from '../../src/domain/exports/export-job.js';
import exportTask from '../../src/domain/exports/export-task.js';
import { encodeGlobalId } from '../../src/domain/ids.js';
import { insertJob, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';
import { type PgTestDatabase, pgAdminUrl, pgCopyOf } from '../db/pg-test-database.js';
import { buildSegmentStore, type SegmentStore } from '../db/segment-store.js';
import {
  expectEachSecondOnce,
  segql,
  startWorkNode,
  stopWorkNodes,
  until,
  untilStarted,
  type WorkNode,
} from './work-nodes.js';

const LEASE_MS = 2_000;
/** Test-only pause per 100-row page (SEGQL_TEST_ONLY_EXPORT_PAGE_DELAY_MS): the export takes seconds, so a node can be killed in it. */
const PAGE_DELAY_MS = 60;

interface NodeLine {
  msg: string;
  jobId?: number;
  attempts?: number;
  end?: string;
  jobs?: { jobId: number; status: string }[];
  tick?: { scheduleId: number; dueAt: number; outcome: string };
}

type NodeProcess = WorkNode<NodeLine>;

describe.skipIf(!pgAdminUrl)('exports across two segql work processes (PostgreSQL)', { timeout: 120_000 }, () => {
  let store: SegmentStore;
  let db: PgTestDatabase;
  let dataDir: string;
  let referenceDir: string;
  const nodes: NodeProcess[] = [];
  let onLine: ((node: NodeProcess, line: NodeLine) => void) | undefined;
  let audienceIds: number[];

  const startNode = (name: string): NodeProcess =>
    startWorkNode<NodeLine>(
      name,
      {
        args: ['--lease-ms', String(LEASE_MS)],
        env: {
          SEGQL_DATABASE_URL: db.url,
          SEGQL_DATA_DIR: dataDir,
          SEGQL_TEST_ONLY_EXPORT_PAGE_DELAY_MS: String(PAGE_DELAY_MS),
        },
      },
      (node, line) => onLine?.(node, line),
    );

  beforeAll(async () => {
    store = await buildSegmentStore('cluster_exports', 2_000, 2);
    await store.runSqliteJob();
    db = await pgCopyOf(store.conn.sqlite, 'cexp_e2e');
    dataDir = mkdtempSync(join(tmpdir(), 'cexp-e2e-'));
    referenceDir = mkdtempSync(join(tmpdir(), 'cexp-e2e-ref-'));
    audienceIds = store.conn.sqlite
      .prepare('SELECT id FROM audiences WHERE size > 50 ORDER BY size DESC LIMIT 3')
      .pluck()
      .all() as number[];
    for (const name of ['n1', 'n2']) nodes.push(startNode(name));
    await untilStarted(nodes);
  }, 120_000);

  afterAll(async () => {
    await stopWorkNodes(nodes);
    store?.close();
    await db?.drop();
    for (const dir of [dataDir, referenceDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('re-runs an export whose node was killed mid-write on the other node, with the files of an uninterrupted run', async () => {
    let killed: { node: NodeProcess; jobId: number } | undefined;
    let tempAtKill: string[] = [];
    onLine = (node, line) => {
      if (killed || line.msg !== 'export-claimed') return;
      killed = { node, jobId: line.jobId! };
      // Some pages in: its temporary files hold part of the rows when it dies.
      setTimeout(() => {
        tempAtKill = readdirSync(dataDir, { recursive: true })
          .map(String)
          .filter((f) => f.includes('.tmp-'));
        node.child.kill('SIGKILL');
      }, 5 * PAGE_DELAY_MS);
    };
    const started = Date.now();
    const run = await segql(
      [
        'export',
        '--dataset',
        'big',
        ...audienceIds.flatMap((id) => ['--audience', encodeGlobalId('Audience', id)]),
        '--format',
        'CSV',
      ],
      { SEGQL_DATABASE_URL: db.url },
      60_000,
    );
    const elapsed = Date.now() - started;
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^job \S+ \(\d+\) queued$/);
    expect(lines.at(-1)).toMatch(/^SUCCEEDED \d+\/\d+$/);
    const jobId = Number(/\((\d+)\)/.exec(lines[0]!)![1]);

    expect(killed?.jobId).toBe(jobId);
    await killed!.node.exited;
    expect(tempAtKill.some((f) => f.includes(`.tmp-${jobId}-1-export-${jobId}.csv`))).toBe(true);
    expect(killed!.node.lines.some((l) => l.msg === 'export-ended')).toBe(false);
    const survivor = nodes.find((n) => n !== killed!.node)!;
    expect(survivor.lines.some((l) => l.msg === 'exports-requeued' && l.jobs?.some((j) => j.jobId === jobId))).toBe(
      true,
    );
    expect(
      survivor.lines.filter((l) => l.msg === 'export-claimed' && l.jobId === jobId).map((l) => l.attempts),
    ).toEqual([2]);
    // Within a few lease times of the kill (the export itself takes a couple of seconds here).
    expect(elapsed).toBeLessThan(LEASE_MS * 10);

    // The uninterrupted run: the single-process export of the same store, with the same job id.
    const { conn } = store;
    const facts = exportFacts(conn, store.sandboxId);
    const request = {
      audiences: audienceIds.map((audienceId) => ({ audienceId })),
      destination: { datasetName: 'big', format: 'CSV' as const },
    };
    const { input, datasetName } = await resolveExportRequest(facts, request);
    const dataset = await insertDataset(conn, store.sandboxId, datasetName!, input.format);
    const pgJob = (await db.conn.pool.query('SELECT input, result FROM jobs WHERE id = $1', [jobId])).rows[0];
    const job = await insertJob(conn, store.sandboxId, 'EXPORT', { ...input, datasetId: dataset.id });
    expect(job.id).toBe(jobId);
    await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
    const plan = await exportPlanOf(facts, job, pgJob.input.now, referenceDir);
    const result = runJobTask(conn, job.id, exportTask, plan, { progress: () => {}, cancelled: () => false });
    expect(pgJob.result.metrics.totalExportedProfileCounter).toBe(result.metrics.totalExportedProfileCounter);
    expect(result.metrics.totalExportedProfileCounter).toBeGreaterThan(1_000);
    expect(pgJob.result.files).toEqual(result.files);

    const folder = (base: string) => {
      const dir = datasetDir(base, store.sandboxId, dataset.id);
      return new Map(
        readdirSync(dir)
          .sort()
          .map((n) => [n, readFileSync(join(dir, n))]),
      );
    };
    const expected = folder(referenceDir);
    const actual = folder(dataDir);
    // Complete: no temporary file of either attempt is left, and the same files are there.
    expect([...actual.keys()]).toEqual([...expected.keys()]);
    expect(actual.get(`export-${jobId}.csv`)!.equals(expected.get(`export-${jobId}.csv`)!)).toBe(true);
    const rows = (b: Buffer) => b.toString('utf8').trim().split('\n').length;
    expect(rows(actual.get(`records-${jobId}.ndjson`)!)).toBe(rows(expected.get(`records-${jobId}.ndjson`)!));
  });

  it('starts each due run of an every-second EXPORT schedule once across the nodes', async () => {
    // The killed node's place is taken, so two nodes race for every due time again.
    nodes.push(startNode('n3'));
    await untilStarted([nodes.at(-1)!]);
    // The first due time starts an export on the cluster (not FAILED_TO_START).
    const { scheduleId, ticks } = await expectEachSecondOnce(db.conn.pool, nodes, {
      sandboxId: store.sandboxId,
      name: 'exports',
      type: 'EXPORT',
      properties: {
        audiences: [{ audienceId: encodeGlobalId('Audience', audienceIds.at(-1)!) }],
        destination: { datasetName: 'every second', format: 'NDJSON' },
      },
      seconds: 4,
    });
    const started = ticks.filter((t) => t.outcome === 'STARTED').map((t) => t.job_id);
    const jobs = (
      await db.conn.pool.query('SELECT id, kind, trigger FROM jobs WHERE schedule_id = $1 ORDER BY id', [scheduleId])
    ).rows;
    expect(jobs.map((j) => j.id)).toEqual(started);
    expect(jobs.every((j) => j.kind === 'EXPORT' && j.trigger === 'SCHEDULE')).toBe(true);
    // Each run ends SUCCEEDED, one at a time (a due time while one runs is skipped).
    await until(
      'the scheduled exports end',
      async () =>
        (
          await db.conn.pool.query(
            `SELECT count(*)::int AS n FROM jobs WHERE schedule_id = $1 AND status <> 'SUCCEEDED'`,
            [scheduleId],
          )
        ).rows[0].n === 0,
      30_000,
    );
  });
});
