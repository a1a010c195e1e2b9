/**
 * Statements by name, latest segment jobs (src/domain/segment-jobs/latest-jobs.ts): both texts
 * give the same jobs, with the same definitions each. Runs when SEGQL_TEST_DATABASE_URL names a
 * PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/segment-jobs/latest-jobs.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

describeOnPostgres('latest-jobs statements on PostgreSQL', 'statements_latest_jobs', (pg) => {
  it('gives the same jobs from both texts', async () => {
    const q = statementsOf('latest-jobs');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const insert = (table: string, columns: string[], rows: unknown[][], pgRows = rows) =>
        insertRows(sqlite, pg, table, columns, rows, pgRows);
      await insert('sandboxes', ['id', 'name', 'created_at'], [[1, 'prod', 0]]);
      // Definitions 1 and 2 batch-enabled (2 made late), 3 not, 4 with no job, 5 sharing 1's; eval_batch is a boolean on PostgreSQL.
      const definitionColumns = [
        'id',
        'sandbox_id',
        'audience_id',
        'name',
        'name_key',
        'expression_format',
        'expression_value',
        'expression_text',
        'eval_batch',
        'eval_streaming',
        'eval_edge',
        'eligible_streaming',
        'eligible_edge',
        'created_at',
        'updated_at',
      ];
      const definition = (id: number, batch: boolean, createdAt: number) => (asBoolean: boolean) => [
        id,
        1,
        100 + id,
        `d${id}`,
        `d${id}`,
        'PQL',
        'true',
        'true',
        asBoolean ? batch : Number(batch),
        asBoolean ? false : 0,
        asBoolean ? false : 0,
        asBoolean ? false : 0,
        asBoolean ? false : 0,
        createdAt,
        createdAt,
      ];
      const definitions = [
        definition(1, true, 100),
        definition(2, true, 2_500),
        definition(3, false, 100),
        definition(4, false, 100),
        definition(5, true, 200),
      ];
      await insert(
        'segment_definitions',
        definitionColumns,
        definitions.map((d) => d(false)),
        definitions.map((d) => d(true)),
      );
      const job = (id: number, input: object, createdAt: number, result: object | null = null, kind = 'SEGMENT') => [
        id,
        1,
        kind,
        'SUCCEEDED',
        JSON.stringify(input),
        result === null ? null : JSON.stringify(result),
        createdAt,
        createdAt,
      ];
      await insert(
        'jobs',
        ['id', 'sandbox_id', 'kind', 'status', 'input', 'result', 'created_at', 'updated_at'],
        [
          job(1, { definitionIds: [1, 3], all: false, at: null }, 1_000, { metrics: { n: 1 }, notes: [] }),
          job(2, { definitionIds: null, all: true, at: null }, 2_000),
          job(3, { definitionIds: [3], all: false, at: 5 }, 3_000, { metrics: { n: 2 }, notes: ['x'] }),
          job(4, { definitionIds: [1, 2, 3, 4] }, 4_000, null, 'EXPORT'),
        ],
      );
      // JSON compared as values: jsonb's text spaces it differently.
      type Row = { id: number; definitionIds: string; input: string; result: string | null };
      const sorted = (rows: Row[]) =>
        rows
          .map((r) => ({
            ...r,
            input: JSON.parse(r.input),
            result: r.result === null ? null : JSON.parse(r.result),
            definitionIds: (JSON.parse(r.definitionIds) as number[]).sort(),
          }))
          .sort((a, b) => a.id - b.id);
      for (const params of [
        [1, JSON.stringify([1, 2, 3, 4, 5])],
        [1, JSON.stringify([2])],
        [2, JSON.stringify([1, 2, 3])],
        [1, '[]'],
      ]) {
        const rows = sorted(await sqlite.all<Row>(q('latest'), params));
        expect(sorted(await postgres.all<Row>(q('latest'), params)), String(params)).toEqual(rows);
      }
      const rows = sorted(await sqlite.all<Row>(q('latest'), [1, JSON.stringify([1, 2, 3, 4, 5])]));
      expect(rows.map((r) => [r.id, r.definitionIds])).toEqual([
        [2, [1, 5]],
        [3, [3]],
      ]);
      expect(rows[1]).toMatchObject({
        kind: 'SEGMENT',
        sandboxId: 1,
        createdAt: 3_000,
        result: { metrics: { n: 2 }, notes: ['x'] },
      });
    } finally {
      sqlite.close();
    }
  });
});
