/**
 * Statements by name, member expiry (src/domain/external-audiences/member-expiry.ts): both texts
 * list the same audiences and TTLs, find the same expired rows and the same members to exit (stale
 * on every row, still current), and forget the same rows. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/external-audiences/member-expiry.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

describeOnPostgres('member expiry statements on PostgreSQL', 'statements_member_expiry', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('member-expiry');
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
      await insert(
        'external_audiences',
        [
          'id',
          'sandbox_id',
          'audience_id',
          'fields',
          'identity_field',
          'identity_namespace',
          'ttl_in_days',
          'created_at',
          'updated_at',
        ],
        [
          [1, 1, 5, '[]', 'email', 'email', 30, 1, 1],
          [2, 2, 4, '[]', 'id', 'crm', 7, 1, 1],
        ],
      );
      // Profile 10 is listed by two emails, one fresh; profile 11 by one stale email; 12 by a crm id.
      await insert(
        'identities',
        ['sandbox_id', 'namespace', 'value', 'profile_id', 'created_at'],
        [
          [1, 'email', 'a@x', 10, 0],
          [1, 'email', 'a2@x', 10, 0],
          [1, 'email', 'b@x', 11, 0],
          [1, 'crm', 'a@x', 12, 0],
          [2, 'crm', 'c', 13, 0],
        ],
      );
      await insert(
        'external_members',
        ['sandbox_id', 'audience_id', 'namespace', 'value', 'payload', 'imported_at'],
        [
          [1, 5, 'email', 'b@x', '{}', 100],
          [1, 5, 'email', 'a@x', '{}', 100],
          [1, 5, 'email', 'a2@x', '{}', 900],
          [1, 5, 'email', 'nobody@x', '{}', 100],
          [2, 4, 'crm', 'c', '{}', 950],
        ],
      );
      await insert(
        'memberships',
        ['sandbox_id', 'audience_id', 'profile_id', 'status', 'last_evaluated_at'],
        [
          [1, 5, 10, 'REALIZED', 1],
          [1, 5, 11, 'EXISTING', 1],
        ],
      );
      const same = async (key: string, params: unknown[]) => {
        const rows = await sqlite.all<Record<string, unknown>>(q(key), params);
        expect(await postgres.all(q(key), params), `${key} ${JSON.stringify(params)}`).toEqual(rows);
        return rows;
      };
      expect(await same('audiences', [])).toEqual([
        { sandboxId: 2, audienceId: 4, namespace: 'crm', ttl: 7 },
        { sandboxId: 1, audienceId: 5, namespace: 'email', ttl: 30 },
      ]);
      expect(await same('anyExpired', [5, 100])).toEqual([{ found: 1 }]);
      expect(await same('anyExpired', [5, 99])).toEqual([]);
      expect(await same('anyExpired', [4, 900])).toEqual([]);
      const expiring = (cutoff: number) => same('expiring', [5, cutoff, 5, 5, 'email', cutoff]);
      // Profile 10 still has a fresh row at 500; at 1000 every row of both is stale.
      expect(await expiring(500)).toEqual([{ profileId: 11, status: 'EXISTING' }]);
      expect(await expiring(1000)).toEqual([
        { profileId: 10, status: 'REALIZED' },
        { profileId: 11, status: 'EXISTING' },
      ]);
      expect(await expiring(50)).toEqual([]);
      for (const runner of [sqlite, postgres]) {
        expect(await runner.run(q('forget'), [5, 500])).toEqual({ changes: 3 });
        expect(await runner.run(q('forget'), [5, 500])).toEqual({ changes: 0 });
      }
      expect(await expiring(1000)).toEqual([{ profileId: 10, status: 'REALIZED' }]);
      // A profile no longer a current member is not exited again.
      sqlite.sqlite.prepare("UPDATE memberships SET status = 'EXITED' WHERE profile_id = 10").run();
      await pg.conn.pool.query("UPDATE memberships SET status = 'EXITED' WHERE profile_id = 10");
      expect(await expiring(1000)).toEqual([]);
    } finally {
      sqlite.close();
    }
  });
});
