/**
 * audienceMembershipChangesCommitted over graphql-ws: a commit's membership changes arrive as
 * one message, the same changes in the same order as audienceMembershipChanged sends them one by
 * one; filtered by audience, kept to the sandbox, refused to a key that may not read it, and
 * executed once per commit for all the subscribers of one operation.
 */
import { type Client, createClient } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createApiKey, touchKeyStamp } from '../../src/domain/api-keys.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { sharedResultStats } from '../../src/server/shared-subscription-results.js';
import { ok, startTestServer, type TestServer } from './harness.js';

const PROFILES = 'mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }';
const CHANGE = 'audience { name } profile { identities { value } } from to cause lagged';
const COMMITS = `subscription($a: [ID!]) { audienceMembershipChangesCommitted(audienceIds: $a) {
  lagged changes { ${CHANGE} } } }`;
const SINGLES = `subscription { audienceMembershipChanged { ${CHANGE} } }`;

interface Subscriber {
  client: Client;
  messages: any[];
  errors: any[];
}

let server: TestServer;
const keys = {} as Record<'reader' | 'writer' | 'other', string>;
const audiences = {} as Record<'gold' | 'rich', string>;
const open: Subscriber[] = [];

const auth = (key: string, sandbox?: string) => ({
  authorization: `Bearer ${key}`,
  ...(sandbox ? { 'x-sandbox-name': sandbox } : {}),
});

/** A graphql-ws client subscribed with `key` (in `sandbox`); resolves once the server has attached it. */
async function subscribe(
  query: string,
  variables: Record<string, unknown> = {},
  key: string | null = keys.reader,
  sandbox?: string,
): Promise<Subscriber> {
  const client = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    connectionParams: key ? auth(key, sandbox) : {},
  });
  const sub: Subscriber = { client, messages: [], errors: [] };
  open.push(sub);
  const attached = server.app.bus.subscriptionCount;
  client.subscribe(
    { query, variables },
    {
      // A subscription refused as it starts is one result with errors.
      next: (m) => (m.errors ? sub.errors.push(...m.errors) : sub.messages.push(m.data)),
      error: (e) => sub.errors.push(...(Array.isArray(e) ? e : [e])),
      complete: () => {},
    },
  );
  // Until the server has attached it (a fixed wait was too short on a loaded box), or refused it.
  const end = Date.now() + 10_000;
  while (server.app.bus.subscriptionCount === attached && sub.errors.length === 0 && Date.now() < end)
    await new Promise((r) => setTimeout(r, 10));
  return sub;
}

/** Ingests profiles (email `<name>@example.com`) in one request: one commit. */
async function ingest(records: [name: string, attributes: Record<string, unknown>][], sandbox?: string) {
  const r = records.map(([name, attributes]) => ({
    identities: [{ namespace: 'email', id: `${name}@example.com` }],
    attributes,
  }));
  expect(
    ok(await server.gql(PROFILES, { r }, auth(sandbox ? keys.other : keys.writer, sandbox))).ingestProfiles,
  ).toEqual({ accepted: records.length });
}

async function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  // Anything more that was coming would arrive meanwhile.
  await new Promise((r) => setTimeout(r, 200));
}

const commitsOf = (sub: Subscriber) => sub.messages.map((m) => m.audienceMembershipChangesCommitted);
const singlesOf = (sub: Subscriber) => sub.messages.map((m) => m.audienceMembershipChanged);
const namesOf = (changes: any[]) => changes.map((c) => [c.audience.name, c.profile.identities[0].value, c.to]);

beforeAll(async () => {
  server = await startTestServer();
  const conn = server.app.conn;
  await ensureSandbox(conn, 'other');
  keys.reader = (await createApiKey(conn, { name: 'reader', sandboxes: ['prod'], scopes: ['read'] })).key;
  keys.writer = (await createApiKey(conn, { name: 'writer', sandboxes: ['prod'], scopes: ['read', 'write'] })).key;
  keys.other = (
    await createApiKey(conn, { name: 'other', sandboxes: ['other'], scopes: ['read', 'write', 'admin'] })
  ).key;
  touchKeyStamp(server.dataDir);
  const define = async (name: string, value: string, key: string, sandbox?: string) =>
    ok(
      await server.gql(
        `mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { audience { id } } }`,
        {
          i: {
            name,
            expression: { value },
            evaluationInfo: { batch: true, streaming: true },
            lifecycleState: 'PUBLISHED',
          },
        },
        auth(key, sandbox),
      ),
    ).createSegmentDefinition.audience.id as string;
  audiences.gold = await define('Gold', 'loyalty.tier = "gold"', keys.writer);
  audiences.rich = await define('Rich', 'loyalty.points >= 500', keys.writer);
  await define('Other gold', 'loyalty.tier = "gold"', keys.other, 'other');
}, 30_000);

// Each test counts what its own subscribers get.
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.client.dispose()));
  await until(() => server.app.bus.subscriptionCount === 0, 'the subscriptions to end');
});
afterAll(() => server?.stop());

describe('audienceMembershipChangesCommitted', () => {
  it("sends a commit's changes as one message, as audienceMembershipChanged sends them one by one", async () => {
    const commits = await subscribe(COMMITS);
    const singles = await subscribe(SINGLES);
    await ingest([
      ['c1', { loyalty: { tier: 'gold', points: 900 } }],
      ['c2', { loyalty: { tier: 'silver', points: 600 } }],
      ['c3', { loyalty: { tier: 'gold', points: 10 } }],
      ['c4', { loyalty: { tier: 'silver', points: 10 } }],
      ['c5', { loyalty: { tier: 'gold', points: 500 } }],
    ]);
    await until(() => singles.messages.length >= 6 && commits.messages.length >= 1, 'the changes');
    expect(commits.messages).toHaveLength(1);
    const [commit] = commitsOf(commits);
    expect(commit.lagged).toBe(0);
    expect(commit.changes).toEqual(singlesOf(singles));
    expect(namesOf(commit.changes)).toEqual([
      ['Gold', 'c1@example.com', 'REALIZED'],
      ['Rich', 'c1@example.com', 'REALIZED'],
      ['Rich', 'c2@example.com', 'REALIZED'],
      ['Gold', 'c3@example.com', 'REALIZED'],
      ['Gold', 'c5@example.com', 'REALIZED'],
      ['Rich', 'c5@example.com', 'REALIZED'],
    ]);
    expect(commit.changes.every((c: any) => c.cause === 'STREAMING' && c.from === null && c.lagged === 0)).toBe(true);

    // The next commit is the next message: exits, then an entry.
    await ingest([
      ['c1', { loyalty: { tier: 'silver', points: 900 } }],
      ['c4', { loyalty: { tier: 'gold', points: 10 } }],
    ]);
    await until(() => commits.messages.length >= 2 && singles.messages.length >= 8, 'the second commit');
    expect(commits.messages).toHaveLength(2);
    expect(namesOf(commitsOf(commits)[1].changes)).toEqual([
      ['Gold', 'c1@example.com', 'EXITED'],
      ['Gold', 'c4@example.com', 'REALIZED'],
    ]);
    expect(commitsOf(commits)[1].changes).toEqual(singlesOf(singles).slice(6));
  }, 30_000);

  it("sends only the audiences' changes asked for, and no message for a commit without any", async () => {
    const rich = await subscribe(COMMITS, { a: [audiences.rich] });
    const both = await subscribe(COMMITS, { a: [audiences.rich, audiences.gold] });
    const all = await subscribe(COMMITS);
    await ingest([
      ['f1', { loyalty: { tier: 'gold', points: 0 } }],
      ['f2', { loyalty: { tier: 'gold', points: 0 } }],
    ]);
    await ingest([
      ['f3', { loyalty: { tier: 'gold', points: 700 } }],
      ['f4', { loyalty: { tier: 'silver', points: 800 } }],
    ]);
    await until(() => all.messages.length >= 2 && rich.messages.length >= 1, 'the filtered commits');
    expect(commitsOf(all).map((c) => namesOf(c.changes))).toEqual([
      [
        ['Gold', 'f1@example.com', 'REALIZED'],
        ['Gold', 'f2@example.com', 'REALIZED'],
      ],
      [
        ['Gold', 'f3@example.com', 'REALIZED'],
        ['Rich', 'f3@example.com', 'REALIZED'],
        ['Rich', 'f4@example.com', 'REALIZED'],
      ],
    ]);
    expect(commitsOf(rich).map((c) => namesOf(c.changes))).toEqual([
      [
        ['Rich', 'f3@example.com', 'REALIZED'],
        ['Rich', 'f4@example.com', 'REALIZED'],
      ],
    ]);
    expect(commitsOf(both)).toEqual(commitsOf(all));
  }, 30_000);

  it('refuses an unknown audience and an empty list', async () => {
    const unknown = await subscribe(COMMITS, { a: [audiences.gold, 'QXVkaWVuY2U6OTk5OQ'] });
    const empty = await subscribe(COMMITS, { a: [] });
    expect(unknown.errors.map((e) => [e.extensions?.code, e.message])).toEqual([
      ['NOT_FOUND', 'No Audience with id "QXVkaWVuY2U6OTk5OQ" in this sandbox'],
    ]);
    expect(empty.errors.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
  });

  it("keeps each sandbox's commits to its own subscribers", async () => {
    const prod = await subscribe(COMMITS);
    const other = await subscribe(COMMITS, {}, keys.other, 'other');
    await ingest([['s1', { loyalty: { tier: 'gold' } }]]);
    await ingest([['s2', { loyalty: { tier: 'gold' } }]], 'other');
    await until(() => prod.messages.length >= 1 && other.messages.length >= 1, 'both sandboxes');
    expect(commitsOf(prod).map((c) => namesOf(c.changes))).toEqual([[['Gold', 's1@example.com', 'REALIZED']]]);
    expect(commitsOf(other).map((c) => namesOf(c.changes))).toEqual([[['Other gold', 's2@example.com', 'REALIZED']]]);
  }, 30_000);

  it('refuses a key without access to the sandbox, and an operation without a key', async () => {
    const foreign = await subscribe(COMMITS, {}, keys.other);
    const keyless = await subscribe(COMMITS, {}, null);
    await ingest([['u1', { loyalty: { tier: 'gold' } }]]);
    await new Promise((r) => setTimeout(r, 300));
    expect(foreign.messages).toEqual([]);
    expect(foreign.errors.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
    expect(keyless.messages).toEqual([]);
    expect(keyless.errors.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
  });

  it('executes a commit once for every subscriber of one operation, one message each', async () => {
    const subs: Subscriber[] = [];
    for (let i = 0; i < 10; i++) subs.push(await subscribe(COMMITS));
    const before = { ...sharedResultStats };
    await ingest(Array.from({ length: 8 }, (_, i) => [`x${i}`, { loyalty: { tier: 'gold', points: 900 } }]));
    await until(() => subs.every((s) => s.messages.length >= 1), 'every subscriber');
    expect(sharedResultStats.executed - before.executed).toBe(1);
    expect(sharedResultStats.shared - before.shared).toBe(9);
    for (const s of subs) {
      expect(s.messages).toHaveLength(1);
      expect(commitsOf(s)[0].changes).toHaveLength(16);
      expect(commitsOf(s)[0]).toEqual(commitsOf(subs[0]!)[0]);
    }
  }, 30_000);
});
