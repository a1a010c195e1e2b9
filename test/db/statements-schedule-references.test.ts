/**
 * Statements by name, schedule references (src/domain/schedules/schedule-references.ts): both
 * texts write and give the same schedule–audience pairs. Runs when SEGQL_TEST_DATABASE_URL names
 * a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/schedules/schedule-references.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

describeOnPostgres('schedule-references statements on PostgreSQL', 'statements_schedule_references', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('schedule-references');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const insert = (table: string, columns: string[], rows: unknown[][]) =>
        insertRows(sqlite, pg, table, columns, rows);
      await insert('sandboxes', ['id', 'name', 'created_at'], [[1, 'prod', 0]]);
      const schedule = (id: number, name: string) => [
        id,
        1,
        name,
        name.toLowerCase(),
        'BATCH_SEGMENTATION',
        JSON.stringify({ segments: [] }),
        '0 * * * *',
        'UTC',
        'ACTIVE',
        0,
        0,
      ];
      await insert(
        'schedules',
        [
          'id',
          'sandbox_id',
          'name',
          'name_key',
          'type',
          'properties',
          'cron',
          'timezone',
          'state',
          'created_at',
          'updated_at',
        ],
        [schedule(1, 'Hourly'), schedule(2, 'Nightly'), schedule(3, 'Weekly')],
      );
      for (const runner of [sqlite, postgres]) {
        expect(await runner.run(q('insert'), [1, 1, JSON.stringify([10, 11, 12])])).toEqual({ changes: 3 });
        expect(await runner.run(q('insert'), [2, 1, JSON.stringify([11])])).toEqual({ changes: 1 });
        expect(await runner.run(q('insert'), [3, 1, JSON.stringify([11, 12])])).toEqual({ changes: 2 });
        expect(await runner.run(q('clear'), [3])).toEqual({ changes: 2 });
        expect(await runner.run(q('insert'), [3, 1, JSON.stringify([11])])).toEqual({ changes: 1 });
      }
      const same = async (key: string, params: unknown[]) => {
        const rows = await sqlite.all(q(key), params);
        expect(await postgres.all(q(key), params), `${key} ${JSON.stringify(params)}`).toEqual(rows);
        return rows;
      };
      expect(await same('naming', [1, 11])).toEqual([
        { id: 1, name: 'Hourly' },
        { id: 2, name: 'Nightly' },
        { id: 3, name: 'Weekly' },
      ]);
      expect(await same('naming', [1, 12])).toEqual([{ id: 1, name: 'Hourly' }]);
      await same('naming', [2, 11]);
      expect(await same('among', [JSON.stringify([10, 11]), JSON.stringify([1, 3])])).toEqual([
        { scheduleId: 1, audienceId: 10, sandboxId: 1 },
        { scheduleId: 1, audienceId: 11, sandboxId: 1 },
        { scheduleId: 3, audienceId: 11, sandboxId: 1 },
      ]);
      await same('among', [JSON.stringify([12]), JSON.stringify([2, 3])]);
    } finally {
      sqlite.close();
    }
  });
});
