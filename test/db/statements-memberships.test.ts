/**
 * Statements by name, memberships (src/domain/memberships.ts): both texts write transitions
 * alike, and read members by page with and without a status filter, the memberships of profiles
 * (an evaluation later than the row's change counts for current members) and a profile's history
 * newest first. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import type { StatementRunner } from '../../src/db/statement.js';
import '../../src/domain/memberships.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

const MIN = Number.MIN_SAFE_INTEGER;
const MAX = Number.MAX_SAFE_INTEGER;

describeOnPostgres('memberships statements on PostgreSQL', 'statements_memberships', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('memberships');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const both = async <T>(f: (runner: StatementRunner) => Promise<T>) =>
        [await f(sqlite), await f(postgres)] as const;
      // Payloads parsed: jsonb's text has its own spacing.
      const parsed = (rows: unknown) =>
        (rows as { payload: string | null }[]).map((r) => ({
          ...r,
          payload: r.payload === null ? null : JSON.parse(r.payload),
        }));
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
          'size',
          'last_evaluated_at',
          'created_at',
          'updated_at',
        ],
        [
          [1, 1, 'a', 'a', 'segql', 'MANUAL', 'DRAFT', 0, 500, 0, 0],
          [2, 1, 'b', 'b', 'segql', 'MANUAL', 'DRAFT', 3, null, 0, 0],
        ],
      );
      const columns = [
        'sandbox_id',
        'audience_id',
        'profile_id',
        'status',
        'qualified_at',
        'last_evaluated_at',
        'exited_at',
        'payload',
      ];
      await insertRows(sqlite, pg, 'memberships', columns, [
        [1, 1, 1, 'REALIZED', 100, 100, null, null],
        [1, 1, 2, 'EXISTING', 50, 900, null, '{"tier":"gold","n":[1,2]}'],
        [1, 1, 3, 'EXITED', 50, 200, 200, null],
        [1, 1, 5, 'REALIZED', 10, 10, null, null],
        [1, 2, 1, 'EXISTING', 10, 10, null, null],
        [2, 1, 9, 'REALIZED', 10, 10, null, null],
      ]);

      const members = await both(async (r) => [
        parsed(await r.all(q('membersUp'), [1, 1, null, null, MIN, MAX, 10])),
        parsed(await r.all(q('membersDown'), [1, 1, null, null, MIN, 5, 2])),
        parsed(await r.all(q('membersUp'), [1, 1, '["EXITED","EXISTING"]', '["EXITED","EXISTING"]', MIN, MAX, 10])),
        parsed(await r.all(q('membersUp'), [1, 1, null, null, 1, MAX, 1])),
        await r.get(q('countMembers'), [1, 1, null, null]),
        await r.get(q('countMembers'), [1, 1, '["REALIZED"]', '["REALIZED"]']),
        await r.get(q('countMembers'), [1, 3, null, null]),
      ]);
      expect(members[1]).toEqual(members[0]);
      const ids = (rows: unknown) => (rows as { profileId: number }[]).map((m) => m.profileId);
      expect(members[0].slice(0, 4).map(ids)).toEqual([[1, 2, 3, 5], [3, 2], [2, 3], [2]]);
      expect(members[0].slice(4)).toEqual([{ n: 4 }, { n: 2 }, { n: 0 }]);
      // A current member's evaluation is the audience's when later (500); an exited one keeps its own.
      expect(members[0][0]).toEqual([
        {
          audienceId: 1,
          profileId: 1,
          status: 'REALIZED',
          qualifiedAt: 100,
          lastEvaluatedAt: 500,
          exitedAt: null,
          payload: null,
        },
        {
          audienceId: 1,
          profileId: 2,
          status: 'EXISTING',
          qualifiedAt: 50,
          lastEvaluatedAt: 900,
          exitedAt: null,
          payload: { tier: 'gold', n: [1, 2] },
        },
        {
          audienceId: 1,
          profileId: 3,
          status: 'EXITED',
          qualifiedAt: 50,
          lastEvaluatedAt: 200,
          exitedAt: 200,
          payload: null,
        },
        {
          audienceId: 1,
          profileId: 5,
          status: 'REALIZED',
          qualifiedAt: 10,
          lastEvaluatedAt: 500,
          exitedAt: null,
          payload: null,
        },
      ]);

      const ofProfiles = await both(async (r) => [
        parsed(await r.all(q('ofProfiles'), [1, JSON.stringify([1, 9, 3])])),
        await r.all(q('ofProfiles'), [1, '[]']),
      ]);
      expect(ofProfiles[1]).toEqual(ofProfiles[0]);
      expect(
        (ofProfiles[0][0] as { profileId: number; audienceId: number; lastEvaluatedAt: number }[]).map((m) => [
          m.profileId,
          m.audienceId,
          m.lastEvaluatedAt,
        ]),
      ).toEqual([
        [1, 1, 500],
        [1, 2, 10],
        [3, 1, 200],
      ]);

      // The writer's statements, then the manual change's reads.
      const written = await both(async (r) => [
        await r.run(q('enter'), [1, 2, 7, 1_000, 1_001]),
        await r.run(q('enter'), [1, 1, 3, 1_100, 1_101]),
        await r.run(q('exit'), [1_200, 1_201, 1, 1]),
        await r.run(q('history'), [1, 7, 2, 1_000, null, 'REALIZED', 'manual', null]),
        await r.run(q('history'), [1, 7, 1, 1_300, 'REALIZED', 'EXITED', 'streaming', 4]),
        await r.run(q('history'), [1, 7, 2, 1_400, 'REALIZED', 'EXITED', 'job:9', 2]),
        await r.run(q('history'), [1, 8, 2, 1_400, null, 'REALIZED', 'manual', null]),
        await r.run(q('moveSize'), [-2, 1_500, 2]),
        await r.run(q('touchAudience'), [1_600, 1_601, 1]),
        await r.all(q('statusesOf'), [1, JSON.stringify([3, 1, 99])]),
        await r.all(q('statusesOf'), [2, JSON.stringify([7])]),
        await r.all(q('statusesOf'), [2, '[]']),
        await r.all(q('statusesOf'), [3, JSON.stringify([1])]),
        parsed(await r.all(q('ofProfiles'), [1, JSON.stringify([3, 7])])),
        await r.all({
          name: 'test.audiences',
          sqlite: 'SELECT id, size, last_evaluated_at AS "at", updated_at AS "updatedAt" FROM audiences ORDER BY id',
          postgres: 'SELECT id, size, last_evaluated_at AS "at", updated_at AS "updatedAt" FROM audiences ORDER BY id',
        }),
      ]);
      expect(written[1]).toEqual(written[0]);
      expect(written[0].slice(0, 9)).toEqual(Array(9).fill({ changes: 1 }));
      expect(written[0].slice(9, 13)).toEqual([
        [
          { profileId: 1, status: 'EXITED' },
          { profileId: 3, status: 'REALIZED' },
        ],
        [{ profileId: 7, status: 'REALIZED' }],
        [],
        [],
      ]);
      expect(written[0][13]).toEqual([
        {
          audienceId: 1,
          profileId: 3,
          status: 'REALIZED',
          qualifiedAt: 1_100,
          lastEvaluatedAt: 1_601,
          exitedAt: null,
          payload: null,
        },
        {
          audienceId: 2,
          profileId: 7,
          status: 'REALIZED',
          qualifiedAt: 1_000,
          lastEvaluatedAt: 1_500,
          exitedAt: null,
          payload: null,
        },
      ]);
      expect(written[0][14]).toEqual([
        { id: 1, size: 0, at: 1_601, updatedAt: 1_600 },
        { id: 2, size: 1, at: 1_500, updatedAt: 0 },
      ]);

      const history = await both(async (r) => [
        await r.all(q('historyNewestFirst'), [1, 7, MIN, MAX, 10]),
        await r.all(q('historyNewestFirst'), [1, 7, MIN, 3, 10]),
        await r.all(q('historyOldestFirst'), [1, 7, 1, MAX, 1]),
        await r.all(q('historyNewestFirst'), [2, 7, MIN, MAX, 10]),
        await r.get(q('countHistory'), [1, 7]),
        await r.get(q('countHistory'), [1, 99]),
      ]);
      expect(history[1]).toEqual(history[0]);
      expect((history[0][0] as { id: number }[]).map((t) => t.id)).toEqual([3, 2, 1]);
      expect(history[0][0]).toContainEqual({
        id: 2,
        profileId: 7,
        audienceId: 1,
        at: 1_300,
        fromStatus: 'REALIZED',
        toStatus: 'EXITED',
        cause: 'streaming',
        definitionVersion: 4,
      });
      expect((history[0][1] as { id: number }[]).map((t) => t.id)).toEqual([2, 1]);
      expect((history[0][2] as { id: number }[]).map((t) => t.id)).toEqual([2]);
      expect(history[0].slice(3)).toEqual([[], { n: 3 }, { n: 0 }]);

      // The manual change, many profiles at once.
      await insertRows(
        sqlite,
        pg,
        'identities',
        ['sandbox_id', 'namespace', 'value', 'profile_id', 'created_at'],
        [
          [1, 'email', 'a@x', 20, 0],
          [1, 'crm', '42', 21, 0],
          [1, 'email', 'b@x', 22, 0],
          [2, 'email', 'c@x', 23, 0],
        ],
      );
      const identities = JSON.stringify([
        ['email', 'a@x'],
        ['email', 'c@x'],
        ['crm', '42'],
        ['CRM', '42'],
        ['email', 'a@x'],
      ]);
      const manual = await both(async (r) => [
        await r.all(q('profilesOfIdentities'), [identities, 1]),
        await r.run(q('enterAll'), [1, 2, 2_000, 2_001, JSON.stringify([20, 21, 7])]),
        await r.run(q('exitAll'), [2_100, 2_101, 2, JSON.stringify([21, 99])]),
        await r.run(q('manualHistory'), [
          1,
          2,
          2_200,
          'REALIZED',
          JSON.stringify([
            [22, null],
            [21, 'EXITED'],
            [20, 'EXISTING'],
          ]),
        ]),
        parsed(await r.all(q('ofProfiles'), [1, JSON.stringify([20, 21, 7])])),
        await r.all(q('historyNewestFirst'), [1, 22, MIN, MAX, 10]),
        await r.all(q('historyOldestFirst'), [1, 21, MIN, MAX, 10]),
      ]);
      expect(manual[1]).toEqual(manual[0]);
      expect(manual[0][0]).toEqual([
        { index: 0, profileId: 20 },
        { index: 1, profileId: null },
        { index: 2, profileId: 21 },
        { index: 3, profileId: null },
        { index: 4, profileId: 20 },
      ]);
      expect(manual[0].slice(1, 4)).toEqual([{ changes: 3 }, { changes: 1 }, { changes: 3 }]);
      expect(
        (manual[0][4] as { profileId: number; audienceId: number; status: string; qualifiedAt: number }[]).map((m) => [
          m.profileId,
          m.audienceId,
          m.status,
          m.qualifiedAt,
        ]),
      ).toEqual([
        [7, 2, 'REALIZED', 2_000],
        [20, 2, 'REALIZED', 2_000],
        [21, 2, 'EXITED', 2_000],
      ]);
      expect(manual[0][5]).toEqual([
        {
          id: 5,
          profileId: 22,
          audienceId: 2,
          at: 2_200,
          fromStatus: null,
          toStatus: 'REALIZED',
          cause: 'manual',
          definitionVersion: null,
        },
      ]);
      expect((manual[0][6] as { id: number; fromStatus: string }[]).map((t) => [t.id, t.fromStatus])).toEqual([
        [6, 'EXITED'],
      ]);
    } finally {
      sqlite.close();
    }
  });
});
