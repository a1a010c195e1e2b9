/**
 * Statements by name, schedule ticks (src/domain/schedules/schedule-ticks.ts): both texts give
 * the same pages, counts and deciding ticks. Runs when SEGQL_TEST_DATABASE_URL names a
 * PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/schedules/schedule-ticks.js';
import { describeOnPostgres, statementsOf } from './statements-harness.js';

describeOnPostgres('schedule-ticks statements on PostgreSQL', 'statements_schedule_ticks', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('schedule-ticks');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const columns = [
        'sandbox_id',
        'schedule_id',
        'due_at',
        'last_due_at',
        'count',
        'outcome',
        'job_id',
        'reason',
        'recorded_at',
      ];
      const names = columns.map((c) => `"${c}"`).join(', ');
      const ticks = [
        [1, 7, 1_000, 3_000, 3, 'MISSED', null, 'down', 5_000],
        [1, 7, 4_000, null, 1, 'STARTED', 41, null, 5_000],
        [1, 8, 4_000, null, 1, 'STARTED', 42, null, 5_000],
        [1, 7, 5_000, null, 1, 'SKIPPED_OVERLAP', 41, null, 5_001],
        [1, 8, 5_000, null, 1, 'SKIPPED_OVERLAP', 42, null, 5_001],
        [2, 9, 5_000, null, 1, 'SKIPPED_OVERLAP', 43, null, 5_001],
        [1, 7, 6_000, null, 1, 'STARTED', 44, null, 6_001],
      ];
      for (const row of ticks) {
        sqlite.sqlite
          .prepare(`INSERT INTO schedule_ticks (${names}) VALUES (${columns.map(() => '?').join(', ')})`)
          .run(...row);
        await pg.conn.pool.query(
          `INSERT INTO schedule_ticks (${names}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
          row,
        );
      }
      const max = Number.MAX_SAFE_INTEGER;
      const cases: [string, unknown[]][] = [
        ['pageDown', [1, 7, max, 0, 3]],
        ['pageDown', [1, 7, 7, 0, 3]],
        ['pageDown', [1, 7, max, 2, 10]],
        ['pageUp', [1, 7, max, 0, 2]],
        ['pageUp', [1, 7, max, 2, 2]],
        ['pageUp', [2, 7, max, 0, 5]],
        ['count', [1, 7]],
        ['count', [1, 10]],
      ];
      for (const [name, params] of cases) {
        const rows = await sqlite.all(q(name), params);
        expect(await postgres.all(q(name), params), `${name} ${params}`).toEqual(rows);
      }
      const byId = (rows: { id: number }[]) => [...rows].sort((a, b) => a.id - b.id);
      for (const ids of [[7, 8, 9], [9], []]) {
        const params = [JSON.stringify(ids)];
        const rows = byId(await sqlite.all<{ id: number }>(q('lastDeciding'), params));
        expect(byId(await postgres.all<{ id: number }>(q('lastDeciding'), params)), String(ids)).toEqual(rows);
      }
      expect(await sqlite.all(q('pageDown'), [1, 7, 7, 0, 2])).toEqual([
        {
          id: 4,
          sandboxId: 1,
          scheduleId: 7,
          dueAt: 5_000,
          lastDueAt: null,
          count: 1,
          outcome: 'SKIPPED_OVERLAP',
          jobId: 41,
          reason: null,
          recordedAt: 5_001,
        },
        {
          id: 2,
          sandboxId: 1,
          scheduleId: 7,
          dueAt: 4_000,
          lastDueAt: null,
          count: 1,
          outcome: 'STARTED',
          jobId: 41,
          reason: null,
          recordedAt: 5_000,
        },
      ]);
      expect(byId(await sqlite.all(q('lastDeciding'), [JSON.stringify([7, 8, 9])])).map((r) => r.id)).toEqual([3, 7]);
      expect(await sqlite.get(q('count'), [1, 7])).toEqual({ n: 4 });
    } finally {
      sqlite.close();
    }
  });

  it('inserts ticks given as one JSON array in their order, the same on both', async () => {
    const q = statementsOf('schedule-ticks')('insertAll');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      await pg.conn.pool.query('TRUNCATE schedule_ticks RESTART IDENTITY');
      const ticks = [
        {
          sandboxId: 1,
          scheduleId: 3,
          dueAt: 1_000,
          lastDueAt: 9_000,
          count: 9,
          outcome: 'MISSED',
          reason: 'down',
          recordedAt: 10_000,
        },
        { sandboxId: 1, scheduleId: 3, dueAt: 10_000, outcome: 'STARTED', jobId: 5, recordedAt: 10_000 },
      ];
      const byId = (rows: { id: number }[]) => [...rows].sort((a, b) => a.id - b.id);
      const rows = byId(await sqlite.all<{ id: number }>(q, [JSON.stringify(ticks)]));
      expect(rows).toEqual([
        { id: 1, ...ticks[0], jobId: null },
        { id: 2, ...ticks[1], lastDueAt: null, count: 1, reason: null },
      ]);
      expect(byId(await postgres.all<{ id: number }>(q, [JSON.stringify(ticks)]))).toEqual(rows);
    } finally {
      sqlite.close();
    }
  });
});
