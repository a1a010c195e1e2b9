import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseFile } from '../../src/config.js';
import { openDatabase } from '../../src/db/index.js';
import { DatabaseDamagedError } from '../../src/db/integrity.js';
import { seedDemoData } from '../../src/domain/demo-data.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { startServer } from '../../src/server.js';
import { segqlArgs } from '../segql-command.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'segql-damage-'));
  dirs.push(dir);
  return dir;
};

let intact: string;
let damaged: string;

beforeAll(async () => {
  intact = tempDir();
  const conn = openDatabase(databaseFile(intact));
  seedDemoData(conn, (await ensureSandbox(conn, 'prod')).id, { profiles: 3000, eventsPerProfile: 10, seed: 7 });
  conn.sqlite.pragma('wal_checkpoint(TRUNCATE)');
  conn.close();
  // A copy with 64 KiB overwritten in the middle of the file (the events table, most of it).
  damaged = tempDir();
  copyFileSync(databaseFile(intact), databaseFile(damaged));
  const size = statSync(databaseFile(damaged)).size;
  const fd = openSync(databaseFile(damaged), 'r+');
  const junk = Buffer.alloc(64 * 1024, 0xa5);
  writeSync(fd, junk, 0, junk.length, Math.floor(size / 2 / 4096) * 4096);
  closeSync(fd);
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function post(url: string, query: string) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query }),
  });
  return (await res.json()) as { data?: any; errors?: { message: string; extensions: Record<string, unknown> }[] };
}

describe('a damaged database is not served as healthy', () => {
  it('the integrity check passes an intact store and the server is ready', async () => {
    const server = await startServer({ port: 0, dataDir: intact });
    try {
      expect((await fetch(server.url.replace('/graphql', '/readyz'))).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('refuses to start on a damaged file, saying what to do', async () => {
    const started = startServer({ port: 0, dataDir: damaged });
    await expect(started).rejects.toBeInstanceOf(DatabaseDamagedError);
    await expect(started).rejects.toThrow(/is damaged .*restore it from a backup.*SEGQL_SKIP_INTEGRITY_CHECK=1/);
  });

  it('`segql serve` exits non-zero with one line on stderr', () => {
    const run = spawnSync(process.execPath, segqlArgs('serve'), {
      cwd: root,
      env: { ...process.env, PORT: '0', SEGQL_DATA_DIR: damaged, SEGQL_DEMO_PROFILES: '0', SEGQL_LOG_LEVEL: 'info' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status).toBe(1);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^segql: The database .*segql\.db is damaged/);
  });

  it('`segql serve` with SEGQL_SKIP_INTEGRITY_CHECK=1 starts on the damaged file', async () => {
    const copy = tempDir();
    copyFileSync(databaseFile(damaged), databaseFile(copy));
    const child = spawn(process.execPath, segqlArgs('serve'), {
      cwd: root,
      env: {
        ...process.env,
        PORT: '0',
        SEGQL_DATA_DIR: copy,
        SEGQL_DEMO_PROFILES: '0',
        SEGQL_LOG_LEVEL: 'info',
        SEGQL_SKIP_INTEGRITY_CHECK: '1',
      },
    });
    let output = '';
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "SegQL listening" within 30 s:\n${output}`)), 30_000);
        const read = (chunk: Buffer) => {
          output += chunk;
          const listening = /"url":"([^"]+)"[^\n]*"msg":"SegQL listening"/.exec(output);
          if (listening) {
            clearTimeout(timer);
            resolve(listening[1]!);
          }
        };
        child.stdout.on('data', read);
        child.stderr.on('data', read);
        child.once('exit', (code) => reject(new Error(`exited with ${code} before listening:\n${output}`)));
      });
      expect((await fetch(url.replace('/graphql', '/readyz'))).status).toBe(200);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  }, 40_000);

  it('with the check skipped, a query hitting the damage turns /readyz to 503, stops writes and logs at fatal', async () => {
    const lines: { level: number; msg: string }[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).trim().split('\n')) lines.push(JSON.parse(line));
        done();
      },
    });
    const server = await startServer({
      port: 0,
      dataDir: damaged,
      skipIntegrityCheck: true,
      log: pino({ level: 'info' }, sink),
    });
    const readyz = server.url.replace('/graphql', '/readyz');
    try {
      expect((await fetch(readyz)).status).toBe(200);
      const scan = await post(
        server.url,
        '{ profilesMatching(expression: "xEvent.exists(channel = \\"zz\\")") { totalCount } }',
      );
      expect(scan.errors?.[0]?.extensions?.code).toBe('INTERNAL');
      expect(scan.errors?.[0]?.message).toContain('The database is damaged');

      const ready = await fetch(readyz);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ status: 'damaged' });

      const write = await post(server.url, 'mutation { createAudience(input: { name: "after damage" }) { id } }');
      expect(write.errors?.[0]?.extensions?.code).toBe('INTERNAL');
      expect(write.errors?.[0]?.message).toMatch(/The database is damaged .*writes are stopped/);
      expect(write.data ?? null).toBeNull();
      // The review's case: ingest kept writing into the damaged file.
      const ingest = await post(
        server.url,
        'mutation { ingestProfiles(records: [{ identities: [{ namespace: "email", id: "after@damage.io" }], attributes: {} }]) { accepted } }',
      );
      expect(ingest.errors?.[0]?.message).toMatch(/The database is damaged .*writes are stopped/);
      expect(ingest.data ?? null).toBeNull();
      expect(
        (await post(server.url, '{ profile(identity: { namespace: "email", id: "after@damage.io" }) { id } }')).data,
      ).toEqual({ profile: null });
      expect((await post(server.url, '{ audiences { totalCount } }')).data).toEqual({ audiences: { totalCount: 0 } });

      expect(lines.filter((l) => l.level === 60).map((l) => l.msg)).toEqual([
        'the database is damaged: /readyz answers 503 and writes are refused; restore a good copy',
      ]);
    } finally {
      await server.close();
    }
  });
});
