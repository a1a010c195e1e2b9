import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startServer } from '../../src/server.js';
import { segqlArgs } from '../segql-command.js';
import { startTestServer, type TestServer } from './harness.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs `segql keys …` as its own process against the server's data directory (or database); stdout. */
function keys(where: string | TestServer, args: string[]): string {
  const [dataDir, url] = typeof where === 'string' ? [where, undefined] : [where.dataDir, where.databaseUrl];
  return execFileSync(process.execPath, segqlArgs('keys', ...args), {
    cwd: root,
    env: {
      ...process.env,
      SEGQL_DATA_DIR: dataDir,
      SEGQL_LOG_LEVEL: 'silent',
      ...(url ? { SEGQL_DATABASE_URL: url } : {}),
    },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const codeOf = (res: { errors?: { extensions?: Record<string, any> }[] }) => res.errors?.[0]?.extensions?.code;

/** Polls until the server has picked up a key change made by another process (the command touches a stamp file the server watches). */
async function eventually(check: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + 5000;
  // A keep-alive socket the server closed while a key command ran resets one poll; poll again.
  while (!(await check().catch(() => false))) {
    if (Date.now() > until) throw new Error('the server did not pick up the key change');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('API keys', () => {
  let server: TestServer;
  let reader: string;
  let writer: string;
  let admin: string;

  beforeAll(async () => {
    server = await startTestServer();
    // Open until the first key exists.
    expect(codeOf(await server.gql('{ __typename }'))).toBeUndefined();
    // A key may only name sandboxes that exist.
    expect((await server.gql('mutation { createSandbox(name: "staging") { name } }')).data).toBeTruthy();
    reader = keys(server, ['create', '--name', 'dashboard', '--scope', 'read']);
    writer = keys(server, ['create', '--name', 'app', '--scope', 'read,write']);
    admin = keys(server, [
      'create',
      '--name',
      'ops',
      '--sandbox',
      'prod',
      '--sandbox',
      'staging',
      '--scope',
      'read',
      '--scope',
      'write',
      '--scope',
      'admin',
    ]);
    await eventually(async () => codeOf(await server.gql('{ __typename }')) === 'UNAUTHENTICATED');
  }, 60_000);

  afterAll(() => server?.stop());

  it('asks for a key once one exists, and refuses unknown ones', async () => {
    const none = await server.gql('{ __typename }');
    expect(codeOf(none)).toBe('UNAUTHENTICATED');
    expect(none.errors![0]!.message).toMatch(/authorization: Bearer/);
    expect(codeOf(await server.gql('{ __typename }', {}, bearer('segql_not-a-key')))).toBe('UNAUTHENTICATED');
    expect(codeOf(await server.gql('{ __typename }', {}, { authorization: reader }))).toBe('UNAUTHENTICATED');
    expect((await server.gql('{ __typename }', {}, bearer(reader))).data).toEqual({ __typename: 'Query' });
  });

  it('gives queries to read, mutations to write and schema changes to admin', async () => {
    const folder = 'mutation { createFolder(input: { name: "Campaigns" }) { name } }';
    expect(codeOf(await server.gql(folder, {}, bearer(reader)))).toBe('FORBIDDEN');
    expect((await server.gql(folder, {}, bearer(writer))).data).toEqual({ createFolder: { name: 'Campaigns' } });
    const sandbox = 'mutation { createSandbox(name: "scratch") { name } }';
    const refused = await server.gql(sandbox, {}, bearer(writer));
    expect(codeOf(refused)).toBe('FORBIDDEN');
    expect(refused.errors![0]!.message).toMatch(/"admin" scope/);
    expect((await server.gql(sandbox, {}, bearer(admin))).data).toEqual({ createSandbox: { name: 'scratch' } });
  });

  it('keeps a key to its sandboxes', async () => {
    const staging = { 'x-sandbox-name': 'staging' };
    expect(codeOf(await server.gql('{ __typename }', {}, { ...bearer(reader), ...staging }))).toBe('FORBIDDEN');
    expect((await server.gql('{ __typename }', {}, { ...bearer(admin), ...staging })).data).toEqual({
      __typename: 'Query',
    });
    // A name that does not exist tells a key bound elsewhere nothing more than a foreign one.
    const nowhere = { ...bearer(reader), 'x-sandbox-name': 'nowhere' };
    expect(codeOf(await server.gql('{ __typename }', {}, nowhere))).toBe('FORBIDDEN');
  });

  it('closes a WebSocket with a bad key, refuses keyless operations, and serves one with a key', async () => {
    const refused = createClient({
      url: server.wsUrl,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      lazy: false,
      connectionParams: { authorization: 'Bearer segql_nope' },
    });
    const closed = await new Promise<number>((resolve) => {
      refused.on('closed', (event) => resolve((event as { code: number }).code));
    });
    expect(closed).toBe(4403);
    await refused.dispose();

    // No key at connection: the socket stays, and each operation without a key is refused.
    const keyless = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
    const errors = await new Promise<readonly { extensions?: Record<string, unknown> }[]>((resolve, reject) => {
      keyless.subscribe(
        { query: 'subscription { heartbeat(count: 1, intervalMs: 10) }' },
        {
          next: () => reject(new Error('streamed without a key')),
          error: (e) => resolve(e as never),
          complete: () => {},
        },
      );
    });
    expect(errors[0]!.extensions!.code).toBe('UNAUTHENTICATED');
    await keyless.dispose();

    const client = createClient({
      url: server.wsUrl,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: bearer(reader),
    });
    const beats: string[] = [];
    await new Promise<void>((resolve, reject) => {
      client.subscribe(
        { query: 'subscription { heartbeat(count: 2, intervalMs: 10) }' },
        { next: (m) => beats.push(m.data!.heartbeat as string), error: reject, complete: resolve },
      );
    });
    expect(beats).toHaveLength(2);
    await client.dispose();
  });

  it('stores only hashes, lists keys by prefix, and revokes them', async () => {
    const stored = JSON.stringify(await server.rows('SELECT * FROM api_keys'));
    for (const key of [reader, writer, admin]) expect(stored).not.toContain(key);
    const listed = keys(server, ['list']);
    expect(listed.split('\n')).toHaveLength(4);
    expect(listed.split('\n')[0]).toBe('ID\tPREFIX\tNAME\tSCOPES\tSANDBOXES\tSTATE');
    expect(listed).toContain(`${reader.slice(0, 12)}…\tdashboard\tread\tprod\tactive`);
    expect(listed).not.toContain(reader);
    keys(server, ['revoke', reader.slice(0, 12)]);
    await eventually(async () => codeOf(await server.gql('{ __typename }', {}, bearer(reader))) === 'UNAUTHENTICATED');
    expect((await server.gql('{ __typename }', {}, bearer(writer))).data).toEqual({ __typename: 'Query' });
  });
});

describe('rate limits', () => {
  it('limits each key to its requests per second, with a retry time, and refills', async () => {
    const server = await startTestServer({ limits: { rateLimitPerSecond: 3 } });
    try {
      const a = keys(server, ['create', '--name', 'a', '--scope', 'read']);
      const b = keys(server, ['create', '--name', 'b', '--scope', 'read']);
      const ask = (key: string) => server.gql('{ __typename }', {}, bearer(key));
      await eventually(async () => codeOf(await server.gql('{ __typename }')) === 'UNAUTHENTICATED');
      const burst = await Promise.all([ask(a), ask(a), ask(a), ask(a)]);
      const limited = burst.filter((r) => codeOf(r) === 'RATE_LIMITED');
      expect(limited).toHaveLength(1);
      expect(limited[0]!.errors![0]!.extensions!.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      // Another key has its own bucket.
      expect((await ask(b)).data).toEqual({ __typename: 'Query' });
      await new Promise((r) => setTimeout(r, 1100));
      expect((await ask(a)).data).toEqual({ __typename: 'Query' });
    } finally {
      await server.stop();
    }
  }, 60_000);
});

describe('serving open', () => {
  it('refuses to listen beyond loopback without keys, and starts there once one exists', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'segql-auth-'));
    try {
      await expect(startServer({ port: 0, host: '0.0.0.0', dataDir })).rejects.toThrow(/without API keys/);
      keys(dataDir, ['create', '--name', 'edge', '--scope', 'read']);
      const server = await startServer({ port: 0, host: '0.0.0.0', dataDir });
      await server.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 30_000);
});
