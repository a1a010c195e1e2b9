/**
 * Subscribers asking the same thing about one published change share one execution of it
 * (src/server/shared-subscription-results.ts); a different selection or variables executes
 * on its own, and every subscriber still gets the same answer it would have got alone.
 */
import { type Client, createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { sharedResultStats } from '../../src/server/shared-subscription-results.js';
import { ok, startTestServer, subscriptionsAttached, type TestServer } from './harness.js';

let server: TestServer;
let audienceId: string;
beforeAll(async () => {
  server = await startTestServer();
  audienceId = ok(
    await server.gql(
      `mutation { createSegmentDefinition(input: { name: "Shared", expression: { value: "loyalty.points >= 500" },
         evaluationInfo: { batch: true, streaming: true }, lifecycleState: PUBLISHED }) { audience { id } } }`,
    ),
  ).createSegmentDefinition.audience.id;
});
afterAll(() => server?.stop());

const attached = (n: number) => subscriptionsAttached(server, n);

const WHOLE = 'subscription { audienceMembershipChanged { to lagged profile { identities { value } } } }';
const NARROW = 'subscription { audienceMembershipChanged { to } }';
const ONE_AUDIENCE =
  'subscription($a: ID) { audienceMembershipChanged(audienceId: $a) { to audience { name } profile { identities { value } } } }';

/** Opens one subscriber per entry, ingests one profile that enters the audience, returns what each got. */
async function oneChange(subscriptions: { query: string; variables?: Record<string, unknown> }[], n: number) {
  const clients: Client[] = [];
  const received = subscriptions.map((payload) => {
    const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
    clients.push(client);
    return new Promise<any>((resolve, reject) => {
      client.subscribe(payload, { next: (m) => resolve(m), error: reject, complete: () => {} });
    });
  });
  await attached(subscriptions.length);
  const before = { ...sharedResultStats };
  ok(
    await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', {
      r: [{ identities: [{ namespace: 'crmId', id: `shared${n}` }], attributes: { loyalty: { points: 900 } } }],
    }),
  );
  const messages = await Promise.all(received);
  await Promise.all(clients.map((c) => c.dispose()));
  return {
    messages,
    executed: sharedResultStats.executed - before.executed,
    shared: sharedResultStats.shared - before.shared,
  };
}

describe('shared subscription results', () => {
  it('executes one change once for 20 subscribers of the same operation, and each gets it whole', async () => {
    const { messages, executed, shared } = await oneChange(
      Array.from({ length: 20 }, () => ({ query: WHOLE })),
      1,
    );
    expect(executed).toBe(1);
    expect(shared).toBe(19);
    for (const m of messages)
      expect(m).toEqual({
        data: {
          audienceMembershipChanged: { to: 'REALIZED', lagged: 0, profile: { identities: [{ value: 'shared1' }] } },
        },
      });
  }, 30_000);

  it('executes another selection or other variables on their own', async () => {
    const { messages, executed, shared } = await oneChange(
      [
        { query: WHOLE },
        { query: WHOLE },
        { query: NARROW },
        { query: ONE_AUDIENCE, variables: { a: audienceId } },
        { query: ONE_AUDIENCE, variables: { a: null } },
      ],
      2,
    );
    expect(executed).toBe(4);
    expect(shared).toBe(1);
    expect(messages[2]).toEqual({ data: { audienceMembershipChanged: { to: 'REALIZED' } } });
    const named = { to: 'REALIZED', audience: { name: 'Shared' }, profile: { identities: [{ value: 'shared2' }] } };
    expect(messages[3]).toEqual({ data: { audienceMembershipChanged: named } });
    expect(messages[4]).toEqual({ data: { audienceMembershipChanged: named } });
  }, 30_000);
});
