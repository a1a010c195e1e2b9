/**
 * Three `segql serve` processes on one PostgreSQL and one Redis, each serving the whole API and
 * each a node of the job cluster, used as a client would use them: plain HTTP for queries and
 * mutations, graphql-ws for subscriptions, a different node for each side. A subscriber on one
 * node follows a job started on another to SUCCEEDED; an ingest on a third reaches a streaming
 * audience's subscriber on the first; an every-second schedule is accounted for once per due
 * time across the three; and the node holding a range of a job is killed with SIGKILL, the others
 * finish the job once its lease has passed, with the memberships of an uninterrupted run (the
 * single-process job on a SQLite copy of the same store). Skipped without SEGQL_TEST_DATABASE_URL
 * and SEGQL_TEST_REDIS_URL.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createClient } from 'graphql-ws';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeGlobalId } from '../../src/domain/ids.js';
import { type PgTestDatabase, pgAdminUrl, pgCopyOf } from '../db/pg-test-database.js';
import { buildSegmentStore, type SegmentStore, STORE_NOW } from '../db/segment-store.js';
import { killSpawned, type ServerProcess, spawnServer } from './process.js';
import { until } from './work-nodes.js';

const redisUrl = process.env.SEGQL_TEST_REDIS_URL;
const LEASE_MS = 2_000;
const PROFILES = 6_000;
/** Six ranges a job: enough for every node to take some, and for one to die holding one. */
const RANGE_PROFILES = 1_000;

/** A log line of a serving node; the cluster node's events are logged at debug. */
interface LogLine {
  msg: string;
  time: number;
  range?: { jobId: number; rangeNo: number; sandboxId: number; attempts: number };
}

interface ServeNode extends ServerProcess {
  name: string;
  lines: LogLine[];
}

type Gql = (query: string, variables?: Record<string, unknown>) => Promise<Record<string, any>>;

/** A query or mutation over HTTP to `node`, in `sandbox`; GraphQL errors throw. */
function gqlOn(node: ServeNode, sandbox = 'prod'): Gql {
  return async (query, variables) => {
    const res = await fetch(node.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-sandbox-name': sandbox },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data?: Record<string, any>; errors?: unknown[] };
    if (body.errors) throw new Error(`${node.name}: ${JSON.stringify(body.errors)}`);
    return body.data!;
  };
}

/** Every payload of one subscription on `node`, as a graphql-ws client receives them. */
function subscribe<T>(node: ServeNode, sandbox: string, query: string, variables: Record<string, unknown> = {}) {
  const client = createClient({
    url: node.url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: { 'x-sandbox-name': sandbox },
  });
  const seen: T[] = [];
  const errors: unknown[] = [];
  client.subscribe<Record<string, T>>(
    { query, variables },
    {
      next: (m) => {
        if (m.errors) errors.push(m.errors);
        else seen.push(Object.values(m.data!)[0]!);
      },
      error: (err) => errors.push(err),
      complete: () => {},
    },
  );
  return { seen, errors, dispose: () => client.dispose() };
}

describe.skipIf(!pgAdminUrl || !redisUrl)(
  'three segql serve nodes on one PostgreSQL and one Redis',
  { timeout: 60_000 },
  () => {
    let store: SegmentStore;
    let db: PgTestDatabase;
    let dataDir: string;
    const redisPrefix = `segql-test-${randomBytes(4).toString('hex')}:`;
    const nodes: ServeNode[] = [];
    let redis: Redis;
    /** Hears every node's log lines as they come (the kill hook). */
    let onLine: ((node: ServeNode, line: LogLine) => void) | undefined;

    /** Until node subscriptions have made Redis count `n` subscribers on the topic. */
    const subscribers = (topic: string, n: number) =>
      until(
        `${n} subscriber(s) of ${topic}`,
        async () => ((await redis.pubsub('NUMSUB', redisPrefix + topic)) as [string, number])[1] === n,
        10_000,
      );

    beforeAll(async () => {
      store = await buildSegmentStore('cluster_api', PROFILES, 6);
      db = await pgCopyOf(store.conn.sqlite, 'cluster_api');
      dataDir = mkdtempSync(join(tmpdir(), 'segql-cluster-api-'));
      redis = new Redis(redisUrl!);
      const started = await Promise.all(
        ['n1', 'n2', 'n3'].map(async (name) => {
          const server = await spawnServer(dataDir, {
            SEGQL_DATABASE_URL: db.url,
            SEGQL_REDIS_URL: redisUrl!,
            SEGQL_REDIS_PREFIX: redisPrefix,
            SEGQL_LEASE_MS: String(LEASE_MS),
            SEGQL_RANGE_PROFILES: String(RANGE_PROFILES),
            SEGQL_LOG_LEVEL: 'debug',
          });
          const node: ServeNode = { ...server, name, lines: [] };
          createInterface({ input: server.child.stdout! }).on('line', (text) => {
            let line: LogLine;
            try {
              line = JSON.parse(text) as LogLine;
            } catch {
              return; // not a log line
            }
            node.lines.push(line);
            onLine?.(node, line);
          });
          return node;
        }),
      );
      nodes.push(...started);
    }, 60_000);

    afterAll(async () => {
      killSpawned();
      await redis?.quit();
      store?.close();
      await db?.drop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    const jobRangesBy = (jobId: number) =>
      nodes.map((n) =>
        n.lines.filter((l) => l.msg === 'range-claimed' && l.range?.jobId === jobId).map((l) => l.range!.rangeNo),
      );

    /** The job id inside a global id. */
    const jobIdOf = (globalId: string) => Number(/:(\d+)$/.exec(Buffer.from(globalId, 'base64').toString())![1]);

    let sqliteRuns = 0;
    /**
     * The memberships of the reference audiences equal those the single-process job leaves on the
     * SQLite copy, run there as many times as the reference job has succeeded on the cluster.
     */
    const expectSqliteMemberships = async () => {
      const { runs } = (
        await db.conn.pool.query(
          `SELECT count(*)::int AS runs FROM jobs WHERE sandbox_id = $1 AND kind = 'SEGMENT' AND status = 'SUCCEEDED'`,
          [store.sandboxId],
        )
      ).rows[0];
      for (; sqliteRuns < runs; sqliteRuns++) await store.runSqliteJob();
      const sql =
        'SELECT audience_id, profile_id, status, qualified_at FROM memberships WHERE audience_id <= $1 ORDER BY audience_id, profile_id';
      const last = store.conn.sqlite.prepare('SELECT max(id) AS id FROM audiences').get() as { id: number };
      const expected = store.conn.sqlite.prepare(sql.replace('$1', '?')).raw().all(last.id);
      const actual = (await db.conn.pool.query({ text: sql, values: [last.id], rowMode: 'array' })).rows;
      expect(actual.length).toBeGreaterThan(2_500);
      expect(actual).toEqual(expected);
    };

    const startReferenceJob = async (node: ServeNode) =>
      (
        await gqlOn(node)(
          'mutation($ids: [ID!], $at: DateTime) { createSegmentJob(input: { segmentDefinitionIds: $ids, at: $at }) { id } }',
          {
            ids: store.definitions.map((d) => encodeGlobalId('SegmentDefinition', d.id)),
            at: new Date(STORE_NOW).toISOString(),
          },
        )
      ).createSegmentJob as { id: string };

    let firstJobId = 0;

    it('streams a job started on node 2 to a subscriber on node 1, in order, to SUCCEEDED', async () => {
      const [n1, n2] = nodes as [ServeNode, ServeNode];
      const events = subscribe<{ id: string; status: string; progress: { done: number; total: number | null } }>(
        n1,
        'prod',
        'subscription { jobEvents(kinds: [SEGMENT]) { id status progress { done total } } }',
      );
      try {
        await subscribers(`jobs:${store.sandboxId}`, 1);
        const job = await startReferenceJob(n2);
        await until('node 1 sees the job end', () => events.seen.some((e) => e.status === 'SUCCEEDED'), 30_000);
        expect(events.errors).toEqual([]);
        const seen = events.seen;
        expect(seen.every((e) => e.id === job.id)).toBe(true);
        const last = seen.at(-1)!;
        expect(last.status).toBe('SUCCEEDED');
        expect(last.progress.total).toBeGreaterThan(0);
        expect(last.progress.done).toBe(last.progress.total);
        // States only move forward and progress only grows: one ordered stream, whichever node ran which range.
        const order = ['QUEUED', 'PROCESSING', 'SUCCEEDED'];
        for (let i = 1; i < seen.length; i++) {
          expect(order.indexOf(seen[i]!.status)).toBeGreaterThanOrEqual(order.indexOf(seen[i - 1]!.status));
          expect(seen[i]!.progress.done).toBeGreaterThanOrEqual(seen[i - 1]!.progress.done);
        }
        // Progress on the way, and each state once: node 1 learns of every change from PostgreSQL,
        // not once more through Redis from each other node.
        expect(
          seen.some((e) => e.status === 'PROCESSING' && e.progress.done > 0 && e.progress.done < last.progress.done),
        ).toBe(true);
        expect(seen.filter((e) => e.status === 'QUEUED').length).toBeLessThanOrEqual(1);
        expect(seen.filter((e) => e.status === 'SUCCEEDED')).toHaveLength(1);
        const ranges = jobRangesBy(jobIdOf(job.id));
        firstJobId = jobIdOf(job.id);
        expect(ranges.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
        await expectSqliteMemberships();
      } finally {
        await events.dispose();
      }
    });

    /** A second sandbox for streaming and the schedule, so the reference audiences see no other writes. */
    let live: { id: number; gold: { id: string; audience: { id: string } } } | undefined;
    const liveSandbox = async () => {
      if (live) return live;
      const [n1, n2] = nodes as [ServeNode, ServeNode];
      await gqlOn(n1)('mutation { createSandbox(name: "live") { name } }');
      const id = (await db.conn.pool.query(`SELECT id FROM sandboxes WHERE name = 'live'`)).rows[0].id as number;
      const gold = (
        await gqlOn(
          n2,
          'live',
        )(
          `mutation { createSegmentDefinition(input: { name: "Gold", expression: { value: "loyalty.tier = \\"gold\\"" },
             evaluationInfo: { batch: true, streaming: true }, lifecycleState: PUBLISHED }) { id audience { id } } }`,
        )
      ).createSegmentDefinition;
      live = { id, gold };
      return live;
    };

    it('streams the membership changes of an ingest on node 3 to a subscriber on node 1', async () => {
      const [n1, , n3] = nodes as [ServeNode, ServeNode, ServeNode];
      const { id: sandboxId, gold } = await liveSandbox();
      const changes = subscribe<{
        audience: { id: string };
        profile: { id: string };
        from: string | null;
        to: string;
        cause: string;
        lagged: number;
      }>(
        n1,
        'live',
        'subscription($a: ID) { audienceMembershipChanged(audienceId: $a) { audience { id } profile { id } from to cause lagged } }',
        { a: gold.audience.id },
      );
      try {
        await subscribers(`memberships:${sandboxId}`, 1);
        const ingest = gqlOn(n3, 'live');
        const mutation = 'mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }';
        const tier = (id: string, t: string) => ({
          identities: [{ namespace: 'email', id }],
          attributes: { loyalty: { tier: t } },
        });
        expect(
          (await ingest(mutation, { r: [tier('ann@x.se', 'gold'), tier('bo@x.se', 'silver')] })).ingestProfiles,
        ).toEqual({
          accepted: 2,
        });
        expect((await ingest(mutation, { r: [tier('ann@x.se', 'silver')] })).ingestProfiles).toEqual({ accepted: 1 });
        await until('node 1 sees both changes', () => changes.seen.length >= 2, 10_000);
        // Nothing more comes: each change once, from the one node that made it.
        await new Promise((r) => setTimeout(r, 300));
        expect(changes.errors).toEqual([]);
        const ann = (await gqlOn(n3, 'live')('{ profile(identity: { namespace: "email", id: "ann@x.se" }) { id } }'))
          .profile.id;
        const base = { audience: { id: gold.audience.id }, profile: { id: ann }, cause: 'STREAMING', lagged: 0 };
        expect(changes.seen).toEqual([
          { ...base, from: null, to: 'REALIZED' },
          { ...base, from: 'REALIZED', to: 'EXITED' },
        ]);
      } finally {
        await changes.dispose();
      }
    });

    it('accounts for each due time of an every-second schedule once across the three nodes', async () => {
      const [, n2, n3] = nodes as [ServeNode, ServeNode, ServeNode];
      const { id: sandboxId, gold } = await liveSandbox();
      const schedule = (
        await gqlOn(n2, 'live')(
          `mutation($p: JSON!) { createSchedule(input: { name: "every second", type: BATCH_SEGMENTATION, cron: "* * * * * *",
             properties: $p, state: INACTIVE }) { id } }`,
          { p: { segments: [gold.id] } },
        )
      ).createSchedule as { id: string };
      const ticks = subscribe<{ dueAt: string; outcome: string; count: number }>(
        n3,
        'live',
        'subscription($s: ID) { scheduleTicked(scheduleId: $s) { dueAt outcome count } }',
        { s: schedule.id },
      );
      const SECONDS = 5;
      const setState = (state: string) =>
        gqlOn(n2, 'live')(
          'mutation($id: ID!, $state: ScheduleState) { updateSchedule(id: $id, input: { state: $state }) { nextRunAt } }',
          { id: schedule.id, state },
        );
      try {
        await subscribers(`schedule-ticks:${sandboxId}`, 1);
        const first = Date.parse((await setState('ACTIVE')).updateSchedule.nextRunAt);
        await new Promise((r) => setTimeout(r, first + SECONDS * 1_000 + 500 - Date.now()));
        await setState('INACTIVE');
        // A node inside a tick's transaction commits it; its event follows.
        await new Promise((r) => setTimeout(r, 1_000));
        const scheduleId = Number(/:(\d+)$/.exec(Buffer.from(schedule.id, 'base64').toString())![1]);
        const rows = (
          await db.conn.pool.query(
            'SELECT due_at, last_due_at, count, outcome, job_id FROM schedule_ticks WHERE schedule_id = $1 ORDER BY due_at',
            [scheduleId],
          )
        ).rows as {
          due_at: number;
          last_due_at: number | null;
          count: number;
          outcome: string;
          job_id: number | null;
        }[];
        // Every second from the first due time on, each accounted for once (a MISSED run of several counts each).
        const covered: number[] = [];
        for (const t of rows) for (let at = t.due_at; at <= (t.last_due_at ?? t.due_at); at += 1000) covered.push(at);
        expect(covered.length).toBeGreaterThanOrEqual(SECONDS);
        expect(covered).toEqual(covered.map((_, i) => first + i * 1000));
        expect(rows.reduce((n, t) => n + t.count, 0)).toBe(covered.length);
        expect(rows[0]!.outcome).toBe('STARTED');
        for (const t of rows) expect(['STARTED', 'SKIPPED_OVERLAP', 'MISSED']).toContain(t.outcome);
        // One run per STARTED due time, and no other.
        const runs = (
          await db.conn.pool.query('SELECT id, trigger FROM jobs WHERE schedule_id = $1 ORDER BY id', [scheduleId])
        ).rows;
        expect(runs.map((j) => j.id)).toEqual(rows.filter((t) => t.outcome === 'STARTED').map((t) => t.job_id));
        expect(runs.every((j) => j.trigger === 'SCHEDULE')).toBe(true);
        // The subscriber on node 3 heard each tick once, whichever node recorded it.
        expect(ticks.errors).toEqual([]);
        expect(ticks.seen.map((t) => [Date.parse(t.dueAt), t.outcome, t.count])).toEqual(
          rows.map((t) => [Number(t.due_at), t.outcome, t.count]),
        );
      } finally {
        await ticks.dispose();
      }
    });

    it('finishes a job on the other nodes once a node killed holding a range has lost its lease', async () => {
      const n3 = nodes[2]!;
      // The first node other than the one asked (whose answer the kill must not cut off) to take a range of the job.
      let killed: { node: ServeNode; claim: LogLine; at: number } | undefined;
      onLine = (node, line) => {
        const r = line.range;
        if (killed || node === n3 || line.msg !== 'range-claimed' || !r) return;
        if (r.sandboxId !== store.sandboxId || r.jobId <= firstJobId) return;
        node.child.kill('SIGKILL');
        killed = { node, claim: line, at: Date.now() };
      };
      const job = await startReferenceJob(n3);
      const jobId = jobIdOf(job.id);
      await until('a node is killed holding a range', () => killed !== undefined, 20_000);
      const { node: victim, claim } = killed!;
      expect(claim.range!.jobId).toBe(jobId);
      // The range is still the dead node's: it was killed mid-range, before it could finish it.
      const held = (
        await db.conn.pool.query(
          'SELECT status, lease_owner, lease_until, attempts FROM job_ranges WHERE job_id = $1 AND range_no = $2',
          [jobId, claim.range!.rangeNo],
        )
      ).rows[0];
      expect(held).toMatchObject({ status: 'PROCESSING', attempts: 1 });
      expect(held.lease_owner).toContain(`:${victim.child.pid}:`);
      const survivor = nodes.find((n) => n !== victim && n !== n3)!;
      const updates = subscribe<{ status: string; progress: { done: number; total: number | null } }>(
        survivor,
        'prod',
        'subscription($id: ID!) { segmentJobUpdated(id: $id) { status progress { done total } } }',
        { id: job.id },
      );
      try {
        await until(
          'the job ends',
          () => updates.seen.some((u) => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(u.status)),
          30_000,
        );
        const elapsed = Date.now() - killed!.at;
        expect(updates.errors).toEqual([]);
        const last = updates.seen.at(-1)!;
        expect(last.status).toBe('SUCCEEDED');
        expect(last.progress.done).toBe(last.progress.total);
        await victim.exited;
        // Taken back by a survivor on its second attempt, no sooner than the lease allowed.
        const retaken = nodes
          .filter((n) => n !== victim)
          .flatMap((n) =>
            n.lines.filter(
              (l) => l.msg === 'range-claimed' && l.range?.jobId === jobId && l.range.rangeNo === claim.range!.rangeNo,
            ),
          );
        expect(retaken.map((l) => l.range!.attempts)).toEqual([2]);
        expect(Number(held.lease_until) - claim.time).toBeGreaterThan(LEASE_MS - 500);
        expect(retaken[0]!.time).toBeGreaterThan(Number(held.lease_until));
        // Within a few lease times of the kill (the rest of the job runs meanwhile).
        expect(elapsed).toBeLessThan(LEASE_MS * 4);
        // The memberships of uninterrupted runs: the single-process job, run as often on the same store.
        await expectSqliteMemberships();
        const left = (
          await db.conn.pool.query(
            'SELECT (SELECT count(*) FROM job_ranges WHERE job_id = $1) AS ranges, (SELECT count(*) FROM job_range_results WHERE job_id = $1) AS staged',
            [jobId],
          )
        ).rows[0];
        expect(left).toEqual({ ranges: 0, staged: 0 });
      } finally {
        await updates.dispose();
      }
    });
  },
);

describe.skipIf(pgAdminUrl && redisUrl)('three segql serve nodes on one PostgreSQL and one Redis', () => {
  it.skip('need SEGQL_TEST_DATABASE_URL and SEGQL_TEST_REDIS_URL', () => {});
});
