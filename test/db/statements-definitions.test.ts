/**
 * The definitions statements (src/domain/definitions.ts): both texts give the same rows, the
 * flags as 0 or 1 and the JSON arrays as text on both, the list pages in the same order under
 * every filter and bound. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import type { StatementRunner } from '../../src/db/statement.js';
import '../../src/domain/definitions.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

/** The 13 filter parameters: each value twice, after the sandbox. */
function filter(
  sandboxId: number,
  f: {
    name?: string;
    updatedAfter?: number;
    method?: string;
    state?: string;
    label?: string;
    folder?: number;
  } = {},
): unknown[] {
  const twice = (v: unknown) => [v ?? null, v ?? null];
  return [
    sandboxId,
    ...twice(f.name),
    ...twice(f.updatedAfter),
    ...twice(f.method),
    ...twice(f.state),
    ...twice(f.label),
    ...twice(f.folder),
  ];
}
const NO_BOUND = [0, null, null, null];
const bound = (key: unknown, id: number) => [1, key, key, id];

/** Set-clause parameters (15 columns, a flag and a value each) with the given ones set. */
function set(values: Record<number, unknown>): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < 15; i++) {
    if (i in values) out.push(1, values[i]);
    else out.push(0, null);
  }
  return out;
}

describeOnPostgres('definitions statements on both databases', 'statements_definitions', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('definitions');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      await insertRows(
        sqlite,
        pg,
        'sandboxes',
        ['id', 'name', 'created_at'],
        [
          [1, 'prod', 0],
          [2, 'staging', 0],
        ],
      );
      const audience = (id: number, sandboxId: number, state: string, labels: string[], folder: number | null) => [
        id,
        sandboxId,
        `a${id}`,
        `a${id}`,
        'segql',
        'SEGMENTATION_SERVICE',
        state,
        JSON.stringify(labels),
        folder,
        0,
        0,
      ];
      await insertRows(
        sqlite,
        pg,
        'audiences',
        [
          'id',
          'sandbox_id',
          'name',
          'name_key',
          'namespace',
          'origin',
          'lifecycle_state',
          'labels',
          'folder_id',
          'created_at',
          'updated_at',
        ],
        [
          audience(101, 1, 'PUBLISHED', ['vip', 'eu'], 5),
          audience(102, 1, 'DRAFT', [], null),
          audience(103, 1, 'PUBLISHED', ['eu'], null),
          audience(104, 1, 'INACTIVE', ['vip'], 5),
          audience(201, 2, 'PUBLISHED', ['vip'], 5),
        ],
      );
      // Sandbox, audience, name, key, description, format, value, text, eligible streaming and
      // edge, reasons, fields, batch, streaming, edge, warnings, ttl, created, updated.
      const definitions: unknown[][] = [
        [
          1,
          101,
          'Gold',
          'gold',
          'the best',
          'PQL_TEXT',
          'a > 1',
          'a > 1',
          1,
          0,
          '["x"]',
          '["a"]',
          1,
          1,
          0,
          '[]',
          30,
          1_000,
          5_000,
        ],
        [
          1,
          102,
          'bronze',
          'bronze',
          null,
          'PQL_JSON',
          '{}',
          'b = 2',
          0,
          0,
          '[]',
          '["b","xEvent.c"]',
          1,
          0,
          0,
          '["w"]',
          null,
          1_000,
          4_000,
        ],
        [
          1,
          103,
          'Silver',
          'silver',
          null,
          'PQL_TEXT',
          'true',
          'true',
          1,
          1,
          '[]',
          '[]',
          0,
          1,
          1,
          '[]',
          null,
          2_000,
          6_000,
        ],
        [
          1,
          104,
          'Ágata',
          'ágata',
          'd',
          'PQL_TEXT',
          'a = 3',
          'a = 3',
          0,
          1,
          '[]',
          '["a"]',
          1,
          0,
          1,
          '[]',
          7,
          3_000,
          4_000,
        ],
        [
          2,
          201,
          'Gold',
          'gold',
          null,
          'PQL_TEXT',
          'a > 1',
          'a > 1',
          1,
          0,
          '[]',
          '["a"]',
          1,
          0,
          0,
          '[]',
          null,
          1_000,
          1_000,
        ],
      ];
      const made: unknown[] = [];
      for (const runner of [sqlite, postgres] as StatementRunner[]) {
        const rows = [];
        for (const d of definitions) rows.push(await runner.get<{ id: number }>(q('insert'), d));
        for (const [i, row] of rows.entries()) await runner.run(q('linkAudience'), [row!.id, definitions[i]![1]]);
        await runner.run(q('insertDependencies'), [1, 1, '[103,102]']);
        await runner.run(q('insertDependencies'), [1, 2, '[103]']);
        await runner.run(q('insertDependencies'), [1, 3, '[101]']);
        const deleted = await runner.run(q('deleteDependencies'), [3]);
        // Renames definition 2 and drops its description; then a stale version changes nothing.
        const updated = await runner.get(q('update'), [
          ...set({ 0: 'Bronze', 1: 'bronze', 2: null, 12: 0 }),
          2,
          7_000,
          2,
          1,
        ]);
        const stale = await runner.get(q('update'), [...set({ 0: 'x' }), 2, 8_000, 2, 1]);
        const flags = await runner.get(q('update'), [...set({ 3: null, 7: 1, 13: 1, 14: 1 }), 2, 8_000, 1, 1]);
        made.push({ rows, deleted: deleted.changes, updated, stale, flags });
      }
      expect(made[1]).toEqual(made[0]);
      expect(made[0]).toMatchObject({
        deleted: 1,
        stale: undefined,
        updated: { id: 2, name: 'Bronze', description: null, evalBatch: 0, version: 2, updatedAt: 7_000 },
        flags: {
          id: 1,
          ttlInDays: null,
          eligibleStreaming: 1,
          evalStreaming: 1,
          evalEdge: 1,
          eligibilityReasons: '["x"]',
        },
      });

      const same = async (name: string, params: unknown[]) => {
        const rows = await sqlite.all(q(name), params);
        expect(await postgres.all(q(name), params), `${name} ${JSON.stringify(params)}`).toEqual(rows);
        return rows;
      };
      const byId = (rows: { id: number }[]) => [...rows].sort((a, b) => a.id - b.id);
      for (const params of [
        [1, '[1,2,3,4,5]'],
        [2, '[5,1]'],
        [1, '[]'],
      ]) {
        const rows = byId(await sqlite.all(q('byIds'), params));
        expect(byId(await postgres.all(q('byIds'), params))).toEqual(rows);
      }
      expect(byId(await postgres.all(q('byIds'), [1, '[1,2,3,4,5]'])).map((r) => r.id)).toEqual([1, 2, 3, 4]);
      expect(await same('dependencies', [1, '[1,2,3]'])).toEqual([
        { definitionId: 1, audienceId: 102 },
        { definitionId: 1, audienceId: 103 },
        { definitionId: 2, audienceId: 103 },
      ]);
      await same('dependencies', [1, '[]']);
      await same('dependencies', [2, '[1]']);
      expect(await same('idByName', [1, 'silver'])).toEqual([{ id: 3 }]);
      await same('idByName', [1, 'nothing']);
      expect(await same('usingField', [1, 'a'])).toEqual([{ name: 'Gold' }, { name: 'Ágata' }]);
      expect(await same('usingField', [1, 'xEvent.c'])).toEqual([{ name: 'Bronze' }]);
      await same('usingField', [2, 'b']);

      const ids = (rows: unknown[]) => (rows as { id: number }[]).map((r) => r.id);
      const all = filter(1);
      expect(ids(await same('pageNameAsc', [...all, ...NO_BOUND, ...NO_BOUND, 21]))).toEqual([2, 1, 3, 4]);
      expect(ids(await same('pageNameDesc', [...all, ...NO_BOUND, ...NO_BOUND, 21]))).toEqual([4, 3, 1, 2]);
      expect(ids(await same('pageCreatedAsc', [...all, ...NO_BOUND, ...NO_BOUND, 21]))).toEqual([1, 2, 3, 4]);
      expect(ids(await same('pageCreatedDesc', [...all, ...NO_BOUND, ...NO_BOUND, 2]))).toEqual([4, 3]);
      expect(ids(await same('pageUpdatedAsc', [...all, ...NO_BOUND, ...NO_BOUND, 21]))).toEqual([4, 3, 2, 1]);
      expect(ids(await same('pageUpdatedDesc', [...all, ...NO_BOUND, ...NO_BOUND, 21]))).toEqual([1, 2, 3, 4]);
      // Bounds: past (1000, 1) in created order, before (3000, 4); a tie on the key broken by id.
      expect(ids(await same('pageCreatedAsc', [...all, ...bound(1_000, 1), ...bound(3_000, 4), 21]))).toEqual([2, 3]);
      expect(ids(await same('pageCreatedDesc', [...all, ...bound(1_000, 1), ...NO_BOUND, 21]))).toEqual([4, 3, 2]);
      expect(ids(await same('pageNameAsc', [...all, ...bound('gold', 1), ...NO_BOUND, 21]))).toEqual([3, 4]);
      expect(ids(await same('pageNameDesc', [...all, ...NO_BOUND, ...bound('silver', 3), 21]))).toEqual([1, 2]);
      expect(ids(await same('pageUpdatedAsc', [...all, ...bound(4_000, 4), ...bound(8_000, 1), 21]))).toEqual([3, 2]);
      // Filters, each alone.
      for (const [f, expected] of [
        [{ name: 'ol' }, [1]],
        [{ name: 'á' }, [4]],
        [{ updatedAfter: 5_000 }, [1, 2, 3]],
        [{ method: 'BATCH' }, [1, 4]],
        [{ method: 'STREAMING' }, [1, 3]],
        [{ method: 'EDGE' }, [1, 3, 4]],
        [{ state: 'PUBLISHED' }, [1, 3]],
        [{ label: 'vip' }, [1, 4]],
        [{ label: 'none' }, []],
        [{ folder: 5 }, [1, 4]],
        [{ state: 'PUBLISHED', label: 'eu', folder: 5, method: 'BATCH', name: 'g', updatedAfter: 0 }, [1]],
      ] as const) {
        const params = filter(1, f);
        expect(ids(await same('pageCreatedAsc', [...params, ...NO_BOUND, ...NO_BOUND, 21])), JSON.stringify(f)).toEqual(
          expected,
        );
        expect(await same('count', params)).toEqual([{ n: expected.length }]);
      }
      expect(await same('count', filter(2))).toEqual([{ n: 1 }]);
      expect(await same('count', filter(3))).toEqual([{ n: 0 }]);
    } finally {
      sqlite.close();
    }
  });
});
