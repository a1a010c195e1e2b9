/**
 * Several SegQL nodes sharing events through Redis (SEGQL_REDIS_URL), each with its own data
 * directory here: a subscriber on one node sees the job changes another node publishes, as a
 * subscriber on the publishing node does. /readyz names Redis when it cannot be reached. The
 * two-node test is skipped (visibly) without SEGQL_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379.
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
    const probe = new Redis(url!);
    try {
      for (let i = 0; i < 300; i++) {
        const [, n] = (await probe.pubsub('NUMSUB', `${redisPrefix}jobs:1`)) as [string, number];
        if (n === 2) break;
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      await probe.quit();
    }
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
