import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ok, startTestServer, type TestServer } from './harness.js';

const PROFILES = 'mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }';
const QUEUE = 10;
const PROFILE_COUNT = 20_000;
const BATCH = 1_000;
const NAME = 'n'.repeat(500);

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ limits: { subscriptionQueueSize: QUEUE } });
  ok(
    await server.gql('mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id } }', {
      i: {
        name: 'Everyone with points',
        expression: { value: 'loyalty.points >= 0' },
        evaluationInfo: { batch: true, streaming: true },
        lifecycleState: 'PUBLISHED',
      },
    }),
  );
});
afterAll(() => server.stop());

async function droppedTotal(): Promise<number> {
  const text = await (await fetch(server.url.replace('/graphql', '/metrics'))).text();
  return Number(/^segql_subscription_events_dropped_total (\d+)$/m.exec(text)?.[1]);
}

/** A graphql-ws subscriber speaking the protocol by hand, so its socket can stop being read. */
async function rawSubscriber(query: string) {
  const ws = new WebSocket(server.wsUrl, 'graphql-transport-ws');
  const messages: any[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init' })));
    ws.on('message', (data) => {
      const message = JSON.parse(String(data));
      if (message.type === 'connection_ack') {
        ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query } }));
        // The server attaches the subscription within its next turns; give it a moment.
        setTimeout(resolve, 100);
      } else messages.push(message);
    });
    ws.on('error', reject);
  });
  const socket = (ws as unknown as { _socket: Socket })._socket;
  return { ws, messages, pause: () => socket.pause(), resume: () => socket.resume() };
}

describe('a subscriber that reads too slowly', () => {
  it('is told how many changes it lost, /metrics counts them, and ingestion never waits for it', async () => {
    const slow = await rawSubscriber('subscription { audienceMembershipChanged { to lagged profile { id } } }');
    slow.pause();
    const before = await droppedTotal();
    for (let start = 0; start < PROFILE_COUNT; start += BATCH) {
      const records = Array.from({ length: BATCH }, (_, i) => ({
        identities: [{ namespace: 'email', id: `lag${start + i}@example.com` }],
        attributes: { loyalty: { points: start + i } },
      }));
      // Every ingest returns while the subscriber reads nothing.
      expect(ok(await server.gql(PROFILES, { r: records })).ingestProfiles.accepted).toBe(BATCH);
    }
    slow.resume();
    const changes = () =>
      slow.messages.filter((m) => m.type === 'next').map((m) => m.payload.data.audienceMembershipChanged);
    const lost = () => changes().reduce((sum, c) => sum + c.lagged, 0);
    const until = Date.now() + 20_000;
    while (changes().length + lost() < PROFILE_COUNT && Date.now() < until) await new Promise((r) => setTimeout(r, 50));

    const received = changes();
    expect(received.every((c) => c.to === 'REALIZED')).toBe(true);
    // Some were lost (the queue holds 10 and the socket's buffers far fewer than 20,000 changes) …
    expect(lost()).toBeGreaterThan(0);
    // … and every change is either received or counted as lost, none twice.
    expect(received.length + lost()).toBe(PROFILE_COUNT);
    expect(new Set(received.map((c) => c.profile.id)).size).toBe(received.length);
    expect((await droppedTotal()) - before).toBe(lost());
    slow.ws.close();
  }, 60_000);
});

describe('a commit subscriber that reads too slowly', () => {
  it('is told how many changes it lost with the next commit, and ingestion never waits for it', async () => {
    // Each change carries its profile's name: the commits outgrow the sockets' buffers (megabytes
    // on this loopback), so the server has to hold them in the subscriber's queue.
    const slow = await rawSubscriber(
      'subscription { audienceMembershipChangesCommitted { lagged changes { to profile { id attributes } } } }',
    );
    slow.pause();
    const before = await droppedTotal();
    // Commits of varied sizes, most larger than the queue: each arrives whole or not at all.
    const sizes = Array.from({ length: 40 }, (_, i) => 1 + ((i * 37) % 900));
    const total = sizes.reduce((sum, n) => sum + n, 0);
    let start = 0;
    for (const size of sizes) {
      const records = Array.from({ length: size }, (_, i) => ({
        identities: [{ namespace: 'email', id: `lagc${start + i}@example.com` }],
        attributes: { loyalty: { points: start + i }, person: { name: { firstName: NAME } } },
      }));
      start += size;
      expect(ok(await server.gql(PROFILES, { r: records })).ingestProfiles.accepted).toBe(size);
    }
    slow.resume();
    const commits = () =>
      slow.messages.filter((m) => m.type === 'next').map((m) => m.payload.data.audienceMembershipChangesCommitted);
    const received = () => commits().flatMap((c) => c.changes);
    const lost = () => commits().reduce((sum, c) => sum + c.lagged, 0);
    const until = Date.now() + 20_000;
    while (received().length + lost() < total && Date.now() < until) await new Promise((r) => setTimeout(r, 50));

    expect(received().every((c) => c.to === 'REALIZED')).toBe(true);
    expect(commits().every((c) => c.changes.length > 0 && c.changes.length <= 900)).toBe(true);
    // Some were lost (the queue holds 10 changes) …
    expect(lost()).toBeGreaterThan(0);
    // … and every change is either received or counted as lost, none twice, counted in changes.
    expect(received().length + lost()).toBe(total);
    expect(new Set(received().map((c) => c.profile.id)).size).toBe(received().length);
    expect((await droppedTotal()) - before).toBe(lost());
    // At most one message per commit: each is a commit, or what the queue kept of one.
    expect(commits().length).toBeLessThanOrEqual(sizes.length);
    slow.ws.close();
  }, 60_000);
});

describe('a subscriber that leaves a quiet topic', () => {
  it('releases its subscription at once, not at the next event', async () => {
    const { createClient } = await import('graphql-ws');
    const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
    const queries = [
      'subscription { audienceMembershipChanged { to } }',
      'subscription { jobEvents { id } }',
      'subscription { heartbeat(intervalMs: 60000) }',
    ];
    // The tests before close their sockets without waiting for the server to let go of their
    // subscriptions; counting from one still going would read its release as this test's.
    const settled = Date.now() + 5_000;
    while (server.app.bus.subscriptionCount > 0 && Date.now() < settled) await new Promise((r) => setTimeout(r, 20));
    const before = server.app.bus.subscriptionCount;
    for (const query of queries) client.subscribe({ query }, { next: () => {}, error: () => {}, complete: () => {} });
    const until = Date.now() + 5_000;
    while (server.app.bus.subscriptionCount < before + 2 && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    expect(server.app.bus.subscriptionCount).toBe(before + 2);
    await client.dispose();
    while (server.app.bus.subscriptionCount > before && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(server.app.bus.subscriptionCount).toBe(before);
  });
});
