/**
 * `segql cancel` against a real PostgreSQL: a running export held by a cluster node stops and
 * ends CANCELLED (exit 0, the node removes its files), a queued segment job is cancelled at once,
 * a finished job is left as it is (exit 1), and an unknown job, an id of the wrong kind or a
 * sandbox the job is not in are usage errors (exit 2). The node runs in this process, its export
 * slowed to minutes, so the cancel surely reaches it mid-export whatever the command's start-up
 * costs. Skipped without SEGQL_TEST_DATABASE_URL.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueClusterExportJob } from '../../src/domain/cluster/cluster-export-job.js';
import { type ClusterNode, type NodeEvent, startClusterNode } from '../../src/domain/cluster/cluster-node.js';
import { enqueueClusterSegmentJob } from '../../src/domain/cluster/cluster-segment-job.js';
import { datasetDir } from '../../src/domain/exports/datasets.js';
import { encodeGlobalId } from '../../src/domain/ids.js';
import { type PgTestDatabase, pgAdminUrl, pgCopyOf } from '../db/pg-test-database.js';
import { buildSegmentStore, type SegmentStore, STORE_NOW } from '../db/segment-store.js';
import { segql as segqlWith, until } from './work-nodes.js';

describe.skipIf(!pgAdminUrl)('segql cancel on a cluster (PostgreSQL)', { timeout: 180_000 }, () => {
  let store: SegmentStore;
  let db: PgTestDatabase;
  let dataDir: string;
  let node: ClusterNode | undefined;
  const events: NodeEvent[] = [];

  const segql = (args: string[]) => segqlWith(args, { SEGQL_DATABASE_URL: db.url, SEGQL_DATA_DIR: dataDir }, 90_000);
  const status = async (id: number) =>
    (await db.conn.pool.query('SELECT status FROM jobs WHERE id = $1', [id])).rows[0].status as string;
  beforeAll(async () => {
    store = await buildSegmentStore('cexp2_cancel', 1_500, 2);
    await store.runSqliteJob();
    db = await pgCopyOf(store.conn.sqlite, 'cexp2_cancel');
    dataDir = mkdtempSync(join(tmpdir(), 'cexp2-cancel-'));
  }, 120_000);

  afterAll(async () => {
    await node?.stop();
    store?.close();
    await db?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('stops a running export on its node and exits 0 once it is CANCELLED; a second cancel exits 1', async () => {
    node = await startClusterNode({
      pool: db.conn.pool,
      url: db.url,
      node: 'slow',
      leaseMs: 1_500,
      pollMs: 100,
      dataDir,
      // Ten rows a page, a page every 200 ms: minutes for the whole export, unless cancelled.
      exportPageRows: 10,
      testOnlyExportPageDelayMs: 200,
      onEvent: (e) => events.push(e),
    });
    const audiences = store.conn.sqlite
      .prepare('SELECT id FROM audiences WHERE size > 100 ORDER BY size DESC LIMIT 3')
      .pluck()
      .all() as number[];
    const client = await db.conn.pool.connect();
    let jobId: number;
    try {
      await client.query('BEGIN');
      jobId = await enqueueClusterExportJob(client, store.sandboxId, {
        audiences: audiences.map((audienceId) => ({ audienceId })),
        destination: { datasetName: 'cancelled', format: 'CSV' },
      });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await until('the node claims the export', () => events.some((e) => e.type === 'export-claimed'), 30_000);
    const gid = encodeGlobalId('ExportJob', jobId);
    const started = Date.now();
    const run = await segql(['cancel', gid]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines[0]).toBe(`job ${gid} (${jobId}) CANCELLING`);
    // It stopped early: part of the rows written when the cancel reached the node, and no more.
    const [, done, total] = /^CANCELLED (\d+)\/(\d+)$/.exec(lines.at(-1)!) ?? [];
    expect(Number(done)).toBeLessThan(Number(total));
    expect(await status(jobId)).toBe('CANCELLED');
    expect(events).toContainEqual({ type: 'export-ended', jobId, attempts: 1, end: 'cancelled' });
    expect(events.some((e) => e.type === 'export-ended' && e.end === 'succeeded')).toBe(false);
    expect(Date.now() - started).toBeLessThan(90_000);
    const datasetId = (await db.conn.pool.query("SELECT id FROM datasets WHERE name = 'cancelled'")).rows[0]
      .id as number;
    expect(readdirSync(datasetDir(dataDir, store.sandboxId, datasetId))).toEqual([]);

    const again = await segql(['cancel', String(jobId)]);
    expect(again).toEqual({
      code: 1,
      stdout: '',
      stderr: `segql cancel: job ${gid} (${jobId}) has already finished (CANCELLED); there is nothing to cancel\n`,
    });
  });

  it('cancels a queued segment job at once, and refuses jobs it cannot name with exit 2', async () => {
    // No node from here: the job stays queued until the cancel.
    await node?.stop();
    node = undefined;
    const jobId = await enqueueClusterSegmentJob(db.conn.pool, store.sandboxId, {
      definitionIds: null,
      all: true,
      at: STORE_NOW,
    });
    const gid = encodeGlobalId('SegmentJob', jobId);
    const [queued, unknown, wrongKind, wrongSandbox, notAnId] = await Promise.all([
      segql(['cancel', gid, '--no-wait']),
      segql(['cancel', '999999']),
      segql(['cancel', encodeGlobalId('ExportJob', jobId)]),
      segql(['cancel', String(jobId), '--sandbox', 'elsewhere']),
      segql(['cancel', encodeGlobalId('Audience', jobId)]),
    ]);
    expect(queued).toEqual({ code: 0, stdout: `job ${gid} (${jobId}) CANCELLED\n`, stderr: '' });
    expect(await status(jobId)).toBe('CANCELLED');
    expect(unknown).toEqual({
      code: 2,
      stdout: '',
      stderr: 'segql cancel: no segment or export job 999999 in "prod"\n',
    });
    expect(wrongKind.code).toBe(2);
    expect(wrongKind.stderr).toMatch(/^segql cancel: no segment or export job \S+ in "prod"\n$/);
    expect(wrongSandbox).toEqual({
      code: 2,
      stdout: '',
      stderr: 'segql cancel: Sandbox "elsewhere" does not exist\n',
    });
    expect(notAnId.code).toBe(2);
    expect(notAnId.stderr).toMatch(/^segql cancel: "\S+" is not a segment or export job id\n$/);
  });
});
