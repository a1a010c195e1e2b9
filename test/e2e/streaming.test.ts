import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ok, startTestServer, type TestServer } from './harness.js';

const CREATE = `mutation($input: CreateSegmentDefinitionInput!) {
  createSegmentDefinition(input: $input) { id evaluationInfo { streaming } audience { id name } }
}`;
const PROFILES = `mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted errors { message } } }`;
const EVENTS = `mutation($e: [EventInput!]!) { ingestEvents(events: $e) { accepted } }`;
const MEMBERS = `query($email: String!) { profile(identity: { namespace: "email", id: $email }) {
  memberships { audience { name } status } } }`;

interface Change {
  audience: { name: string };
  profile: { identities: { value: string }[] } | null;
  from: string | null;
  to: string;
  cause: string;
}

describe('streaming segmentation', () => {
  let server: TestServer;
  const changes: Change[] = [];
  let client: ReturnType<typeof createClient>;
  const audiences: Record<string, { id: string; name: string }> = {};

  const define = async (name: string, value: string, streaming: boolean) => {
    const created = ok(
      await server.gql(CREATE, {
        input: { name, expression: { value }, evaluationInfo: { batch: true, streaming }, lifecycleState: 'PUBLISHED' },
      }),
    ).createSegmentDefinition;
    expect(created.evaluationInfo.streaming).toBe(streaming);
    audiences[name] = created.audience;
  };

  /** Waits until `n` changes have arrived in all. */
  const received = async (n: number, ms = 5000) => {
    const until = Date.now() + ms;
    while (changes.length < n) {
      if (Date.now() > until) throw new Error(`expected ${n} changes, got ${JSON.stringify(changes)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const memberships = async (email: string) =>
    Object.fromEntries(
      (ok(await server.gql(MEMBERS, { email })).profile?.memberships ?? []).map((m: any) => [
        m.audience.name,
        m.status,
      ]),
    );

  beforeAll(async () => {
    server = await startTestServer({ limits: { streamingSweepMs: 100 } });
    await define('Gold', 'loyalty.tier = "gold"', true);
    await define('Gold again', 'inSegment("Gold")', true);
    await define('Gold in batch', 'loyalty.tier = "gold"', false);
    await define(
      'Just bought',
      'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 2 seconds before now].count() >= 1',
      true,
    );
    client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
    const started = new Promise<void>((resolve) => {
      client.on('connected', () => setTimeout(resolve, 100));
    });
    client.subscribe(
      {
        query:
          'subscription { audienceMembershipChanged { audience { name } profile { identities { value } } from to cause } }',
      },
      { next: (m) => changes.push(m.data!.audienceMembershipChanged as Change), error: () => {}, complete: () => {} },
    );
    await started;
  }, 30_000);

  afterAll(async () => {
    await client?.dispose();
    await server?.stop();
  });

  it('puts an ingested profile into its streaming audiences at once, inSegment included, and publishes each change', async () => {
    const before = changes.length;
    ok(
      await server.gql(PROFILES, {
        r: [{ identities: [{ namespace: 'email', id: 'ann@example.com' }], attributes: { loyalty: { tier: 'gold' } } }],
      }),
    );
    // The mutation has returned: the memberships are there already.
    expect(await memberships('ann@example.com')).toEqual({ Gold: 'REALIZED', 'Gold again': 'REALIZED' });
    await received(before + 2);
    expect(changes.slice(before).map((c) => [c.audience.name, c.from, c.to, c.cause])).toEqual([
      ['Gold', null, 'REALIZED', 'STREAMING'],
      ['Gold again', null, 'REALIZED', 'STREAMING'],
    ]);
    expect(changes[before]!.profile!.identities.map((i) => i.value)).toEqual(['ann@example.com']);
    const sizes = ok(await server.gql('{ audiences(first: 10) { edges { node { name size } } } }')).audiences.edges;
    expect(Object.fromEntries(sizes.map((e: any) => [e.node.name, e.node.size]))).toMatchObject({
      Gold: 1,
      'Gold again': 1,
      'Gold in batch': 0,
    });
  });

  it('takes a profile out when an ingest makes it stop qualifying', async () => {
    const before = changes.length;
    ok(
      await server.gql(PROFILES, {
        r: [
          { identities: [{ namespace: 'email', id: 'ann@example.com' }], attributes: { loyalty: { tier: 'silver' } } },
        ],
      }),
    );
    expect(await memberships('ann@example.com')).toEqual({ Gold: 'EXITED', 'Gold again': 'EXITED' });
    await received(before + 2);
    expect(changes.slice(before).map((c) => [c.audience.name, c.from, c.to])).toEqual([
      ['Gold', 'REALIZED', 'EXITED'],
      ['Gold again', 'REALIZED', 'EXITED'],
    ]);
  });

  it('enters on an event and exits when its time window has passed, without new data', async () => {
    const before = changes.length;
    ok(
      await server.gql(EVENTS, {
        e: [
          {
            identity: { namespace: 'email', id: 'bo@example.com' },
            timestamp: new Date().toISOString(),
            eventType: 'commerce.purchases',
            data: { commerce: { order: { priceTotal: 10 } } },
          },
        ],
      }),
    );
    expect(await memberships('bo@example.com')).toEqual({ 'Just bought': 'REALIZED' });
    await received(before + 1);
    // Two seconds later the sweep (every 100 ms here) finds the window empty.
    await received(before + 2, 6000);
    expect(changes.slice(before).map((c) => [c.audience.name, c.to, c.cause])).toEqual([
      ['Just bought', 'REALIZED', 'STREAMING'],
      ['Just bought', 'EXITED', 'EXPIRY'],
    ]);
    expect(await memberships('bo@example.com')).toEqual({ 'Just bought': 'EXITED' });
    const history = ok(
      await server.gql(
        'query { profile(identity: { namespace: "email", id: "bo@example.com" }) { membershipHistory(first: 5) { edges { node { to cause } } } } }',
      ),
    ).profile.membershipHistory.edges.map((e: any) => [e.node.to, e.node.cause]);
    expect(history).toEqual([
      ['EXITED', 'EXPIRY'],
      ['REALIZED', 'STREAMING'],
    ]);
  }, 15_000);

  it('filters by audience and refuses an unknown one', async () => {
    const res = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({
        query: 'subscription { audienceMembershipChanged(audienceId: "QXVkaWVuY2U6OTk5OQ") { to } }',
      }),
    });
    const text = await res.text();
    expect(text).toContain('NOT_FOUND');
  });
});
