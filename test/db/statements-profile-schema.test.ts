/**
 * The profile schema statements (src/domain/profile-schema.ts): both texts insert the same
 * fields from one JSON array, keep or update a field already there alike, and read them back in
 * the same (code-point) order. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import type { StatementRunner } from '../../src/db/statement.js';
import '../../src/domain/profile-schema.js';
import { describeOnPostgres, statementsOf } from './statements-harness.js';

describeOnPostgres('profile schema statements on both databases', 'statements_profile_schema', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('profile-schema');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const made = [];
      for (const runner of [sqlite, postgres] as StatementRunner[]) {
        const defaults = [
          ['profile', 'name', 'string', null],
          ['profile', 'Zip', 'string', null],
          ['event', 'xEvent.type', 'string', null],
        ];
        const inserted = await runner.run(q('insertMissing'), [1, 1_000, JSON.stringify(defaults)]);
        // Again: nothing changes, also not the description given now.
        const again = await runner.run(q('insertMissing'), [
          1,
          2_000,
          JSON.stringify([['profile', 'name', 'number', 'x']]),
        ]);
        const upserted = await runner.run(q('upsert'), [
          1,
          3_000,
          JSON.stringify([
            ['profile', 'name', 'string', 'full name'],
            ['profile', 'ágé', 'number', null],
            ['profile', 'age', 'number', 'years'],
          ]),
        ]);
        await runner.run(q('upsert'), [2, 3_000, JSON.stringify([['profile', 'other', 'boolean', null]])]);
        const none = await runner.run(q('upsert'), [1, 4_000, '[]']);
        made.push({ inserted: inserted.changes, again: again.changes, upserted: upserted.changes, none: none.changes });
      }
      expect(made[1]).toEqual(made[0]);
      expect(made[0]).toEqual({ inserted: 3, again: 0, upserted: 3, none: 0 });
      for (const sandboxId of [1, 2, 3]) {
        const rows = await sqlite.all(q('fields'), [sandboxId]);
        expect(await postgres.all(q('fields'), [sandboxId]), String(sandboxId)).toEqual(rows);
      }
      expect(await postgres.all(q('fields'), [1])).toEqual([
        { class: 'event', path: 'xEvent.type', type: 'string', description: null },
        { class: 'profile', path: 'Zip', type: 'string', description: null },
        { class: 'profile', path: 'age', type: 'number', description: 'years' },
        { class: 'profile', path: 'name', type: 'string', description: 'full name' },
        { class: 'profile', path: 'ágé', type: 'number', description: null },
      ]);
      // Which insert wrote each row: the first keeps created_at, an update leaves it.
      const createdAt = {
        name: 'test',
        sqlite:
          "SELECT path, created_at AS at FROM schema_fields WHERE sandbox_id = 1 AND class = 'profile' ORDER BY path",
        postgres: `SELECT path, created_at AS at FROM schema_fields WHERE sandbox_id = 1 AND class = 'profile'
          ORDER BY path COLLATE "C"`,
      };
      const created = (runner: StatementRunner) => runner.all(createdAt, []);
      expect(await created(postgres)).toEqual(await created(sqlite));
      expect(await created(sqlite)).toEqual([
        { path: 'Zip', at: 1_000 },
        { path: 'age', at: 3_000 },
        { path: 'name', at: 1_000 },
        { path: 'ágé', at: 3_000 },
      ]);
    } finally {
      sqlite.close();
    }
  });
});
