import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { gql, ok } from './harness.js';
import { killSpawned, spawnServer } from './process.js';

const dirs: string[] = [];
afterAll(() => {
  killSpawned();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir() {
  const d = mkdtempSync(join(tmpdir(), 'segql-life-'));
  dirs.push(d);
  return d;
}

describe('process lifecycle', () => {
  it('leaves the whole batch or none of it when killed with SIGKILL in the middle of a 10,000-record ingest', async () => {
    const dataDir = tempDir();
    const outcomes: number[] = [];
    // Kill at different moments so some runs land inside the write transaction.
    for (const [run, delayMs] of [5, 25, 60, 120].entries()) {
      const server = await spawnServer(dataDir);
      const records = Array.from({ length: 10_000 }, (_, i) => ({
        identities: [{ namespace: 'run', id: `${run}-${i}` }],
        attributes: { loyalty: { points: i, tier: 'gold' }, homeAddress: { city: 'Oslo' } },
      }));
      const request = gql(server.url, 'mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', {
        r: records,
      }).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      server.child.kill('SIGKILL');
      await server.exited;
      await request;
      const db = new Database(join(dataDir, 'segql.db'));
      const landed = (
        db.prepare("SELECT count(*) AS n FROM identities WHERE namespace = 'run' AND value LIKE ?").get(`${run}-%`) as {
          n: number;
        }
      ).n;
      const profiles = (db.prepare('SELECT count(*) AS n FROM profiles').get() as { n: number }).n;
      const identities = (db.prepare('SELECT count(*) AS n FROM identities').get() as { n: number }).n;
      db.close();
      outcomes.push(landed);
      expect([0, 10_000]).toContain(landed);
      expect(profiles).toBe(identities);
    }
    expect(outcomes).toHaveLength(4);
  }, 120_000);

  it('migrates and seeds demo profiles on an empty data directory, and only then', async () => {
    const dataDir = tempDir();
    for (let run = 0; run < 2; run++) {
      // From source, as `npm start` runs it: the other spawned servers run the build.
      const server = await spawnServer(dataDir, { SEGQL_DEMO_PROFILES: '50' }, { fromSource: true });
      const data = ok(await gql(server.url, '{ profiles { totalCount } }'));
      expect(data.profiles.totalCount).toBe(50);
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }
  }, 60_000);

  it('has written every line of its log (written asynchronously) when it exits on SIGTERM', async () => {
    const server = await spawnServer(tempDir());
    let output = '';
    server.child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      await res.text();
      ids.push(res.headers.get('x-request-id')!);
    }
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const lines = output
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { msg: string; requestId?: string; status?: number });
    const logged = new Set(lines.filter((l) => l.msg === 'request' && l.status === 200).map((l) => l.requestId));
    expect(ids.filter((id) => !logged.has(id))).toEqual([]);
    // Its last lines, written just before it exits, are there too.
    expect(lines.slice(-2).map((l) => l.msg)).toEqual(['shutting down', 'SegQL stopped']);
  }, 30_000);

  it('exits 0 within 10 s on SIGTERM, also with a subscription open', async () => {
    const server = await spawnServer(tempDir());
    expect(ok(await gql(server.url, '{ __typename }')).__typename).toBe('Query');
    const sse = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: 'subscription { heartbeat(intervalMs: 100) }' }),
    });
    const reader = sse.body!.getReader();
    await reader.read();
    const started = Date.now();
    server.child.kill('SIGTERM');
    const code = await server.exited;
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    await reader.cancel().catch(() => {});
  }, 30_000);
});
