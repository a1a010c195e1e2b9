/**
 * Statements by name, audiences (src/domain/audiences.ts): both texts read, insert, update and
 * delete audiences alike, page them in each order with each filter on and off (names in byte
 * order, labels as JSON text, the definition's evaluation flags), count them, and recount a size.
 * Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import type { StatementRunner } from '../../src/db/statement.js';
import '../../src/domain/audiences.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

/** The filters' params as audiences.ts's filterParams gives them (each value twice). */
function filters(sandboxId: number, f: Record<string, unknown> = {}): unknown[] {
  const keys = ['nameContains', 'namespace', 'origin', 'lifecycleState', 'label', 'folderId', 'method', 'updatedAfter'];
  return [sandboxId, ...keys.flatMap((k) => [f[k] ?? null, f[k] ?? null])];
}
const off = [null, null, null];

describeOnPostgres('audiences statements on PostgreSQL', 'statements_audiences', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('audiences');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const both = async <T>(f: (runner: StatementRunner) => Promise<T>) =>
        [await f(sqlite), await f(postgres)] as const;
      const definitions = [
        [1, 1, 10, 'd-batch', 'd-batch', 1, 0, 0],
        [2, 1, 11, 'd-stream', 'd-stream', 0, 1, 0],
        [3, 1, 12, 'd-edge', 'd-edge', 1, 0, 1],
      ];
      const definitionColumns = [
        'id',
        'sandbox_id',
        'audience_id',
        'name',
        'name_key',
        'eval_batch',
        'eval_streaming',
        'eval_edge',
        'eligible_streaming',
        'eligible_edge',
        'expression_format',
        'expression_value',
        'expression_text',
        'created_at',
        'updated_at',
      ];
      const rest = ['PQL_TEXT', 'true', 'true', 0, 0];
      await insertRows(
        sqlite,
        pg,
        'segment_definitions',
        definitionColumns,
        definitions.map((d) => [...d, 0, 0, ...rest]),
        definitions.map((d) => [...d.slice(0, 5), ...d.slice(5).map(Boolean), false, false, ...rest]),
      );
      const audienceColumns = [
        'id',
        'sandbox_id',
        'name',
        'name_key',
        'namespace',
        'description',
        'origin',
        'lifecycle_state',
        'labels',
        'folder_id',
        'definition_id',
        'size',
        'version',
        'last_evaluated_at',
        'created_at',
        'updated_at',
      ];
      // Names whose byte order differs from a linguistic one: "_", upper case, "é", a space.
      await insertRows(sqlite, pg, 'audiences', audienceColumns, [
        [
          10,
          1,
          'Zeta',
          'zeta',
          'segql',
          null,
          'SEGMENTATION_SERVICE',
          'PUBLISHED',
          '["vip","eu"]',
          null,
          1,
          5,
          1,
          900,
          100,
          400,
        ],
        [
          11,
          1,
          'émile',
          'émile',
          'segql',
          'accents',
          'SEGMENTATION_SERVICE',
          'DRAFT',
          '[]',
          7,
          2,
          5,
          2,
          null,
          200,
          300,
        ],
        [
          12,
          1,
          '_under',
          '_under',
          'crm',
          null,
          'SEGMENTATION_SERVICE',
          'INACTIVE',
          '["eu"]',
          7,
          3,
          0,
          1,
          null,
          300,
          300,
        ],
        [13, 1, 'b 2', 'b 2', 'segql', null, 'MANUAL', 'DRAFT', '["vip"]', null, null, 9, 3, 1000, 300, 200],
        [14, 1, 'B2', 'b2', 'segql', null, 'CUSTOM_UPLOAD', 'ARCHIVED', '[]', null, null, 5, 1, null, 500, 100],
        [15, 2, 'other', 'other', 'segql', null, 'MANUAL', 'DRAFT', '["vip"]', null, null, 1, 1, null, 50, 50],
      ]);

      const byIds = await both((r) => r.all(q('byIds'), [1, JSON.stringify([10, 11, 15, 99])]));
      expect(byIds[1]).toEqual(byIds[0]);
      expect((byIds[0] as { id: number }[]).map((a) => a.id).sort()).toEqual([10, 11]);
      expect((byIds[0] as object[]).find((a) => (a as { id: number }).id === 10)).toEqual({
        id: 10,
        sandboxId: 1,
        name: 'Zeta',
        nameKey: 'zeta',
        namespace: 'segql',
        description: null,
        origin: 'SEGMENTATION_SERVICE',
        lifecycleState: 'PUBLISHED',
        labels: '["vip","eu"]',
        folderId: null,
        definitionId: 1,
        size: 5,
        version: 1,
        lastEvaluatedAt: 900,
        createdAt: 100,
        updatedAt: 400,
      });
      const empty = await both((r) => r.all(q('byIds'), [1, '[]']));
      expect(empty).toEqual([[], []]);

      const byName = await both(async (r) => [
        await r.get(q('idByName'), [1, 'segql', 'zeta']),
        await r.get(q('idByName'), [1, 'crm', 'zeta']),
      ]);
      expect(byName[1]).toEqual(byName[0]);
      expect(byName[0]).toEqual([{ id: 10 }, undefined]);

      // Every order both ways, with no bound, each bound, and both.
      const ids = (rows: unknown) => (rows as { id: number }[]).map((a) => a.id);
      const pages = ['Name', 'Created', 'Updated', 'Size'].flatMap((f) => [`page${f}Up`, `page${f}Down`]);
      for (const key of pages) {
        const runs = await both(async (r) => [
          ids(await r.all(q(key), [...filters(1), ...off, ...off, 10])),
          ids(await r.all(q(key), [...filters(1), ...off, ...off, 2])),
        ]);
        expect(runs[1], key).toEqual(runs[0]);
      }
      const name = await both(async (r) => [
        ids(await r.all(q('pageNameUp'), [...filters(1), ...off, ...off, 10])),
        ids(await r.all(q('pageNameDown'), [...filters(1), ...off, ...off, 10])),
        ids(await r.all(q('pageNameUp'), [...filters(1), 'b 2', 'b 2', 13, ...off, 10])),
        ids(await r.all(q('pageNameUp'), [...filters(1), 'b 2', 'b 2', 13, 'zeta', 'zeta', 10, 10])),
        ids(await r.all(q('pageNameDown'), [...filters(1), ...off, 'zeta', 'zeta', 10, 2])),
      ]);
      expect(name[1]).toEqual(name[0]);
      expect(name[0]).toEqual([[12, 13, 14, 10, 11], [11, 10, 14, 13, 12], [14, 10, 11], [14], [14, 13]]);
      // Ties on the sort value go by id: sizes 5, 5, 5 (ids 10, 11, 14).
      const size = await both(async (r) => [
        ids(await r.all(q('pageSizeUp'), [...filters(1), ...off, ...off, 10])),
        ids(await r.all(q('pageSizeUp'), [...filters(1), 5, 5, 10, ...off, 10])),
        ids(await r.all(q('pageSizeDown'), [...filters(1), ...off, 5, 5, 14, 10])),
        ids(await r.all(q('pageCreatedUp'), [...filters(1), 300, 300, 12, 500, 500, 14, 10])),
        ids(await r.all(q('pageUpdatedDown'), [...filters(1), ...off, ...off, 10])),
      ]);
      expect(size[1]).toEqual(size[0]);
      expect(size[0]).toEqual([[12, 10, 11, 14, 13], [11, 14, 13], [11, 10, 12], [13], [10, 12, 11, 13, 14]]);

      // Each filter on its own, then several; the count agrees with the page.
      const cases: [Record<string, unknown>, number[]][] = [
        [{ nameContains: 'b' }, [13, 14]],
        [{ nameContains: 'é' }, [11]],
        [{ namespace: 'crm' }, [12]],
        [{ origin: 'MANUAL' }, [13]],
        [{ lifecycleState: 'DRAFT' }, [11, 13]],
        [{ label: 'vip' }, [10, 13]],
        [{ label: 'none' }, []],
        [{ folderId: 7 }, [11, 12]],
        [{ method: 'BATCH' }, [10, 12]],
        [{ method: 'STREAMING' }, [11]],
        [{ method: 'EDGE' }, [12]],
        [{ updatedAfter: 250 }, [10, 11, 12]],
        [{ label: 'eu', updatedAfter: 300, origin: 'SEGMENTATION_SERVICE' }, [10]],
      ];
      for (const [f, expected] of cases) {
        const got = await both(async (r) => [
          ids(await r.all(q('pageCreatedUp'), [...filters(1, f), ...off, ...off, 10])).sort(),
          ((await r.get(q('count'), filters(1, f))) as { n: number }).n,
        ]);
        expect(got[1], JSON.stringify(f)).toEqual(got[0]);
        expect(got[0], JSON.stringify(f)).toEqual([expected, expected.length]);
      }

      const deps = [
        [1, 1, 10],
        [1, 2, 10],
        [1, 3, 11],
      ];
      await insertRows(sqlite, pg, 'definition_dependencies', ['sandbox_id', 'definition_id', 'audience_id'], deps);
      const dependents = await both(async (r) => [
        await r.all(q('dependents'), [1, JSON.stringify([10, 11, 12])]),
        await r.all(q('dependents'), [1, '[]']),
        await r.all(q('definitionNames'), [JSON.stringify([3, 1])]),
      ]);
      expect(dependents[1]).toEqual(dependents[0]);
      expect(dependents[0]).toEqual([
        [
          { audienceId: 10, definitionId: 1 },
          { audienceId: 10, definitionId: 2 },
          { audienceId: 11, definitionId: 3 },
        ],
        [],
        [
          { id: 1, name: 'd-batch' },
          { id: 3, name: 'd-edge' },
        ],
      ]);

      // Rows inserted with their ids leave PostgreSQL's sequence behind; SQLite takes max(id) + 1.
      await pg.conn.pool.query("SELECT setval(pg_get_serial_sequence('audiences', 'id'), 15)");
      const written = await both(async (r) => [
        await r.get(q('insert'), [1, 'New', 'new', 'segql', null, 'MANUAL', 'DRAFT', '["a"]', null, null, 700, 700]),
        await r.get(q('update'), ['Zed', 'zed', 'd', 'INACTIVE', '[]', 3, 2, 800, 10, 1]),
        // At another version: nothing changes.
        await r.get(q('update'), ['Zed', 'zed', 'd', 'INACTIVE', '[]', 3, 2, 800, 11, 1]),
      ]);
      expect(written[1]).toEqual(written[0]);
      expect(written[0][0]).toMatchObject({
        id: 16,
        name: 'New',
        labels: '["a"]',
        size: 0,
        version: 1,
        folderId: null,
      });
      expect(written[0][1]).toMatchObject({
        id: 10,
        name: 'Zed',
        nameKey: 'zed',
        version: 2,
        folderId: 3,
        updatedAt: 800,
      });
      expect(written[0][2]).toBeUndefined();

      const membershipColumns = ['sandbox_id', 'audience_id', 'profile_id', 'status', 'last_evaluated_at'];
      await insertRows(sqlite, pg, 'memberships', membershipColumns, [
        [1, 10, 1, 'REALIZED', 0],
        [1, 10, 2, 'EXISTING', 0],
        [1, 10, 3, 'EXITED', 0],
        [1, 11, 1, 'REALIZED', 0],
      ]);
      await insertRows(
        sqlite,
        pg,
        'membership_history',
        ['sandbox_id', 'profile_id', 'audience_id', 'at', 'to_status', 'cause'],
        [
          [1, 1, 10, 1, 'REALIZED', 'manual'],
          [1, 1, 11, 1, 'REALIZED', 'manual'],
        ],
      );
      const sizes = await both(async (r) => {
        await r.run(q('refreshSize'), [10, 10]);
        await r.run(q('refreshSize'), [12, 12]);
        return r.all(q('byIds'), [1, JSON.stringify([10, 12])]);
      });
      expect(sizes[1]).toEqual(sizes[0]);
      expect((sizes[0] as { id: number; size: number }[]).map((a) => [a.id, a.size]).sort()).toEqual([
        [10, 2],
        [12, 0],
      ]);

      const deleted = await both(async (r) => [
        await r.run(q('deleteExternalMembers'), [10]),
        await r.run(q('deleteExternalAudience'), [10]),
        await r.run(q('deleteMemberships'), [1, 10]),
        await r.run(q('deleteMembershipHistory'), [1, 10]),
        await r.run(q('deleteSizeHistory'), [1, 10]),
        await r.run(q('delete'), [1, 10]),
        await r.run(q('delete'), [2, 11]),
        await r.run(q('deleteDefinitionDependencies'), [1]),
        await r.run(q('deleteDefinitionVersions'), [1]),
        await r.run(q('deleteDefinition'), [1]),
      ]);
      expect(deleted[1]).toEqual(deleted[0]);
      expect(deleted[0].map((d) => d.changes)).toEqual([0, 0, 3, 1, 0, 1, 0, 1, 0, 1]);
    } finally {
      sqlite.close();
    }
  });
});
