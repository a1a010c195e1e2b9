/**
 * Statements by name, pending members (src/domain/external-audiences/pending-members.ts): both
 * texts find the same list rows for a batch of identities (archived audiences left out, in the
 * identities' order then audience order, the payload as JSON text, the profile's membership
 * status there), and set the same payloads. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL
 * server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/external-audiences/pending-members.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

describeOnPostgres('pending members statements on PostgreSQL', 'statements_pending_members', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('pending-members');
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
      const audience = (id: number, state: string) => [id, 1, `a${id}`, `a${id}`, 'crm', 'CUSTOM_UPLOAD', state, 1, 1];
      await insert(
        'audiences',
        ['id', 'sandbox_id', 'name', 'name_key', 'namespace', 'origin', 'lifecycle_state', 'created_at', 'updated_at'],
        [audience(3, 'PUBLISHED'), audience(1, 'DRAFT'), audience(2, 'ARCHIVED')],
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
          [1, 1, 3, '[]', 'email', 'email', 30, 1, 1],
          [2, 1, 1, '[]', 'email', 'email', 7, 1, 1],
          [3, 1, 2, '[]', 'email', 'email', 30, 1, 1],
        ],
      );
      await insert(
        'external_members',
        ['sandbox_id', 'audience_id', 'namespace', 'value', 'payload', 'imported_at'],
        [
          [1, 3, 'email', 'a@x', JSON.stringify({ tier: 'gold', score: 1.5, ok: true, at: null }), 500],
          [1, 1, 'email', 'a@x', JSON.stringify({}), 600],
          [1, 2, 'email', 'a@x', JSON.stringify({ tier: 'old' }), 700],
          [1, 3, 'email', 'b@x', JSON.stringify({ tier: 'silver' }), 800],
        ],
      );
      await insert(
        'memberships',
        ['sandbox_id', 'audience_id', 'profile_id', 'status', 'last_evaluated_at'],
        [
          [1, 3, 10, 'EXITED', 1],
          [1, 1, 10, 'REALIZED', 1],
        ],
      );
      const parsed = (rows: Record<string, unknown>[]) =>
        rows.map((r) => (typeof r.payload === 'string' ? { ...r, payload: JSON.parse(r.payload) } : r));
      const same = async (key: string, params: unknown[]) => {
        const rows = parsed(await sqlite.all(q(key), params));
        expect(parsed(await postgres.all(q(key), params)), `${key} ${JSON.stringify(params)}`).toEqual(rows);
        return rows;
      };
      expect(await same('any', [1])).toEqual([{ found: 1 }]);
      expect(await same('any', [2])).toEqual([]);
      const identities = (...list: [string, string, number][]) => JSON.stringify(list);
      expect(await same('rows', [identities(['email', 'a@x', 10]), 1])).toEqual([
        { idx: 0, audienceId: 1, payload: {}, importedAt: 600, ttl: 7, status: 'REALIZED' },
        {
          idx: 0,
          audienceId: 3,
          payload: { tier: 'gold', score: 1.5, ok: true, at: null },
          importedAt: 500,
          ttl: 30,
          status: 'EXITED',
        },
      ]);
      // Several identities at once, in their order; one no list names, one of another profile.
      expect(
        await same('rows', [identities(['email', 'b@x', 11], ['email', 'nobody', 10], ['email', 'a@x', 12]), 1]),
      ).toEqual([
        { idx: 0, audienceId: 3, payload: { tier: 'silver' }, importedAt: 800, ttl: 30, status: null },
        { idx: 2, audienceId: 1, payload: {}, importedAt: 600, ttl: 7, status: null },
        {
          idx: 2,
          audienceId: 3,
          payload: { tier: 'gold', score: 1.5, ok: true, at: null },
          importedAt: 500,
          ttl: 30,
          status: null,
        },
      ]);
      expect(await same('rows', [identities(['crm', 'a@x', 10]), 1])).toEqual([]);
      expect(await same('rows', [identities(['email', 'a@x', 10]), 2])).toEqual([]);
      const payload = JSON.stringify({ tier: 'gold', score: 1.5 });
      for (const runner of [sqlite, postgres]) {
        expect(await runner.run(q('payloads'), [JSON.stringify([[3, 10, payload]])])).toEqual({ changes: 1 });
        expect(await runner.run(q('payloads'), [JSON.stringify([[2, 10, payload]])])).toEqual({ changes: 0 });
      }
      const stored = sqlite.sqlite
        .prepare('SELECT payload FROM memberships WHERE audience_id = 3 AND profile_id = 10')
        .get() as { payload: string };
      const storedPg = await pg.conn.pool.query(
        'SELECT CAST(payload AS text) AS payload FROM memberships WHERE audience_id = 3 AND profile_id = 10',
      );
      expect(JSON.parse(storedPg.rows[0].payload)).toEqual(JSON.parse(stored.payload));
      expect(JSON.parse(stored.payload)).toEqual({ tier: 'gold', score: 1.5 });
    } finally {
      sqlite.close();
    }
  });
});
