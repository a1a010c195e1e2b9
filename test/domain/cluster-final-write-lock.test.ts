/**
 * A cluster segment job's final write (`endJob`) and a sandbox's pooled ingests take one lock of
 * the cluster, the ingest lock: while a unit holding it is open (an ingest with its streaming
 * step, say), the job's memberships wait, and they are written once it commits; another
 * sandbox's ingests do not hold it up. Skipped without SEGQL_TEST_DATABASE_URL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeUnit } from '../../src/db/unit.js';
import {
  type ClusterSettings,
  endJob,
  enqueueClusterSegmentJob,
  planOf,
  runRange,
  startQueuedSegmentJob,
} from '../../src/domain/cluster/cluster-segment-job.js';
import { claimRange } from '../../src/domain/cluster/range-queue.js';
import { ingestLock } from '../../src/domain/pooled-ingest.js';
import { type PgTestDatabase, pgAdminUrl, pgCopyOf } from '../db/pg-test-database.js';
import { buildSegmentStore, type SegmentStore, STORE_NOW } from '../db/segment-store.js';

const SETTINGS: ClusterSettings = { node: 'node-a', leaseMs: 60_000, rangeProfiles: 150, chunkSize: 1_000 };

describe.skipIf(!pgAdminUrl)('a cluster segment job’s final write and the ingest lock (PostgreSQL)', () => {
  let store: SegmentStore;
  let db: PgTestDatabase;
  const q = (sql: string, params: unknown[] = []) => db.conn.pool.query(sql, params);

  beforeAll(async () => {
    store = await buildSegmentStore('final_write_lock', 300, 2);
    db = await pgCopyOf(store.conn.sqlite, 'final_write_lock');
  }, 120_000);

  afterAll(async () => {
    store?.close();
    await db?.drop();
  });

  /** A job over every definition, started and its ranges run by this process: only its end is left. */
  async function jobToEnd(): Promise<number> {
    await enqueueClusterSegmentJob(db.conn.pool, store.sandboxId, {
      definitionIds: store.definitions.map((d) => d.id),
      all: false,
      at: STORE_NOW,
    });
    const jobId = (await startQueuedSegmentJob(db.conn.pool, SETTINGS))!;
    for (;;) {
      const range = await claimRange(db.conn.pool, SETTINGS.node, SETTINGS.leaseMs);
      if (!range) break;
      expect(await runRange(db.conn.pool, range, (await planOf(db.conn.pool, jobId))!, SETTINGS)).toBe('done');
    }
    return jobId;
  }

  const status = async (jobId: number) => (await q('SELECT status FROM jobs WHERE id = $1', [jobId])).rows[0].status;
  const members = async () => Number((await q('SELECT count(*) AS n FROM memberships')).rows[0].n);
  /** endJob's connection waiting for the advisory lock whose key is the sandbox's ingest lock. */
  const waitingOnIngestLock = async (sandboxId: number) => {
    const [kind, key] = ingestLock(sandboxId);
    const { rows } = await q(
      `SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
         AND classid = CAST($1 AS bigint)::oid AND objid = CAST($2 AS bigint)::oid AND objsubid = 2`,
      [kind, key],
    );
    return Number(rows[0].n);
  };

  /** Opens a unit holding `lock` as a pooled ingest does; it commits when `release` is called. */
  function holdUnit(lock: readonly [number, number]) {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const unit = writeUnit(
      db.conn,
      async () => {
        entered();
        await released;
      },
      { lock },
    );
    return { inside, release, unit };
  }

  it('waits for an open unit of the sandbox’s ingests, then writes', async () => {
    const jobId = await jobToEnd();
    expect(await members()).toBe(0);
    const held = holdUnit(ingestLock(store.sandboxId));
    await held.inside;
    let ended: string | undefined;
    const ending = endJob(db.conn.pool, jobId).then((r) => {
      ended = r;
      return r;
    });
    // Blocked on the ingest lock, not merely slow: its connection waits for exactly that lock.
    const deadline = Date.now() + 10_000;
    while ((await waitingOnIngestLock(store.sandboxId)) === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await waitingOnIngestLock(store.sandboxId)).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(ended).toBeUndefined();
    expect(await status(jobId)).toBe('PROCESSING');
    expect(await members()).toBe(0);
    held.release();
    await held.unit;
    expect(await ending).toBe('succeeded');
    expect(await status(jobId)).toBe('SUCCEEDED');
    expect(await members()).toBeGreaterThan(50);
  }, 120_000);

  it('is not held up by another sandbox’s ingests', async () => {
    const jobId = await jobToEnd();
    const held = holdUnit(ingestLock(store.sandboxId + 1));
    await held.inside;
    try {
      expect(await endJob(db.conn.pool, jobId)).toBe('succeeded');
      expect(await status(jobId)).toBe('SUCCEEDED');
    } finally {
      held.release();
      await held.unit;
    }
  }, 120_000);
});
