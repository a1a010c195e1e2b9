/**
 * The API keys statements (src/domain/api-keys.ts): both texts give the same rows. Runs when
 * SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import type { StatementRunner } from '../../src/db/statement.js';
import '../../src/domain/api-keys.js';
import '../../src/domain/sandboxes.js';
import { describeOnPostgres, statementsOf } from './statements-harness.js';

describeOnPostgres('api keys statements on both databases', 'statements_api_keys', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('api-keys');
    const sandbox = statementsOf('sandboxes')('insert');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const runners: StatementRunner[] = [sqlite, postgres];
      const made = [];
      for (const runner of runners) {
        const a = (await runner.get<{ id: number }>(sandbox, ['alpha', 1_000]))!;
        const b = (await runner.get<{ id: number }>(sandbox, ['beta', 1_000]))!;
        const k1 = (await runner.get<{ id: number }>(q('insert'), ['one', 'segql_aaaaaa', 'h1', '["read"]', 2_000]))!;
        const k2 = (await runner.get<{ id: number }>(q('insert'), [
          'two',
          'segql_bbbbbb',
          'h2',
          '["read","write"]',
          3_000,
        ]))!;
        const k3 = (await runner.get<{ id: number }>(q('insert'), [
          'three',
          'segql_cccccc',
          'h3',
          '["admin"]',
          4_000,
        ]))!;
        await runner.run(q('linkSandbox'), [k1.id, a.id]);
        await runner.run(q('linkSandbox'), [k2.id, a.id]);
        await runner.run(q('linkSandbox'), [k2.id, b.id]);
        await runner.run(q('linkSandbox'), [k3.id, b.id]);
        made.push({
          ids: [k1.id, k2.id, k3.id],
          revoked: (await runner.run(q('revoke'), [5_000, k3.id])).changes,
        });
      }
      expect(made[1]).toEqual(made[0]);
      expect(made[0]).toMatchObject({ revoked: 1 });
      const byKey = (a: { keyId: number }, b: { keyId: number }) =>
        a.keyId - b.keyId || JSON.stringify(a).localeCompare(JSON.stringify(b));
      for (const [name, params] of [
        ['all', []],
        ['ring', []],
      ] as const) {
        const rows = await sqlite.all(q(name), params);
        expect(rows.length, name).toBe(3);
        expect(await postgres.all(q(name), params), name).toEqual(rows);
      }
      // Unordered reads: equal as sets.
      for (const [name, params] of [
        ['sandboxNames', []],
        ['linksOf', ['[1,2]']],
        ['linksOf', ['[]']],
      ] as const) {
        const rows = (await sqlite.all<{ keyId: number }>(q(name), params)).sort(byKey);
        expect((await postgres.all<{ keyId: number }>(q(name), params)).sort(byKey), name).toEqual(rows);
      }
      expect(await sqlite.all(q('linksOf'), ['[1,2]'])).toHaveLength(3);
    } finally {
      sqlite.close();
    }
  });
});
