/**
 * Statements by name, profiles (src/domain/profiles.ts): both texts give the same profiles,
 * events and identities, by id, by identity and by page with each filter on and off, the same
 * kept count and id range, and delete the same rows. Runs when SEGQL_TEST_DATABASE_URL names a
 * PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/profiles.js';
import { describeOnPostgres, statementsOf } from './statements-harness.js';

describeOnPostgres('profiles statements on PostgreSQL', 'statements_profiles', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('profiles');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      /** Rows into both databases; `json` names the columns written as JSON (JSONB blob, jsonb). */
      const insert = async (table: string, columns: string[], rows: unknown[][], json: string[] = []) => {
        const names = columns.join(', ');
        const lite = columns.map((c) => (json.includes(c) ? 'jsonb(?)' : '?')).join(', ');
        const pgv = columns.map((c, i) => (json.includes(c) ? `CAST($${i + 1} AS jsonb)` : `$${i + 1}`)).join(', ');
        for (const row of rows) {
          sqlite.sqlite.prepare(`INSERT INTO ${table} (${names}) VALUES (${lite})`).run(...row);
          await pg.conn.pool.query(`INSERT INTO ${table} (${names}) VALUES (${pgv})`, row);
        }
      };
      await insert(
        'sandboxes',
        ['id', 'name', 'created_at'],
        [
          [1, 'prod', 0],
          [2, 'dev', 0],
        ],
      );
      await insert(
        'profiles',
        ['id', 'sandbox_id', 'attributes', 'created_at', 'updated_at'],
        [
          [1, 1, JSON.stringify({ name: 'Ann', tags: ['a'] }), 10, 100],
          [2, 1, JSON.stringify({}), 20, 200],
          [3, 1, JSON.stringify({ n: 1.5 }), 30, 300],
          [4, 2, JSON.stringify({ other: true }), 40, 400],
        ],
        ['attributes'],
      );
      await insert(
        'identities',
        ['sandbox_id', 'namespace', 'value', 'profile_id', 'created_at'],
        [
          [1, 'email', 'ann@x', 1, 0],
          [1, 'Email', 'Ann@x', 1, 0],
          [1, 'crm', 'b', 2, 0],
          [1, 'email', 'c@x', 3, 0],
          [2, 'email', 'ann@x', 4, 0],
        ],
      );
      await insert(
        'events',
        ['id', 'sandbox_id', 'profile_id', 'ts', 'event_type', 'event_id', 'payload', 'ingested_at'],
        [
          [1, 1, 1, 1_000, 'web.pageViews', 'e1', JSON.stringify({ url: '/' }), 50],
          [2, 1, 1, 2_000, 'commerce.purchases', 'e2', JSON.stringify({ total: 9.5 }), 50],
          [3, 1, 1, 2_000, 'web.pageViews', 'e3', JSON.stringify({}), 60],
          [4, 1, 1, 3_000, 'web.pageViews', 'e4', JSON.stringify({ url: '/b' }), 60],
          // Profile 2's row is at 200; an event ingested later makes it changed at 250.
          [5, 1, 2, 1_500, 'web.pageViews', 'e5', JSON.stringify({}), 250],
          [6, 2, 4, 1_500, 'web.pageViews', 'e6', JSON.stringify({}), 0],
        ],
        ['payload'],
      );
      // JSON comes back as text on both, spaced differently: compared as the code reads it, parsed.
      const parsed = (rows: Record<string, unknown>[]) =>
        rows.map((r) => ({
          ...r,
          ...(typeof r.attributes === 'string' ? { attributes: JSON.parse(r.attributes) } : {}),
          ...(typeof r.payload === 'string' ? { payload: JSON.parse(r.payload) } : {}),
        }));
      const same = async (key: string, params: unknown[]) => {
        const rows = parsed(await sqlite.all(q(key), params));
        expect(parsed(await postgres.all(q(key), params)), `${key} ${JSON.stringify(params)}`).toEqual(rows);
        return rows;
      };
      const ids = (rows: Record<string, unknown>[]) => rows.map((r) => r.id);
      expect(await same('byIds', [1, JSON.stringify([1, 3, 4, 9])])).toEqual([
        { id: 1, sandboxId: 1, attributes: { name: 'Ann', tags: ['a'] }, createdAt: 10, updatedAt: 100 },
        expect.objectContaining({ id: 3 }),
      ]);
      expect(await same('idByIdentity', [1, 'email', 'ann@x'])).toEqual([{ profileId: 1 }]);
      await same('idByIdentity', [1, 'email', 'nobody']);
      expect(ids(await same('eventsByIds', [1, JSON.stringify([2, 6, 4])]))).toHaveLength(2);
      expect(await same('identitiesOf', [1, JSON.stringify([1, 2, 4])])).toEqual([
        { profileId: 1, namespace: 'Email', id: 'Ann@x' },
        { profileId: 1, namespace: 'email', id: 'ann@x' },
        { profileId: 2, namespace: 'crm', id: 'b' },
      ]);

      // listProfiles: sandbox, namespace, value, namespace twice, value twice, updated after twice,
      // sandbox and updated after again (for the events ingested since).
      const profileFilter = (ns: string | null, value: string | null, updated: number | null) => [
        1,
        ns,
        value,
        ns,
        ns,
        value,
        value,
        updated,
        updated,
        1,
        updated,
      ];
      const [min, max] = [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
      expect(ids(await same('pageUp', [...profileFilter(null, null, null), min, max, 10]))).toEqual([1, 2, 3]);
      expect(ids(await same('pageDown', [...profileFilter(null, null, null), min, 3, 10]))).toEqual([2, 1]);
      expect(ids(await same('pageUp', [...profileFilter('email', null, null), 1, max, 10]))).toEqual([3]);
      expect(ids(await same('pageUp', [...profileFilter(null, 'b', null), min, max, 10]))).toEqual([2]);
      expect(ids(await same('pageUp', [...profileFilter('email', 'ann@x', null), min, max, 10]))).toEqual([1]);
      expect(ids(await same('pageUp', [...profileFilter(null, null, 100), min, max, 1]))).toEqual([2]);
      expect(await same('count', profileFilter(null, null, null))).toEqual([{ n: 3 }]);
      expect(await same('count', profileFilter('email', null, 150))).toEqual([{ n: 1 }]);
      // Changed after 240: profile 2 by its event (its row is at 200), profile 3 by its row.
      expect(await same('pageUp', [...profileFilter(null, null, 240), min, max, 10])).toEqual([
        expect.objectContaining({ id: 2, updatedAt: 250 }),
        expect.objectContaining({ id: 3, updatedAt: 300 }),
      ]);
      expect(ids(await same('pageUp', [...profileFilter(null, null, 260), min, max, 10]))).toEqual([3]);
      expect(await same('count', profileFilter(null, null, 240))).toEqual([{ n: 2 }]);

      // A filter naming one identity: through the identities key.
      const identified = (ns: string, value: string, updated: number | null) => [1, 1, ns, value, updated, updated];
      expect(ids(await same('identifiedUp', [...identified('email', 'ann@x', null), min, max, 10]))).toEqual([1]);
      expect(ids(await same('identifiedDown', [...identified('email', 'ann@x', null), min, max, 10]))).toEqual([1]);
      expect(ids(await same('identifiedUp', [...identified('email', 'ann@x', 100), min, max, 10]))).toEqual([]);
      expect(ids(await same('identifiedUp', [...identified('email', 'nobody', null), min, max, 10]))).toEqual([]);
      expect(ids(await same('identifiedUp', [...identified('crm', 'b', 240), min, max, 10]))).toEqual([2]);
      expect(ids(await same('identifiedUp', [...identified('crm', 'b', 250), min, max, 10]))).toEqual([]);
      expect(await same('countIdentified', identified('email', 'ann@x', null))).toEqual([{ n: 1 }]);

      // listEvents: sandbox, profile, (type), from, to — the widest when absent; then the
      // cursors: the (ts, id) rows lie below, the (ts, id) they lie above.
      const range = (from: number | null, to: number | null) => [from ?? min, to ?? max];
      const below = (ts: number, id: number) => [ts, id];
      const noBelow = [max, max];
      const noAbove = [min, min];
      expect(ids(await same('eventsDown', [1, 1, ...range(null, null), ...noBelow, ...noAbove, 10]))).toEqual([
        4, 3, 2, 1,
      ]);
      expect(ids(await same('eventsDown', [1, 1, ...range(null, null), ...below(2_000, 3), ...noAbove, 10]))).toEqual([
        2, 1,
      ]);
      expect(ids(await same('eventsUp', [1, 1, ...range(null, null), ...noBelow, 2_000, 2, 10]))).toEqual([3, 4]);
      expect(
        ids(await same('typedEventsDown', [1, 1, 'web.pageViews', ...range(1_500, 2_000), ...noBelow, ...noAbove, 10])),
      ).toEqual([3]);
      expect(
        ids(await same('typedEventsUp', [1, 1, 'web.pageViews', ...range(null, null), ...noBelow, ...noAbove, 10])),
      ).toEqual([1, 3, 4]);
      expect(await same('countEvents', [1, 1, ...range(null, null)])).toEqual([{ n: 4 }]);
      expect(await same('countTypedEvents', [1, 1, 'web.pageViews', ...range(null, 2_000)])).toEqual([{ n: 2 }]);
      await same('audiencesOf', [1, 1]);
      // The count both databases' triggers keep, and the id range (no row: none).
      expect(await same('profileCount', [1])).toEqual([{ n: 3 }]);
      expect(await same('profileCount', [2])).toEqual([{ n: 1 }]);
      expect(await same('profileCount', [9])).toEqual([]);
      expect(await same('lowestId', [1])).toEqual([{ v: 1 }]);
      expect(await same('highestId', [1])).toEqual([{ v: 3 }]);
      expect(await same('lowestId', [9])).toEqual([{ v: null }]);
      expect(await same('highestId', [9])).toEqual([{ v: null }]);

      for (const runner of [sqlite, postgres]) {
        expect(await runner.run(q('deleteIdentities'), [1, 1])).toEqual({ changes: 2 });
        expect(await runner.run(q('deleteEvents'), [1, 1])).toEqual({ changes: 4 });
        expect(await runner.run(q('deleteMemberships'), [1, 1])).toEqual({ changes: 0 });
        expect(await runner.run(q('deleteMembershipHistory'), [1, 1])).toEqual({ changes: 0 });
        expect(await runner.run(q('delete'), [1, 1])).toEqual({ changes: 1 });
      }
      expect(ids(await same('byIds', [1, JSON.stringify([1, 2, 3])]))).toEqual([2, 3]);
    } finally {
      sqlite.close();
    }
  });
});
