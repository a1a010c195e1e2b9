/**
 * The sequences an outside review used to break authorization and identity, end to end against
 * the real server: the last key revoked (with `segql keys revoke`, as an operator does), a
 * revoked key's open streams, a query that started a job, GraphiQL's headers on subscriptions,
 * ids handed out twice, and /metrics without a key.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'graphql-ws';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { databaseFile } from '../../src/config.js';
import { openDatabase } from '../../src/db/index.js';
import { createApiKey, touchKeyStamp } from '../../src/domain/api-keys.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { segqlArgs } from '../segql-command.js';
import { gql, ok } from './harness.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * `segql keys …` as its own process on the server's data directory. Asynchronous: the server under
 * test runs in this process and must keep serving (and polling its keys) while the command runs.
 */
function segqlKeys(dataDir: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      segqlArgs('keys', ...args),
      { cwd: root, env: { ...process.env, SEGQL_DATA_DIR: dataDir, SEGQL_LOG_LEVEL: 'silent' }, timeout: 60_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`segql keys ${args.join(' ')}: ${stderr}`)) : resolve(stdout)),
    );
  });
}

const codeOf = (res: { errors?: { extensions?: Record<string, any> }[] }) => res.errors?.[0]?.extensions?.code;
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

interface Started {
  server: RunningServer;
  dataDir: string;
  url: string;
  logs: string[];
}

const running: Started[] = [];

/** A data directory holding one key made before the server starts (as `segql keys create` would). */
async function dataDirWithKey(
  scopes: string[] = ['read', 'write', 'admin'],
): Promise<{ dataDir: string; key: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'segql-auth-'));
  const conn = openDatabase(databaseFile(dataDir));
  await ensureSandbox(conn, 'prod');
  const { key } = await createApiKey(conn, { name: 'only', sandboxes: ['prod'], scopes });
  conn.close();
  return { dataDir, key };
}

async function start(dataDir: string, options: { host?: string; metricsToken?: string } = {}): Promise<Started> {
  const logs: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => logs.push(line) });
  const server = await startServer({ port: 0, dataDir, host: options.host, log, metricsToken: options.metricsToken });
  // Bound to every address, the server is still reached here through loopback only.
  const url = `http://127.0.0.1:${server.port}/graphql`;
  const started = { server, dataDir, url, logs };
  running.push(started);
  return started;
}

afterEach(async () => {
  for (const s of running.splice(0)) {
    await s.server.close();
    rmSync(s.dataDir, { recursive: true, force: true });
  }
});

describe('the last key revoked', () => {
  it('keeps a server that started keyed on 0.0.0.0 closed, says why in the log, and after a restart too', {
    timeout: 60_000,
  }, async () => {
    const { dataDir, key } = await dataDirWithKey();
    const s = await start(dataDir, { host: '0.0.0.0' });
    expect(ok(await gql(s.url, '{ __typename }', {}, bearer(key)))).toEqual({ __typename: 'Query' });
    await segqlKeys(dataDir, ['revoke', '1']);

    const sandbox = await gql(s.url, 'mutation { createSandbox(name: "sneaky") { name } }');
    expect(codeOf(sandbox)).toBe('UNAUTHENTICATED');
    expect(sandbox.errors![0]!.message).toMatch(/none is live/);
    const schemaChange = await gql(
      s.url,
      'mutation($input: ProfileSchemaInput!) { updateProfileSchema(input: $input) { __typename } }',
      { input: { fields: [{ class: 'PROFILE', path: 'loyalty.points', type: 'string' }] } },
    );
    expect(codeOf(schemaChange)).toBe('UNAUTHENTICATED');
    const sandboxes = s.server.sqlite!.sqlite.prepare('SELECT name FROM sandboxes').pluck().all();
    expect(sandboxes).not.toContain('sneaky');
    expect(s.logs.join('')).toMatch(/every API key is revoked/);

    // A restart does not open it either, not even on loopback: a key was made once.
    await s.server.close();
    running.splice(running.indexOf(s), 1);
    const again = await start(dataDir, { host: '127.0.0.1' });
    expect(codeOf(await gql(again.url, '{ __typename }'))).toBe('UNAUTHENTICATED');
  });
});

describe('a revoked key', () => {
  it('loses its WebSocket (4403) and SSE (UNAUTHENTICATED) subscriptions within a second', {
    timeout: 60_000,
  }, async () => {
    const { dataDir, key } = await dataDirWithKey(['read']);
    const s = await start(dataDir);

    const ws = createClient({
      url: s.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: bearer(key),
    });
    let closedAt = 0;
    const closedWith = new Promise<number>((resolve) =>
      ws.on('closed', (e) => {
        closedAt = Date.now();
        resolve((e as { code: number }).code);
      }),
    );
    let wsBeats = 0;
    const firstBeat = new Promise<void>((resolve) => {
      ws.subscribe(
        { query: 'subscription { heartbeat(intervalMs: 20) }' },
        {
          next: () => {
            wsBeats++;
            resolve();
          },
          error: () => {},
          complete: () => {},
        },
      );
    });

    const sse = await fetch(s.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...bearer(key) },
      body: JSON.stringify({ query: 'subscription { heartbeat(intervalMs: 20) }' }),
    });
    const reader = sse.body!.getReader();
    let sseText = '';
    let sseEndedAt = 0;
    const sseEnded = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        sseText += new TextDecoder().decode(value);
      }
      sseEndedAt = Date.now();
    })();
    await firstBeat;
    while (!sseText.includes('heartbeat')) await new Promise((r) => setTimeout(r, 10));

    await segqlKeys(dataDir, ['revoke', '1']);
    // Timed from the revocation the command wrote, not from the command's own start-up.
    const revokedAt = s.server.sqlite!.sqlite.prepare('SELECT revoked_at FROM api_keys WHERE id = 1').pluck().get();
    expect(typeof revokedAt).toBe('number');
    expect(await closedWith).toBe(4403);
    await sseEnded;
    expect(closedAt - (revokedAt as number)).toBeLessThan(1000);
    expect(sseEndedAt - (revokedAt as number)).toBeLessThan(1000);
    expect(sseText).toContain('"code":"UNAUTHENTICATED"');
    expect(sseText).toMatch(/event: complete/);
    const beatsAtClose = wsBeats;
    await new Promise((r) => setTimeout(r, 200));
    expect(wsBeats).toBe(beatsAtClose);
    await ws.dispose();
  });
});

describe('a query', () => {
  it('never starts a job: estimate only reads, and a read key cannot refresh it', async () => {
    const { dataDir, key: reader } = await dataDirWithKey(['read']);
    const s = await start(dataDir);
    const { key: writer } = await createApiKey(s.server.sqlite!, {
      name: 'writer',
      sandboxes: ['prod'],
      scopes: ['read', 'write'],
    });
    touchKeyStamp(dataDir);
    const jobs = () => s.server.sqlite!.sqlite.prepare('SELECT count(*) FROM jobs').pluck().get() as number;
    const definition = ok(
      await gql(
        s.url,
        'mutation { createSegmentDefinition(input: { name: "Gold", expression: { value: "loyalty.tier = \\"gold\\"" } }) { id } }',
        {},
        bearer(writer),
      ),
    ).createSegmentDefinition.id as string;
    const before = jobs();

    // The review's request: a read key asking a query to refresh the estimate.
    const refreshInQuery = await gql(
      s.url,
      'query($id: ID!) { segmentDefinition(id: $id) { estimate(refresh: true) { estimatedSize } } }',
      { id: definition },
      bearer(reader),
    );
    expect(codeOf(refreshInQuery)).toBe('BAD_USER_INPUT');
    expect(refreshInQuery.errors![0]!.message).toMatch(/Unknown argument "refresh"/);
    const read = ok(
      await gql(
        s.url,
        'query($id: ID!) { segmentDefinition(id: $id) { estimate { estimatedSize } } }',
        { id: definition },
        bearer(reader),
      ),
    );
    expect(read.segmentDefinition.estimate).toBeNull();
    const READ_LATEST = 'query($id: ID!) { segmentDefinition(id: $id) { latestPreview { id } } }';
    const REFRESH = 'mutation($id: ID!) { refreshEstimate(segmentDefinitionId: $id) { id status } }';
    expect(codeOf(await gql(s.url, REFRESH, { id: definition }, bearer(reader)))).toBe('FORBIDDEN');
    expect(jobs()).toBe(before);

    const refreshed = ok(await gql(s.url, REFRESH, { id: definition }, bearer(writer))).refreshEstimate;
    expect(jobs()).toBe(before + 1);
    const newest = s.server.sqlite!.sqlite.prepare('SELECT kind FROM jobs ORDER BY id DESC LIMIT 1').pluck().get();
    expect(newest).toBe('PREVIEW');
    expect(
      ok(await gql(s.url, READ_LATEST, { id: definition }, bearer(reader))).segmentDefinition.latestPreview.id,
    ).toBe(refreshed.id);
  });
});

describe('subscriptions and GraphiQL headers', () => {
  it('reads the sandbox and key from extensions.headers, never falls back to prod, and codes every error', async () => {
    const { dataDir, key } = await dataDirWithKey(['read']);
    const s = await start(dataDir);
    // GraphiQL: an empty connection_init, its Headers tab on every subscribe message.
    const client = createClient({ url: s.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    const run = (query: string, headers: Record<string, string>) =>
      new Promise<{ data: unknown[]; errors: { extensions?: Record<string, unknown> }[] }>((resolve) => {
        const data: unknown[] = [];
        const errors: { extensions?: Record<string, unknown> }[] = [];
        client.subscribe(
          { query, extensions: { headers } },
          {
            next: (m) => {
              if (m.errors) errors.push(...(m.errors as never[]));
              else data.push(m.data);
            },
            error: (e) => resolve({ data, errors: [...errors, ...(e as never[])] }),
            complete: () => resolve({ data, errors }),
          },
        );
      });

    const unknownSandbox = await run('subscription { heartbeat(count: 1, intervalMs: 10) }', {
      ...bearer(key),
      'x-sandbox-name': 'no-such-sandbox',
    });
    expect(unknownSandbox.data).toEqual([]);
    // The key is bound to prod only, so another name is refused before it is looked up.
    expect(unknownSandbox.errors[0]!.extensions!.code).toBe('FORBIDDEN');

    const streamed = await run('subscription { heartbeat(count: 2, intervalMs: 10) }', bearer(key));
    expect(streamed.errors).toEqual([]);
    expect(streamed.data).toHaveLength(2);

    const noKey = await run('subscription { heartbeat(count: 1, intervalMs: 10) }', {});
    expect(noKey.errors[0]!.extensions!.code).toBe('UNAUTHENTICATED');

    const unknownJob = await run('subscription { segmentJobUpdated(id: "U2VnbWVudEpvYjo5OTk=") { id } }', bearer(key));
    expect(unknownJob.errors[0]!.extensions!.code).toBe('NOT_FOUND');
    await client.dispose();
  });

  it('on an open server, an unknown sandbox in extensions.headers is NOT_FOUND, not prod', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'segql-auth-'));
    const s = await start(dataDir);
    const client = createClient({ url: s.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    const errors = await new Promise<{ extensions?: Record<string, unknown> }[]>((resolve, reject) => {
      client.subscribe(
        {
          query: 'subscription { heartbeat(count: 1, intervalMs: 10) }',
          extensions: { headers: { 'x-sandbox-name': 'no-such-sandbox' } },
        },
        {
          next: () => reject(new Error('streamed from another sandbox')),
          error: (e) => resolve(e as never),
          complete: () => {},
        },
      );
    });
    expect(errors[0]!.extensions!.code).toBe('NOT_FOUND');
    await client.dispose();
  });
});

describe('ids', () => {
  it('never hands a deleted definition or profile id to a new one, and streaming follows the new expression', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'segql-auth-'));
    const s = await start(dataDir);
    const q = (query: string, variables?: Record<string, unknown>) => gql(s.url, query, variables);
    const create = async (name: string, tier: string) =>
      ok(
        await q(
          `mutation($n: String!, $x: String!) { createSegmentDefinition(input: { name: $n, expression: { value: $x },
             evaluationInfo: { batch: true, streaming: true }, lifecycleState: PUBLISHED }) { id audience { id } } }`,
          { n: name, x: `loyalty.tier = "${tier}"` },
        ),
      ).createSegmentDefinition as { id: string; audience: { id: string } };
    const ingest = async (id: string, tier: string) =>
      ok(
        await q('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { profileIds } }', {
          r: [{ identities: [{ namespace: 'email', id }], attributes: { loyalty: { tier } } }],
        }),
      ).ingestProfiles.profileIds[0] as string;
    const members = async (audienceId: string) =>
      (
        ok(
          await q(
            'query($id: ID!) { audience(id: $id) { members(first: 50) { edges { node { status profile { id } } } } } }',
            {
              id: audienceId,
            },
          ),
        ).audience.members.edges as { node: { status: string; profile: { id: string } } }[]
      ).map((e) => `${e.node.profile.id}:${e.node.status}`);

    const gold = await create('Gold', 'gold');
    const first = await ingest('first@x', 'gold'); // builds and caches the streaming plan
    expect(await members(gold.audience.id)).toEqual([`${first}:REALIZED`]);
    ok(await q('mutation($id: ID!) { deleteSegmentDefinition(id: $id) }', { id: gold.id }));

    const silver = await create('Silver', 'silver');
    expect(silver.id).not.toBe(gold.id);
    expect(silver.audience.id).not.toBe(gold.audience.id);
    const goldBuyer = await ingest('gold@x', 'gold');
    const silverBuyer = await ingest('silver@x', 'silver');
    expect(await members(silver.audience.id)).toEqual([`${silverBuyer}:REALIZED`]);
    expect(goldBuyer).not.toBe(silverBuyer);

    ok(await q('mutation { deleteProfile(identity: { namespace: "email", id: "silver@x" }) }'));
    const next = await ingest('next@x', 'bronze');
    expect(next).not.toBe(silverBuyer);
  });
});

describe('/metrics', () => {
  it('needs an admin key or the metrics token when keys exist', async () => {
    const { dataDir, key: adminKey } = await dataDirWithKey(['read', 'write', 'admin']);
    const s = await start(dataDir, { metricsToken: 'scrape-me' });
    const conn = s.server.sqlite!;
    const { key: readKey } = await createApiKey(conn, { name: 'reader', sandboxes: ['prod'], scopes: ['read'] });
    touchKeyStamp(dataDir);
    const metrics = (headers: Record<string, string> = {}) =>
      fetch(s.url.replace(/\/graphql$/, '/metrics'), { headers });
    expect((await metrics()).status).toBe(401);
    expect((await metrics(bearer(readKey))).status).toBe(403);
    expect((await metrics(bearer('wrong-token'))).status).toBe(401);
    const admin = await metrics(bearer(adminKey));
    expect(admin.status).toBe(200);
    expect(await admin.text()).toContain('segql_sql_statements_total');
    expect((await metrics(bearer('scrape-me'))).status).toBe(200);
  });

  it('is open on an open server', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'segql-auth-'));
    const s = await start(dataDir);
    expect((await fetch(s.url.replace(/\/graphql$/, '/metrics'))).status).toBe(200);
  });
});
