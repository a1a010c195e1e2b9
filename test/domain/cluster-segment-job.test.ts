/**
 * A segment job run by three cluster nodes on PostgreSQL gives the memberships, sizes and
 * counts the single-process SQLite job gives on the same store: first run (REALIZED), second run
 * (EXISTING), and after profiles change (EXITED and new REALIZED). Skipped without
 * SEGQL_TEST_DATABASE_URL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterNode, type NodeEvent, startClusterNode } from '../../src/domain/cluster/cluster-node.js';
import { enqueueClusterSegmentJob } from '../../src/domain/cluster/cluster-segment-job.js';
import type { SegmentMetrics } from '../../src/domain/segment-jobs/segment-evaluation.js';
import { type PgTestDatabase, pgAdminUrl, pgCopyOf } from '../db/pg-test-database.js';
import { buildSegmentStore, type SegmentStore, STORE_NOW } from '../db/segment-store.js';

describe.skipIf(!pgAdminUrl)('a segment job on three cluster nodes (PostgreSQL)', () => {
  let store: SegmentStore;
  let db: PgTestDatabase;
  const nodes: ClusterNode[] = [];
  const events: (NodeEvent & { node: number })[] = [];
  let waiters: (() => void)[] = [];

  beforeAll(async () => {
    store = await buildSegmentStore('cluster_job', 2_000, 6);
    db = await pgCopyOf(store.conn.sqlite, 'cluster_job');
    for (let i = 0; i < 3; i++) {
      nodes.push(
        await startClusterNode({
          pool: db.conn.pool,
          url: db.url,
          node: `node-${i}`,
          // Renewals every 500 ms land while ranges evaluate (seconds each here), so the staging
          // transaction meets range rows changed since the evaluation's snapshot.
          leaseMs: 1_500,
          rangeProfiles: 400,
          pollMs: 200,
          onEvent: (event) => {
            events.push({ ...event, node: i });
            for (const w of waiters) w();
            waiters = [];
          },
        }),
      );
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    store?.close();
    await db?.drop();
  });

  const definitionIds = () => store.definitions.map((d) => d.id);

  async function clusterJob(): Promise<{ metrics: SegmentMetrics; jobId: number }> {
    const jobId = await enqueueClusterSegmentJob(db.conn.pool, store.sandboxId, {
      definitionIds: definitionIds(),
      all: false,
      at: STORE_NOW,
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ended = events.find((e) => e.type === 'job-ended' && e.jobId === jobId);
      if (ended) break;
      const error = events.find((e) => e.type === 'error');
      if (error?.type === 'error') throw error.error;
      if (Date.now() > deadline) throw new Error(`job ${jobId} did not end in 60 s`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 500);
      });
    }
    const row = (await db.conn.pool.query('SELECT status, error, result FROM jobs WHERE id = $1', [jobId])).rows[0];
    expect({ status: row.status, error: row.error }).toEqual({ status: 'SUCCEEDED', error: null });
    return { metrics: row.result.metrics, jobId };
  }

  type Row = [number, number, string, number | null, number | null];
  function sqliteMemberships(): Row[] {
    return (
      store.conn.sqlite
        .prepare(
          'SELECT audience_id, profile_id, status, qualified_at, exited_at FROM memberships ORDER BY audience_id, profile_id',
        )
        .raw()
        .all() as Row[]
    ).map((r) => [...r] as Row);
  }
  async function pgMemberships(): Promise<Row[]> {
    const { rows } = await db.conn.pool.query({
      text: 'SELECT audience_id, profile_id, status, qualified_at, exited_at FROM memberships ORDER BY audience_id, profile_id',
      rowMode: 'array',
    });
    return rows as Row[];
  }
  const sizes = async () => ({
    sqlite: store.conn.sqlite.prepare('SELECT id, size FROM audiences ORDER BY id').raw().all(),
    pg: (await db.conn.pool.query({ text: 'SELECT id, size FROM audiences ORDER BY id', rowMode: 'array' })).rows,
  });

  function comparable(m: SegmentMetrics) {
    const { totalTimeMs: _t, profileSegmentationTimeMs: _s, ...rest } = m;
    return rest;
  }

  it('gives the memberships, sizes and metrics the SQLite job gives, run after run', async () => {
    const first = await clusterJob();
    const firstSqlite = await store.runSqliteJob();
    expect(comparable(first.metrics)).toEqual(comparable(firstSqlite));
    expect(first.metrics.totalProfiles).toBe(2_000);
    const members = await pgMemberships();
    expect(members.length).toBeGreaterThan(700);
    expect(members).toEqual(sqliteMemberships());
    const s = await sizes();
    expect(s.pg).toEqual(s.sqlite);
    // The work was spread: 2 000 profiles at about 400 a range, taken by more than one node.
    const claims = events.flatMap((e) =>
      e.type === 'range-claimed' && e.range.jobId === first.jobId ? [{ ...e.range, node: e.node }] : [],
    );
    // (A range may be claimed twice if a loaded machine let a lease pass; each is done once.)
    expect(new Set(claims.map((c) => c.rangeNo))).toEqual(new Set([0, 1, 2, 3, 4]));
    expect(new Set(claims.map((c) => c.node)).size).toBeGreaterThan(1);
    // A node holds up to two ranges at once (its default range slots): the node that starts the
    // job claims two before any other node has woken, and each is ended once.
    const held = nodes.map((_, i) => {
      let now = 0;
      let most = 0;
      for (const e of events) {
        if (e.node !== i || !('range' in e) || e.range.jobId !== first.jobId) continue;
        if (e.type === 'range-claimed') most = Math.max(most, ++now);
        if (e.type === 'range-ended') now--;
      }
      return most;
    });
    expect(Math.max(...held)).toBe(2);

    const second = await clusterJob();
    expect(comparable(second.metrics)).toEqual(comparable(await store.runSqliteJob()));
    expect(await pgMemberships()).toEqual(sqliteMemberships());
    expect(Object.values(second.metrics.segmentedProfileByStatusCounter).some((c) => c.existing > 0)).toBe(true);
  }, 120_000);

  it('moves profiles out and in when they change between runs, as SQLite does', async () => {
    // The same edit on both: a third of the profiles leave the Nordics, some others join.
    store.conn.sqlite.exec(
      `UPDATE profiles SET attributes = jsonb_set(attributes, '$.homeAddress.countryCode', CASE WHEN id % 3 = 0 THEN 'US' ELSE 'SE' END) WHERE id % 5 = 0`,
    );
    await db.conn.pool.query(
      `UPDATE profiles SET attributes = jsonb_set(attributes, '{homeAddress,countryCode}', to_jsonb(CASE WHEN id % 3 = 0 THEN 'US' ELSE 'SE' END)) WHERE id % 5 = 0`,
    );
    const third = await clusterJob();
    const thirdSqlite = await store.runSqliteJob();
    expect(comparable(third.metrics)).toEqual(comparable(thirdSqlite));
    const members = await pgMemberships();
    expect(members.some((m) => m[2] === 'EXITED')).toBe(true);
    expect(members).toEqual(sqliteMemberships());
    const history = async () =>
      (
        await db.conn.pool.query({
          text: 'SELECT profile_id, audience_id, at, from_status, to_status FROM membership_history ORDER BY profile_id, audience_id, at, to_status',
          rowMode: 'array',
        })
      ).rows;
    const liteHistory = store.conn.sqlite
      .prepare(
        'SELECT profile_id, audience_id, at, from_status, to_status FROM membership_history ORDER BY profile_id, audience_id, at, to_status',
      )
      .raw()
      .all();
    expect(await history()).toEqual(liteHistory);
  }, 120_000);
});
