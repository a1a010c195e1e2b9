/**
 * Three `segql work` processes on one PostgreSQL share a segment job; the one that takes the
 * first range is killed with SIGKILL mid-range. Another node takes the range back once its lease
 * has passed, the job ends SUCCEEDED within the lease time, and its memberships equal an
 * uninterrupted run's (the single-process job on the same store). Skipped without
 * SEGQL_TEST_DATABASE_URL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueClusterSegmentJob } from '../../src/domain/cluster/cluster-segment-job.js';
import { encodeGlobalId } from '../../src/domain/ids.js';
import { type PgTestDatabase, pgAdminUrl, pgCopyOf } from '../db/pg-test-database.js';
import { buildSegmentStore, type SegmentStore, STORE_NOW } from '../db/segment-store.js';
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

interface NodeLine {
  msg: string;
  tick?: { scheduleId: number; dueAt: number; lastDueAt?: number | null; count?: number; outcome: string };
  range?: { jobId: number; rangeNo: number; attempts: number };
  count?: number;
  jobId?: number;
  end?: string;
}

type NodeProcess = WorkNode<NodeLine>;

describe.skipIf(!pgAdminUrl)(
  'a segment job across three segql work processes (PostgreSQL)',
  { timeout: 180_000 },
  () => {
    let store: SegmentStore;
    let db: PgTestDatabase;
    const nodes: NodeProcess[] = [];
    let onLine: ((node: NodeProcess, line: NodeLine) => void) | undefined;

    const startNode = (name: string): NodeProcess =>
      startWorkNode<NodeLine>(
        name,
        { args: ['--lease-ms', String(LEASE_MS), '--range-profiles', '1000'], env: { SEGQL_DATABASE_URL: db.url } },
        (node, line) => onLine?.(node, line),
      );

    beforeAll(async () => {
      store = await buildSegmentStore('cluster_kill', 6_000, 6);
      db = await pgCopyOf(store.conn.sqlite, 'cluster_kill');
      for (const name of ['n1', 'n2', 'n3']) nodes.push(startNode(name));
      await untilStarted(nodes);
    }, 180_000);

    afterAll(async () => {
      await stopWorkNodes(nodes);
      store?.close();
      await db?.drop();
    });

    it('finishes the job on the other nodes after one is killed mid-range, with the memberships of an uninterrupted run', async () => {
      let killed: { node: NodeProcess; rangeNo: number } | undefined;
      onLine = (node, line) => {
        if (!killed && line.msg === 'range-claimed' && line.range) {
          killed = { node, rangeNo: line.range.rangeNo };
          node.child.kill('SIGKILL');
        }
      };
      const jobId = await enqueueClusterSegmentJob(db.conn.pool, store.sandboxId, {
        definitionIds: store.definitions.map((d) => d.id),
        all: false,
        at: STORE_NOW,
      });
      const started = Date.now();
      const status = async () =>
        (await db.conn.pool.query('SELECT status FROM jobs WHERE id = $1', [jobId])).rows[0].status;
      await until('the job ends', async () => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(await status()), 90_000);
      const elapsed = Date.now() - started;
      expect(await status()).toBe('SUCCEEDED');
      expect(killed).toBeDefined();
      await killed!.node.exited;
      // The killed node never finished its range; a survivor took it back after the lease passed.
      const survivors = nodes.filter((n) => n !== killed!.node);
      expect(killed!.node.lines.some((l) => l.msg === 'range-ended')).toBe(false);
      const retaken = survivors.flatMap((n) =>
        n.lines.filter(
          (l) => l.msg === 'range-claimed' && l.range?.jobId === jobId && l.range.rangeNo === killed!.rangeNo,
        ),
      );
      expect(retaken.map((l) => l.range!.attempts)).toEqual([2]);
      expect(survivors.some((n) => n.lines.some((l) => l.msg === 'ranges-requeued'))).toBe(true);
      // Within a few lease times (the job itself takes seconds on a loaded 2-core machine).
      expect(elapsed).toBeLessThan(LEASE_MS * 15);

      // The uninterrupted run: the single-process job on the same store.
      await store.runSqliteJob();
      const { conn } = store;
      const sql =
        'SELECT audience_id, profile_id, status, qualified_at FROM memberships ORDER BY audience_id, profile_id';
      const expected = conn.sqlite.prepare(sql).raw().all();
      const actual = (await db.conn.pool.query({ text: sql, rowMode: 'array' })).rows;
      expect(actual.length).toBeGreaterThan(2_500);
      expect(actual).toEqual(expected);
      // Nothing of the job is left behind: its ranges and staged verdicts went with its final write.
      const left = (
        await db.conn.pool.query(
          'SELECT (SELECT count(*) FROM job_ranges) AS ranges, (SELECT count(*) FROM job_range_results) AS staged',
        )
      ).rows[0];
      expect(left).toEqual({ ranges: 0, staged: 0 });
    });

    it('runs a job queued with `segql segment`, which follows it to SUCCEEDED', async () => {
      const ids = store.definitions.slice(0, 3).map((d) => String(d.id));
      const run = await segql(
        ['segment', ...ids.flatMap((id) => ['--definition', id]), '--at', '2026-11-01T00:00:00Z'],
        { SEGQL_DATABASE_URL: db.url },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const lines = run.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/^job \S+ \(\d+\) queued$/);
      expect(lines.at(-1)).toMatch(/^SUCCEEDED \d+\/\d+$/);
      const jobId = Number(/\((\d+)\)/.exec(lines[0]!)![1]);
      const job = (await db.conn.pool.query('SELECT input, result FROM jobs WHERE id = $1', [jobId])).rows[0];
      expect(job.input.plan.definitions.map((d: { definitionId: number }) => String(d.definitionId)).sort()).toEqual(
        [...ids].sort(),
      );
      expect(job.input.now).toBe(STORE_NOW);
      expect(job.result.metrics.totalProfiles).toBe(6_000);
    });

    it('accounts for each due time of an every-second schedule exactly once across the nodes', async () => {
      // The killed node's place is taken, so three nodes race for every due time again.
      nodes.push(startNode('n4'));
      await untilStarted([nodes.at(-1)!]);
      const { scheduleId, ticks } = await expectEachSecondOnce(db.conn.pool, nodes, {
        sandboxId: store.sandboxId,
        name: 'every second',
        type: 'BATCH_SEGMENTATION',
        properties: { segments: [encodeGlobalId('SegmentDefinition', store.definitions[0]!.id)] },
        seconds: 6,
      });
      const started = ticks.filter((t) => t.outcome === 'STARTED').map((t) => t.job_id);
      const jobs = (
        await db.conn.pool.query('SELECT id, trigger, schedule_id FROM jobs WHERE schedule_id = $1 ORDER BY id', [
          scheduleId,
        ])
      ).rows;
      expect(jobs.map((j) => j.id)).toEqual(started);
      expect(jobs.every((j) => j.trigger === 'SCHEDULE')).toBe(true);
    });
  },
);
