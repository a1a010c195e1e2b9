/**
 * Several SegQL nodes sharing events through Redis (SEGQL_REDIS_URL), each with its own data
 * directory here: a subscriber on one node sees the job changes another node publishes, as a
 * subscriber on the publishing node does, and the membership changes of another node's ingest.
 * /readyz names Redis when it cannot be reached. The two-node tests are skipped (visibly)
 * without SEGQL_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from 'graphql-ws';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ok, startTestServer, type TestServer } from './harness.js';

const url = process.env.SEGQL_TEST_REDIS_URL;
const servers: TestServer[] = [];

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

const readyz = async (server: TestServer) => {
  const res = await fetch(server.url.replace('/graphql', '/readyz'));
  return { status: res.status, body: await res.json() };
};

/** Every jobEvents payload a node sends until a job SUCCEEDED. */
function watchJobs(server: TestServer) {
  const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
  const seen: { kind: string; status: string; id: string }[] = [];
  const done = new Promise<void>((resolve, reject) => {
    const stop = client.subscribe(
      { query: 'subscription { jobEvents(kinds: [SEGMENT]) { kind status ... on SegmentJob { id } } }' },
      {
        next: (m) => {
          const event = m.data!.jobEvents as (typeof seen)[number];
          seen.push(event);
          if (event.status === 'SUCCEEDED') {
            stop();
            resolve();
          }
        },
        error: reject,
        complete: resolve,
      },
    );
  });
  return { seen, done, dispose: () => client.dispose() };
}

/** Until Redis counts `n` subscribed connections on the channel. */
async function subscribers(channel: string, n: number): Promise<void> {
  const probe = new Redis(url!);
  try {
    for (let i = 0; i < 300; i++) {
      const [, count] = (await probe.pubsub('NUMSUB', channel)) as [string, number];
      if (count === n) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`${channel} never had ${n} subscribers`);
  } finally {
    await probe.quit();
  }
}

describe.skipIf(!url)('nodes sharing events through Redis (SEGQL_TEST_REDIS_URL)', () => {
  it('streams a job running on node A to a subscriber on node B, as to one on A', async () => {
    const redisPrefix = `segql-test-${randomBytes(4).toString('hex')}:`;
    const a = await startTestServer({ redisUrl: url, redisPrefix });
    const b = await startTestServer({ redisUrl: url, redisPrefix });
    servers.push(a, b);
    expect(await readyz(a)).toEqual({ status: 200, body: { status: 'ok' } });

    const onA = watchJobs(a);
    const onB = watchJobs(b);
    // Both nodes are subscribed (through Redis) to the sandbox's job topic before the job starts.
    await subscribers(`${redisPrefix}jobs:1`, 2);
    const d = ok(
      await a.gql('mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id } }', {
        i: { name: 'Everyone', expression: { value: 'true' }, lifecycleState: 'PUBLISHED' },
      }),
    ).createSegmentDefinition;
    const job = ok(
      await a.gql('mutation($input: CreateSegmentJobInput!) { createSegmentJob(input: $input) { id } }', {
        input: { segmentDefinitionIds: [d.id] },
      }),
    ).createSegmentJob;
    await Promise.all([onA.done, onB.done]);
    await Promise.all([onA.dispose(), onB.dispose()]);

    expect(onB.seen.length).toBeGreaterThanOrEqual(2);
    expect(onB.seen.every((e) => e.kind === 'SEGMENT' && e.id === job.id)).toBe(true);
    expect(onB.seen[0]!.status).toBe('QUEUED');
    expect(onB.seen.at(-1)!.status).toBe('SUCCEEDED');
    // Node B saw exactly what node A's own subscriber saw: no change lost, none twice.
    expect(onB.seen).toEqual(onA.seen);
    // Node B ran nothing: the job exists only on A.
    expect(ok(await b.gql('{ segmentJobs(first: 5) { totalCount } }')).segmentJobs.totalCount).toBe(0);
  });

  it('streams the membership changes of an ingest on node A to a subscriber on node B', async () => {
    const redisPrefix = `segql-test-${randomBytes(4).toString('hex')}:`;
    const a = await startTestServer({ redisUrl: url, redisPrefix });
    const b = await startTestServer({ redisUrl: url, redisPrefix });
    servers.push(a, b);
    ok(
      await a.gql('mutation($input: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $input) { id } }', {
        input: {
          name: 'Gold',
          expression: { value: 'loyalty.tier = "gold"' },
          evaluationInfo: { batch: true, streaming: true },
          lifecycleState: 'PUBLISHED',
        },
      }),
    );
    const client = createClient({ url: b.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
    const changes: { from: string | null; to: string; cause: string; lagged: number }[] = [];
    client.subscribe(
      { query: 'subscription { audienceMembershipChanged { from to cause lagged } }' },
      {
        next: (m) => changes.push(m.data!.audienceMembershipChanged as (typeof changes)[number]),
        error: () => {},
        complete: () => {},
      },
    );
    // The same changes a commit per message; another node's arrive one per message (docs/api.md).
    const commits: { lagged: number; changes: typeof changes }[] = [];
    client.subscribe(
      { query: 'subscription { audienceMembershipChangesCommitted { lagged changes { from to cause lagged } } }' },
      {
        next: (m) => commits.push(m.data!.audienceMembershipChangesCommitted as (typeof commits)[number]),
        error: () => {},
        complete: () => {},
      },
    );
    try {
      await subscribers(`${redisPrefix}memberships:1`, 1);
      const ingest = 'mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }';
      const gold = (id: string, tier: string) => ({
        identities: [{ namespace: 'email', id }],
        attributes: { loyalty: { tier } },
      });
      ok(await a.gql(ingest, { r: [gold('ann@x.se', 'gold'), gold('bo@x.se', 'silver')] }));
      ok(await a.gql(ingest, { r: [gold('ann@x.se', 'silver')] }));
      for (let i = 0; i < 250 && changes.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
      expect(changes).toEqual([
        { from: null, to: 'REALIZED', cause: 'STREAMING', lagged: 0 },
        { from: 'REALIZED', to: 'EXITED', cause: 'STREAMING', lagged: 0 },
      ]);
      for (let i = 0; i < 250 && commits.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
      expect(commits.every((c) => c.lagged === 0)).toBe(true);
      expect(commits.flatMap((c) => c.changes)).toEqual(changes);
    } finally {
      await client.dispose();
    }
  });
});

describe.skipIf(url)('nodes sharing events through Redis', () => {
  it.skip('need SEGQL_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379', () => {});
});

describe('/readyz with Redis configured', () => {
  it('answers 503 naming Redis when it cannot be reached', async () => {
    const server = await startTestServer({ redisUrl: 'redis://127.0.0.1:1' });
    servers.push(server);
    const { status, body } = await readyz(server);
    expect(status).toBe(503);
    expect(body).toMatchObject({ status: 'unavailable', failed: ['redis'] });
    expect(body.reason).toMatch(/^redis: /);
    // The node still serves what needs no other node.
    expect(ok(await server.gql('{ __typename }')).__typename).toBe('Query');
  });
});
