import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { pgAdminUrl } from '../db/pg-test-database.js';
import { benchEnv } from '../segql-command.js';

// Smoke test of `npm run bench -- stream --backend postgres --nodes 2` on a tiny store: it copies
// the seeded store into a database of its own, serves it from two nodes sharing Redis (the
// subscriber on the second), checks what it wrote in PostgreSQL, prints its figures in the
// result-line format of docs/performance.md, and drops its database. The figures mean nothing here.

const root = fileURLToPath(new URL('../..', import.meta.url));
const redisUrl = process.env.SEGQL_TEST_REDIS_URL;

/** `bench <name> <figure>=<value> <unit> (n=<runs>, median; min <v>, max <v>)` */
const RESULT = /^bench stream-postgres (\S+)=(-?[\d.e+-]+|NaN) (\S+) \(n=(\d+), median; min (\S+), max (\S+)\)$/;

describe.skipIf(!pgAdminUrl || !redisUrl)('stream --backend postgres through two nodes on a tiny store', () => {
  it('hears every change on the other node, checks the store in PostgreSQL and drops its database', async () => {
    const args = ['--profiles', '300', '--definitions', '10', '--events', '400', '--runs', '1'];
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'bench/run.ts', 'stream', '--backend', 'postgres', '--nodes', '2', ...args],
      {
        cwd: root,
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...benchEnv(), SEGQL_BENCH_DATABASE_URL: pgAdminUrl, SEGQL_BENCH_REDIS_URL: redisUrl },
      },
    );
    const output = `${r.stdout}\n${r.stderr}`;
    expect(r.status, output).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(
      lines.some((l) => l.startsWith('MISMATCH')),
      output,
    ).toBe(false);

    const figures = new Map<string, number>();
    for (const line of lines.filter((l) => l.startsWith('bench '))) {
      const m = RESULT.exec(line);
      expect(m, line).not.toBeNull();
      figures.set(m![1]!, Number(m![2]));
    }
    for (const suffix of ['', '-sequential']) {
      expect(figures.get(`events-per-s${suffix}.nodes-2`), output).toBeGreaterThan(0);
      expect(figures.get(`server-cpu-ms-per-1000-events${suffix}.nodes-2`), output).toBeGreaterThan(0);
      expect(figures.has(`latency-p99-ms${suffix}.nodes-2`), output).toBe(true);
    }
    // Warm-up, one run with 8 in flight and one sequential: 400 events each. 10 definitions × 300
    // profiles; the tenth counts product views, which the bench sends, so streaming changes some.
    const check =
      /^check stream-postgres: 1200 events stored for 1200 sent; (\d+) changes written; 3000 memberships compared, 0 wrong$/m.exec(
        r.stdout,
      );
    expect(check, output).not.toBeNull();
    // Changes were written, so the subscriber on node 2 heard them from node 1 through Redis.
    expect(Number(check![1])).toBeGreaterThan(0);
    expect(lines).toContain(
      'setup stream-postgres: 2 node(s); subscriber on node 2, ingests round robin over node(s) 1',
    );

    const name = /copied into (segql_stream_\w+) /.exec(r.stdout)?.[1];
    expect(name, output).toBeDefined();
    const client = new pg.Client({ connectionString: pgAdminUrl });
    await client.connect();
    try {
      const left = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      expect(left.rowCount).toBe(0);
    } finally {
      await client.end();
    }
  }, 150_000);
});
