/**
 * Statements by name, overlap (src/domain/overlap.ts): both texts give the same masks for the
 * same memberships. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/overlap.js';
import { describeOnPostgres, statementsOf } from './statements-harness.js';

describeOnPostgres('overlap statements on PostgreSQL', 'statements_overlap', (pg) => {
  it('gives the same masks from both texts', async () => {
    const q = statementsOf('overlap');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const insert = async (table: string, columns: string[], rows: unknown[][]) => {
        for (const row of rows) {
          sqlite.sqlite
            .prepare(`INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`)
            .run(...row);
          await pg.conn.pool.query(
            `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
            row,
          );
        }
      };
      await insert('sandboxes', ['id', 'name', 'created_at'], [[1, 'prod', 0]]);
      // Audiences 10, 11, 12 in sandbox 1; an EXITED row and another sandbox's row count for nothing.
      const member = (audience: number, profile: number, status = 'REALIZED', sandbox = 1) => [
        sandbox,
        audience,
        profile,
        status,
        1_000,
      ];
      await insert(
        'memberships',
        ['sandbox_id', 'audience_id', 'profile_id', 'status', 'last_evaluated_at'],
        [
          member(10, 1),
          member(11, 1, 'EXISTING'),
          member(10, 2),
          member(12, 2),
          member(11, 3),
          member(12, 4, 'EXITED'),
          member(10, 5),
          member(11, 5),
          member(12, 5, 'EXISTING'),
          member(10, 6, 'REALIZED', 2),
        ],
      );
      const byMask = (rows: { mask: number }[]) => [...rows].sort((a, b) => a.mask - b.mask);
      for (const params of [
        [JSON.stringify([10, 11, 12]), 1],
        [JSON.stringify([12, 10]), 1],
        [JSON.stringify([10, 11]), 2],
        ['[]', 1],
      ]) {
        const rows = byMask(await sqlite.all<{ mask: number }>(q('masks'), params));
        expect(byMask(await postgres.all<{ mask: number }>(q('masks'), params)), String(params)).toEqual(rows);
      }
      expect(byMask(await sqlite.all(q('masks'), [JSON.stringify([10, 11, 12]), 1]))).toEqual([
        { mask: 2, n: 1 },
        { mask: 3, n: 1 },
        { mask: 5, n: 1 },
        { mask: 7, n: 1 },
      ]);
    } finally {
      sqlite.close();
    }
  });
});
