/**
 * The PostgreSQL memberships table is laid out for a segment job's writes (docs/storage.md,
 * "PostgreSQL layout"): pages half empty and no index on status, so a re-run's REALIZED → EXISTING
 * updates are HOT (test/domain/pg-segment-job.test.ts counts them); and the job's purge of long
 * exited members still finds them through the partial index, whose predicate is on exited_at.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PURGE_EXITED } from '../../src/domain/segment-jobs/pg-segment-results.js';
import { freshPgDatabase, type PgTestDatabase, pgAdminUrl } from './pg-test-database.js';

describe.skipIf(!pgAdminUrl)('memberships on PostgreSQL', () => {
  let db: PgTestDatabase;
  beforeAll(async () => {
    db = await freshPgDatabase('memberships_layout');
  }, 60_000);
  afterAll(async () => {
    await db?.drop();
  });

  it('leaves half of each page free and indexes exits by their time', async () => {
    const { rows: options } = await db.conn.pool.query<{ reloptions: string[] | null }>(
      "SELECT reloptions FROM pg_class WHERE oid = 'memberships'::regclass",
    );
    expect(options[0]!.reloptions).toEqual(['fillfactor=50']);
    const { rows: indexes } = await db.conn.pool.query<{ indexname: string; indexdef: string }>(
      "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'memberships' ORDER BY indexname",
    );
    expect(indexes.map((i) => i.indexname)).toEqual([
      'memberships_audience_id_profile_id_pk',
      'memberships_exited',
      'memberships_profile',
    ]);
    // No index names status, so a status change alone keeps every index as it is.
    expect(indexes.filter((i) => /\bstatus\b/.test(i.indexdef))).toEqual([]);
    expect(indexes[1]!.indexdef).toMatch(/\(audience_id, exited_at\) WHERE \(exited_at IS NOT NULL\)$/);
  });

  it('purges long exited members through the partial index, not the members', async () => {
    const pool = db.conn.pool;
    // 20 k current members of two audiences, 40 exited: 20 of them long ago.
    await pool.query(
      `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)
       SELECT 1, a, p, CASE WHEN p % 500 = 0 THEN 'EXITED' ELSE 'EXISTING' END, 1, 1,
         CASE WHEN p % 500 = 0 THEN CASE WHEN p % 1000 = 0 THEN 100 ELSE 900 END END
       FROM generate_series(1, 2) a, generate_series(1, 10000) p`,
    );
    await pool.query('ANALYZE memberships');
    const { rows: plan } = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${PURGE_EXITED}`, [[1, 2], 500]);
    expect(plan.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/Index Scan using memberships_exited/);
    const deleted = await pool.query(PURGE_EXITED, [[1, 2], 500]);
    expect(deleted.rowCount).toBe(20);
    const { rows: left } = await pool.query<{ status: string; n: number }>(
      'SELECT status, count(*) AS n FROM memberships GROUP BY status ORDER BY status',
    );
    expect(left).toEqual([
      { status: 'EXISTING', n: 19960 },
      { status: 'EXITED', n: 20 },
    ]);
  });
});
