/**
 * The PQL checker's reads (src/domain/expressions.ts) and the explanation's transition version
 * (src/domain/explain-membership.ts): both texts find the same audiences by id, external id and
 * name (this service's own first), the same inSegment dependencies, and the same version. Runs
 * when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/explain-membership.js';
import '../../src/domain/expressions.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

describeOnPostgres('expressions statements on both databases', 'statements_expressions', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('expressions');
    const explain = statementsOf('explain-membership');
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
          [2, 'staging', 0],
        ],
      );
      const audience = (
        id: number,
        sandboxId: number,
        name: string,
        namespace: string,
        definitionId: number | null,
      ) => [
        id,
        sandboxId,
        name,
        name.toLowerCase(),
        namespace,
        'SEGMENTATION_SERVICE',
        'PUBLISHED',
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
          // Two audiences named "Buyers": the CRM's (older) and this service's, which a name finds.
          audience(10, 1, 'Buyers', 'crm', null),
          audience(11, 1, 'Buyers', 'segql', 1),
          audience(12, 1, 'Fans', 'segql', 2),
          audience(13, 1, 'List', 'ext', null),
          audience(20, 2, 'Buyers', 'segql', 3),
        ],
      );
      await insert(
        'external_audiences',
        [
          'audience_id',
          'sandbox_id',
          'external_id',
          'fields',
          'identity_field',
          'identity_namespace',
          'ttl_in_days',
          'created_at',
          'updated_at',
        ],
        [
          [
            13,
            1,
            'ext-13',
            '[{"name":"email","type":"string"},{"name":"score","type":"number"}]',
            'email',
            'email',
            30,
            0,
            0,
          ],
        ],
      );
      await insert(
        'definition_dependencies',
        ['sandbox_id', 'definition_id', 'audience_id'],
        [
          [1, 1, 13],
          [1, 1, 12],
          [1, 2, 13],
        ],
      );
      await insert(
        'membership_history',
        [
          'id',
          'sandbox_id',
          'profile_id',
          'audience_id',
          'at',
          'from_status',
          'to_status',
          'cause',
          'definition_version',
        ],
        [
          [1, 1, 7, 11, 5_000, null, 'REALIZED', 'job:1', 2],
          [2, 1, 7, 11, 5_000, 'REALIZED', 'EXITED', 'job:2', 3],
          [3, 1, 7, 11, 5_000, 'EXITED', 'REALIZED', 'manual', null],
          [4, 1, 7, 11, 6_000, null, 'REALIZED', 'manual', null],
          [5, 1, 8, 11, 5_000, null, 'REALIZED', 'job:1', 1],
        ],
      );
      const same = async (name: string, params: unknown[], statement = q(name)) => {
        const rows = await sqlite.all(statement, params);
        expect(await postgres.all(statement, params), `${name} ${JSON.stringify(params)}`).toEqual(rows);
        return rows;
      };
      expect(await same('audienceById', [1, 11])).toEqual([
        { id: 11, name: 'Buyers', fields: null, identityField: null },
      ]);
      expect(await same('audienceById', [1, 13])).toEqual([
        {
          id: 13,
          name: 'List',
          fields: '[{"name":"email","type":"string"},{"name":"score","type":"number"}]',
          identityField: 'email',
        },
      ]);
      expect(await same('audienceById', [2, 11])).toEqual([]);
      expect(await same('audienceByExternalId', [1, 'ext-13'])).toEqual([
        expect.objectContaining({ id: 13, identityField: 'email' }),
      ]);
      expect(await same('audienceByExternalId', [2, 'ext-13'])).toEqual([]);
      expect(await same('audienceByName', [1, 'buyers'])).toEqual([
        { id: 11, name: 'Buyers', fields: null, identityField: null },
      ]);
      expect(await same('audienceByName', [2, 'buyers'])).toEqual([
        { id: 20, name: 'Buyers', fields: null, identityField: null },
      ]);
      expect(await same('audienceByName', [1, 'nobody'])).toEqual([]);
      expect(await same('audienceDependencies', [1, 11])).toEqual([{ audienceId: 12 }, { audienceId: 13 }]);
      expect(await same('audienceDependencies', [1, 13])).toEqual([]);
      expect(await same('audienceDependencies', [2, 11])).toEqual([]);
      const version = explain('transitionVersion');
      expect(await same('transitionVersion', [1, 7, 11, 5_000], version)).toEqual([{ version: 3 }]);
      expect(await same('transitionVersion', [1, 7, 11, 6_000], version)).toEqual([]);
      expect(await same('transitionVersion', [1, 8, 11, 5_000], version)).toEqual([{ version: 1 }]);
      expect(await same('transitionVersion', [2, 7, 11, 5_000], version)).toEqual([]);
    } finally {
      sqlite.close();
    }
  });
});
