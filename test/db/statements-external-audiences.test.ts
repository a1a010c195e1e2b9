/**
 * Statements by name, external audiences (src/domain/external-audiences/external-audiences.ts):
 * both texts insert, update and read the same external audiences, by id, by audience, by
 * externalId and by name, and find the same active ingestion run. Runs when
 * SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/external-audiences/external-audiences.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

describeOnPostgres('external audiences statements on PostgreSQL', 'statements_external_audiences', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('external-audiences');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const insert = (table: string, columns: string[], rows: unknown[][]) =>
        insertRows(sqlite, pg, table, columns, rows);
      await insert(
        'sandboxes',
        ['id', 'name', 'created_at'],
        [
          [1, 'prod', 0],
          [2, 'dev', 0],
        ],
      );
      const audience = (id: number, sandboxId: number, name: string) => [
        id,
        sandboxId,
        name,
        name.toLowerCase(),
        'crm',
        'CUSTOM_UPLOAD',
        'PUBLISHED',
        1,
        1,
      ];
      await insert(
        'audiences',
        ['id', 'sandbox_id', 'name', 'name_key', 'namespace', 'origin', 'lifecycle_state', 'created_at', 'updated_at'],
        [audience(1, 1, 'Buyers'), audience(2, 1, 'list-b'), audience(3, 1, 'Third'), audience(4, 2, 'Buyers')],
      );
      const fields = (n: number) =>
        JSON.stringify([
          { name: 'email', type: 'STRING', identityNamespace: 'email' },
          ...Array.from({ length: n }, (_, i) => ({ name: `f${i}`, type: 'NUMBER', identityNamespace: null })),
        ]);
      const inserted: unknown[] = [];
      for (const runner of [sqlite, postgres]) {
        // Audience 2's externalId is audience 1's name: a name and an externalId both match "buyers".
        for (const [audienceId, sandboxId, externalId, n] of [
          [1, 1, null, 0],
          [2, 1, 'buyers', 2],
          [3, 1, 'ext-3', 1],
          [4, 2, 'buyers', 0],
        ] as const)
          inserted.push(
            await runner.get(q('insert'), [
              sandboxId,
              audienceId,
              externalId,
              fields(n),
              'email',
              'email',
              30,
              100,
              100,
            ]),
          );
      }
      expect(inserted.slice(4)).toEqual(inserted.slice(0, 4));
      expect(inserted.slice(0, 4)).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }]);
      for (const runner of [sqlite, postgres]) {
        expect(await runner.run(q('update'), [60, 'ext-3b', 200, 3])).toEqual({ changes: 1 });
        expect(await runner.run(q('update'), [60, null, 200, 99])).toEqual({ changes: 0 });
      }

      const same = async (key: string, params: unknown[]) => {
        const rows = await sqlite.all<Record<string, unknown>>(q(key), params);
        expect(await postgres.all(q(key), params), `${key} ${JSON.stringify(params)}`).toEqual(rows);
        return rows;
      };
      const ids = (rows: Record<string, unknown>[]) => rows.map((r) => r.id);
      const byIds = await same('byIds', [1, JSON.stringify([1, 3, 4, 9])]);
      expect(byIds).toEqual([
        {
          id: 1,
          sandboxId: 1,
          audienceId: 1,
          externalId: null,
          fields: fields(0),
          identityField: 'email',
          identityNamespace: 'email',
          ttlInDays: 30,
          version: 1,
          createdAt: 100,
          updatedAt: 100,
        },
        expect.objectContaining({ id: 3, externalId: 'ext-3b', ttlInDays: 60, version: 2, updatedAt: 200 }),
      ]);
      expect(JSON.parse((byIds[1] as { fields: string }).fields)).toHaveLength(2);
      expect(await same('byIds', [1, JSON.stringify([])])).toEqual([]);
      expect(ids(await same('ofAudience', [1, 2]))).toEqual([2]);
      expect(await same('ofAudience', [2, 2])).toEqual([]);
      // The externalId first, then the name; the lowest id among equals; a null externalId last.
      const find = (ref: string) => same('find', [1, ref, ref.toLowerCase(), ref]);
      expect(ids(await find('buyers'))).toEqual([2]);
      expect(ids(await find('Buyers'))).toEqual([1]);
      expect(ids(await find('THIRD'))).toEqual([3]);
      expect(ids(await find('ext-3b'))).toEqual([3]);
      expect(await find('nobody')).toEqual([]);
      expect(await same('byExternalId', [1, 'buyers'])).toEqual([{ id: 2 }]);
      expect(await same('byExternalId', [2, 'buyers'])).toEqual([{ id: 4 }]);
      expect(await same('byExternalId', [1, 'ext-3'])).toEqual([]);

      const job = (id: number, sandboxId: number, status: string, input: object) => [
        id,
        sandboxId,
        'INGESTION',
        status,
        JSON.stringify(input),
        1,
        1,
      ];
      await insert(
        'jobs',
        ['id', 'sandbox_id', 'kind', 'status', 'input', 'created_at', 'updated_at'],
        [
          job(1, 1, 'SUCCEEDED', { externalAudienceId: 1 }),
          job(2, 1, 'PROCESSING', { externalAudienceId: 2 }),
          job(3, 1, 'QUEUED', { externalAudienceId: 3 }),
          job(4, 2, 'QUEUED', { externalAudienceId: 1 }),
        ],
      );
      expect(await same('activeRun', [1, 1])).toEqual([]);
      expect(await same('activeRun', [1, 2])).toEqual([{ id: 2 }]);
      expect(await same('activeRun', [1, 3])).toEqual([{ id: 3 }]);
      expect(await same('activeRun', [2, 1])).toEqual([{ id: 4 }]);
    } finally {
      sqlite.close();
    }
  });
});
