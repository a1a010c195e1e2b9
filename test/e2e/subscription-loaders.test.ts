/**
 * Subscribers that get the same published change share the loaders that resolve it: a change
 * delivered to many subscribers costs the statements of one, not one batch per subscriber
 * (the `subs` bench: a thousand subscribers made a thousand profile and audience reads per change).
 */
import { type Client, createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ok, startTestServer, subscriptionsAttached, type TestServer } from './harness.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.stop());

const attached = (n: number) => subscriptionsAttached(server, n);

async function statements(): Promise<number> {
  const text = await (await fetch(server.url.replace('/graphql', '/metrics'))).text();
  return Number(/^segql_sql_statements_total (\d+)$/m.exec(text)?.[1]);
}

const SUBSCRIPTION = `subscription { audienceMembershipChanged {
  to audience { name size } profile { identities { namespace value } attributes } } }`;

let profiles = 0;

/** Statements the server ran for one ingested profile entering the audience, seen by `count` subscribers. */
async function statementsForOneChange(count: number): Promise<number> {
  const clients: Client[] = [];
  const received: Promise<any>[] = [];
  for (let i = 0; i < count; i++) {
    const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
    clients.push(client);
    received.push(
      new Promise((resolve, reject) => {
        client.subscribe(
          { query: SUBSCRIPTION },
          { next: (m) => resolve(m.data?.audienceMembershipChanged), error: reject, complete: () => {} },
        );
      }),
    );
  }
  // Every subscription attached before the change is made (a fixed wait was too short on a loaded box).
  await attached(count);
  const scrapeA = await statements();
  const scrape = (await statements()) - scrapeA;
  const before = await statements();
  const n = profiles++;
  ok(
    await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', {
      r: [{ identities: [{ namespace: 'crmId', id: `s${n}` }], attributes: { loyalty: { points: 900 + n } } }],
    }),
  );
  const changes = await Promise.all(received);
  const after = await statements();
  for (const c of changes) {
    expect(c.to).toBe('REALIZED');
    expect(c.audience.name).toBe('Big spenders');
    expect(c.profile.identities).toContainEqual({ namespace: 'crmId', value: `s${n}` });
  }
  await Promise.all(clients.map((c) => c.dispose()));
  return after - before - 2 * scrape;
}

describe('subscription loaders', () => {
  it('resolve one change for 25 subscribers in the statements of one', async () => {
    ok(
      await server.gql(
        `mutation { createSegmentDefinition(input: { name: "Big spenders", expression: { value: "loyalty.points >= 500" },
           evaluationInfo: { batch: true, streaming: true }, lifecycleState: PUBLISHED }) { id } }`,
      ),
    );
    const one = await statementsForOneChange(1);
    const many = await statementsForOneChange(25);
    // Each subscriber on its own loaders would add at least three reads (audience, profile,
    // identities) per extra subscriber: 72 more. Shared, the difference is background noise.
    expect(one).toBeGreaterThan(0);
    expect(many - one).toBeLessThan(10);
  }, 60_000);
});
