/**
 * SegQL's PostgreSQL sessions start with JIT compilation off (src/db/pg/index.ts says why), and a
 * database URL that sets `options` itself is obeyed. Against the admin database, which keeps the
 * server's own default (on); the test databases turn it off themselves. Skipped (visibly) without
 * SEGQL_TEST_DATABASE_URL.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openPgDatabase, pgPoolConfig } from '../../src/db/pg/index.js';
import { pgAdminUrl } from './pg-test-database.js';

async function jitOf(pool: pg.Pool): Promise<string> {
  try {
    return (await pool.query<{ jit: string }>('SHOW jit')).rows[0]!.jit;
  } finally {
    await pool.end();
  }
}

describe.skipIf(!pgAdminUrl)('PostgreSQL session options', () => {
  it('turns JIT off in every session of the pool, and of the query threads', async () => {
    expect(await jitOf(new pg.Pool({ connectionString: pgAdminUrl }))).toBe('on');
    const conn = openPgDatabase(pgAdminUrl!, { max: 2 });
    expect(await jitOf(conn.pool)).toBe('off');
    expect(await jitOf(new pg.Pool(pgPoolConfig(pgAdminUrl!, 1)))).toBe('off');
  });

  it('lets the URL set the options instead', async () => {
    const url = new URL(pgAdminUrl!);
    url.searchParams.set('options', '-c jit=on');
    expect(await jitOf(openPgDatabase(url.toString(), { max: 1 }).pool)).toBe('on');
  });
});
