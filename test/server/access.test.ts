import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_SERVER_LIMITS, loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/index.js';
import { createApiKey, revokeApiKey, touchKeyStamp } from '../../src/domain/api-keys.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { createAccess } from '../../src/server/access.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup() {
  const dataDir = mkdtempSync(join(tmpdir(), 'segql-access-'));
  dirs.push(dataDir);
  const conn = openDatabase(':memory:');
  await ensureSandbox(conn, 'prod');
  const make = (host: string) =>
    createAccess({
      conn,
      dataDir,
      host,
      limits: DEFAULT_SERVER_LIMITS,
      log: pino({ level: 'silent' }),
      metricsToken: 't0k3n',
    });
  return { conn, dataDir, make };
}

const headers = (h: Record<string, string>) => (name: string) => h[name];

describe('access, on its own', () => {
  it('runs open only on loopback with no key ever made, and refuses other addresses', async () => {
    const { make } = await setup();
    const open = await make('127.0.0.1');
    expect(await open.keys.required()).toBe(false);
    expect((await open.resolve(headers({}))).sandbox.name).toBe('prod');
    expect(await open.metricsRefusal(undefined)).toBeUndefined();
    open.stop();
    await expect(make('0.0.0.0')).rejects.toThrow(/Refusing to serve on 0.0.0.0 without API keys/);
  });

  it('stays keyed after its last key is revoked, and gates /metrics by admin key or token', async () => {
    const { conn, dataDir, make } = await setup();
    const { key } = await createApiKey(conn, { name: 'a', sandboxes: ['prod'], scopes: ['read', 'admin'] });
    touchKeyStamp(dataDir);
    const access = await make('127.0.0.1');
    expect((await access.resolve(headers({ authorization: `Bearer ${key}` }))).principal.scopes.has('admin')).toBe(
      true,
    );
    await expect(access.resolve(headers({ 'x-sandbox-name': 'prod' }))).rejects.toThrow(/API key is required/);
    await expect(
      access.resolve(headers({ authorization: `Bearer ${key}`, 'x-sandbox-name': 'elsewhere' })),
    ).rejects.toThrow(/not allowed in sandbox "elsewhere"/);
    expect(await access.metricsRefusal(`Bearer ${key}`)).toBeUndefined();
    expect(await access.metricsRefusal('Bearer t0k3n')).toBeUndefined();
    expect((await access.metricsRefusal(undefined))?.status).toBe(401);
    await revokeApiKey(conn, key.slice(0, 12));
    touchKeyStamp(dataDir);
    expect(await access.keys.required()).toBe(true);
    await expect(access.resolve(headers({ authorization: `Bearer ${key}` }))).rejects.toThrow(/none is live/);
    access.stop();
  });
});

describe('configuration', () => {
  it('validates every number where it is read, naming the variable and the range', () => {
    expect(loadConfig({}).limits.shutdownGraceMs).toBe(8000);
    expect(loadConfig({ SEGQL_STREAMING_SWEEP_MS: '100' }).limits.streamingSweepMs).toBe(100);
    expect(() => loadConfig({ SEGQL_STREAMING_SWEEP_MS: '10' })).toThrow(
      'SEGQL_STREAMING_SWEEP_MS must be an integer of at least 50, got "10"',
    );
    expect(() => loadConfig({ PORT: '70000' })).toThrow('PORT must be an integer from 0 to 65535, got "70000"');
    expect(() => loadConfig({ SEGQL_MAX_COST: '1.5' })).toThrow(/SEGQL_MAX_COST must be an integer/);
  });
});
