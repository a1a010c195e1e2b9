/**
 * Statements by name, freshness (src/domain/schedules/freshness.ts): both texts give the same
 * active schedules, batch-evaluated audiences and job statuses. Runs when SEGQL_TEST_DATABASE_URL
 * names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/schedules/freshness.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

describeOnPostgres('freshness statements on PostgreSQL', 'statements_freshness', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('freshness');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const insert = (table: string, columns: string[], rows: unknown[][], pgRows = rows) =>
        insertRows(sqlite, pg, table, columns, rows, pgRows);
      await insert(
        'sandboxes',
        ['id', 'name', 'created_at'],
        [
          [1, 'prod', 0],
          [2, 'staging', 0],
        ],
      );
      const schedule = (id: number, sandboxId: number, type: string, state: string, nextRunAt: number | null) => [
        id,
        sandboxId,
        `s${id}`,
        `s${id}`,
        type,
        JSON.stringify({ segments: id === 1 ? ['*'] : [], note: 'x' }),
        '0 * * * *',
        'UTC',
        state,
        nextRunAt,
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
          'next_run_at',
          'created_at',
          'updated_at',
        ],
        [
          schedule(1, 1, 'BATCH_SEGMENTATION', 'ACTIVE', 5_000),
          schedule(2, 1, 'BATCH_SEGMENTATION', 'ACTIVE', null),
          schedule(3, 1, 'BATCH_SEGMENTATION', 'INACTIVE', 1_000),
          schedule(4, 1, 'EXPORT', 'ACTIVE', 1_000),
          schedule(5, 2, 'BATCH_SEGMENTATION', 'ACTIVE', 1_000),
        ],
      );
      // Definitions 1 and 2 batch-enabled, 3 not; eval_batch is a boolean on PostgreSQL.
      const definition = (id: number, batch: boolean) => (asBoolean: boolean) => [
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
        0,
        0,
      ];
      const definitions = [definition(1, true), definition(2, true), definition(3, false)];
      await insert(
        'segment_definitions',
        [
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
        ],
        definitions.map((d) => d(false)),
        definitions.map((d) => d(true)),
      );
      const audience = (id: number, definitionId: number | null, state: string) => [
        id,
        1,
        `a${id}`,
        `a${id}`,
        'ns',
        'SEGMENTATION',
        state,
        definitionId,
        0,
        0,
      ];
      await insert(
        'audiences',
        [
          'id',
          'sandbox_id',
          'name',
          'name_key',
          'namespace',
          'origin',
          'lifecycle_state',
          'definition_id',
          'created_at',
          'updated_at',
        ],
        [
          audience(101, 1, 'PUBLISHED'),
          audience(102, 2, 'DRAFT'),
          audience(103, 3, 'PUBLISHED'),
          audience(104, 1, 'ARCHIVED'),
          audience(105, null, 'PUBLISHED'),
        ],
      );
      await insert(
        'jobs',
        ['id', 'sandbox_id', 'kind', 'status', 'input', 'created_at', 'updated_at'],
        [
          [7, 1, 'SEGMENT', 'FAILED', '{}', 0, 0],
          [8, 1, 'SEGMENT', 'SUCCEEDED', '{}', 0, 0],
        ],
      );
      type Active = { id: number; properties: string; nextRunAt: number | null };
      const parsed = (rows: Active[]) =>
        rows.map((r) => ({ ...r, properties: JSON.parse(r.properties) as unknown })).sort((a, b) => a.id - b.id);
      for (const sandboxId of [1, 2, 3]) {
        const rows = parsed(await sqlite.all<Active>(q('active'), [sandboxId]));
        expect(parsed(await postgres.all<Active>(q('active'), [sandboxId])), String(sandboxId)).toEqual(rows);
      }
      expect(parsed(await sqlite.all<Active>(q('active'), [1]))).toEqual([
        { id: 1, properties: { segments: ['*'], note: 'x' }, nextRunAt: 5_000 },
        { id: 2, properties: { segments: [], note: 'x' }, nextRunAt: null },
      ]);
      const sortedIds = (rows: { id: number }[]) => rows.map((r) => r.id).sort((a, b) => a - b);
      for (const params of [
        [1, JSON.stringify([101, 102, 103, 104, 105])],
        [2, JSON.stringify([101])],
      ]) {
        const rows = sortedIds(await sqlite.all(q('batchEvaluated'), params));
        expect(sortedIds(await postgres.all(q('batchEvaluated'), params)), String(params)).toEqual(rows);
      }
      const evaluated = sortedIds(
        await sqlite.all(q('batchEvaluated'), [1, JSON.stringify([101, 102, 103, 104, 105])]),
      );
      expect(evaluated).toContain(101);
      expect(evaluated).not.toContain(103);
      expect(evaluated).not.toContain(105);
      const statuses = async (runner: typeof postgres) =>
        (await runner.all<{ id: number; status: string }>(q('jobStatus'), [JSON.stringify([7, 8, 9])])).sort(
          (a, b) => a.id - b.id,
        );
      expect(await statuses(postgres)).toEqual(await statuses(sqlite));
      expect(await statuses(sqlite)).toEqual([
        { id: 7, status: 'FAILED' },
        { id: 8, status: 'SUCCEEDED' },
      ]);
    } finally {
      sqlite.close();
    }
  });
});
