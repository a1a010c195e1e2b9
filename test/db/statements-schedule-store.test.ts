/**
 * Statements by name, the schedule store (src/domain/schedules/schedule-store.ts): both texts give
 * the same schedules, pages and counts. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL
 * server. PostgreSQL keeps `properties` as jsonb, so its text is compared parsed, not as written.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import type { StatementRunner } from '../../src/db/statement.js';
import '../../src/domain/schedules/schedule-store.js';
import { describeOnPostgres, statementsOf } from './statements-harness.js';

describeOnPostgres('schedule-store statements on both databases', 'statements_schedule_store', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('schedule-store');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    const parsed = (rows: Record<string, unknown>[]) =>
      rows.map((r) => ('properties' in r ? { ...r, properties: JSON.parse(r.properties as string) } : r));
    const both = async (run: (runner: StatementRunner) => Promise<unknown>, what: string) => {
      const a = await run(sqlite);
      const b = await run(postgres);
      const norm = (x: unknown) =>
        Array.isArray(x) ? parsed(x) : x && typeof x === 'object' ? parsed([x as Record<string, unknown>])[0] : x;
      expect(norm(b), what).toEqual(norm(a));
      return a;
    };
    try {
      const schedule = (sandbox: number, name: string, type: string, state: string, props: object) => [
        sandbox,
        name,
        name.toLowerCase(),
        type,
        JSON.stringify(props),
        '0 * * * *',
        'UTC',
        state,
        state === 'ACTIVE' ? 3_600_000 : null,
        1_000,
        1_000,
      ];
      const rows = [
        schedule(1, 'Hourly', 'REFRESH', 'ACTIVE', { audiences: ['a', 'b'], full: true }),
        schedule(1, 'Nightly', 'EXPORT', 'INACTIVE', { audience: 'a', format: 'CSV' }),
        schedule(1, 'Weekly', 'REFRESH', 'ACTIVE', { audiences: ['c'] }),
        schedule(2, 'Other', 'REFRESH', 'ACTIVE', { audiences: [] }),
      ];
      for (const params of rows) await both((r) => r.get(q('insert'), params), 'insert');
      await both((r) => r.all(q('byIds'), [1, '[1,2,4,99]']), 'byIds');
      await both((r) => r.all(q('byIds'), [1, '[]']), 'byIds empty');
      await both((r) => r.get(q('byId'), [4]), 'byId');
      await both((r) => r.get(q('byId'), [99]), 'byId missing');
      expect(await both((r) => r.all(q('active')), 'active')).toHaveLength(3);
      for (const filter of [
        [1, null, null],
        [1, 'REFRESH', null],
        [1, null, 'INACTIVE'],
        [1, 'EXPORT', 'ACTIVE'],
        [2, null, null],
      ]) {
        for (const bounds of [
          [0, Number.MAX_SAFE_INTEGER],
          [1, Number.MAX_SAFE_INTEGER],
          [0, 3],
        ]) {
          for (const page of ['pageUp', 'pageDown']) {
            await both((r) => r.all(q(page), [...filter, ...bounds, 2]), `${page} ${filter} ${bounds}`);
          }
        }
        await both((r) => r.get(q('count'), filter), `count ${filter}`);
      }
      expect(await sqlite.get(q('count'), [1, 'REFRESH', null])).toEqual({ n: 2 });
      await both((r) => r.get(q('idByName'), [1, 'weekly']), 'idByName');
      await both(
        (r) =>
          r.get(q('update'), [
            'Hourly2',
            'hourly2',
            '{"audiences":["z"]}',
            '5 * * * *',
            'UTC',
            'ACTIVE',
            7,
            2,
            9,
            1,
            1,
          ]),
        'update',
      );
      await both(
        (r) => r.get(q('update'), ['X', 'x', '{}', '5 * * * *', 'UTC', 'ACTIVE', 7, 2, 9, 1, 1]),
        'update stale',
      );
      await both((r) => r.run(q('setNextRunAt'), [null, 1]), 'setNextRunAt');
      await both((r) => r.run(q('setLastRunAt'), [8, 1]), 'setLastRunAt');
      await both((r) => r.get(q('byId'), [1]), 'byId after');
      await both((r) => r.run(q('deleteTicks'), [2]), 'deleteTicks');
      await both((r) => r.run(q('deleteAudiences'), [2]), 'deleteAudiences');
      await both((r) => r.run(q('delete'), [2]), 'delete');
      expect(await both((r) => r.all(q('active')), 'active after')).toHaveLength(3);
    } finally {
      sqlite.close();
    }
  });
});
