/**
 * Membership writes of the pooled paths a request at a time (StoreMembershipWriter.writeAll):
 * a request whose profiles all enter a streaming audience costs the same number of statements
 * for 20 profiles as for 400, counted on SQLite everywhere and on PostgreSQL when
 * SEGQL_TEST_DATABASE_URL names a server; and moves written together leave exactly the rows
 * SQLite's MembershipWriter leaves writing them one at a time, history ids included, a move of a
 * membership already moved in the same call among them. The timing of 20 requests of 1,000
 * entering profiles on PostgreSQL is logged, for docs/scale-out.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/config.js';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { sqlStatementsTotal } from '../../src/db/statement-count.js';
import type { Store } from '../../src/db/store.js';
import { writeUnit } from '../../src/db/unit.js';
import { createSegmentDefinition } from '../../src/domain/definitions.js';
import {
  type AddedIdentity,
  resolvePendingMembers,
  resolvePendingMembersOn,
} from '../../src/domain/external-audiences/pending-members.js';
import {
  type MembershipMove,
  MembershipWriter,
  membershipMove,
  StoreMembershipWriter,
} from '../../src/domain/memberships.js';
import { ingestProfilesPooled } from '../../src/domain/pooled-ingest.js';
import { PooledIngestWriter } from '../../src/domain/pooled-ingest-writer.js';
import type { ProfileRecord } from '../../src/domain/profile-ingest.js';
import { createSandbox } from '../../src/domain/sandboxes.js';
import { buildCatalog, DEFAULT_SCHEMA_FIELDS } from '../../src/pql/index.js';
import { ingestCrmList } from './crm-list.js';
import { freshPgDatabase, pgCopyOf } from './pg-test-database.js';
import { describeOnPostgres } from './statements-harness.js';
import {
  audienceRows,
  historyRowsWithSandbox,
  membershipRows,
  payloadRows,
  storedMembershipState,
} from './stored-rows.js';

const newProfiles = (from: number, n: number): ProfileRecord[] =>
  Array.from({ length: n }, (_, i) => ({
    identities: [{ namespace: 'email', id: `m${from + i}@example.com` }],
    attributes: { loyalty: { points: from + i } },
  }));

/** A sandbox whose one streaming definition every profile with points enters. */
async function streamingSandbox(store: Store): Promise<{ sandboxId: number; audienceId: number }> {
  const sandboxId = (await createSandbox(store, 'streaming', 1)).id;
  const { audienceId } = await createSegmentDefinition(
    store,
    sandboxId,
    {
      name: 'Everyone with points',
      expression: { format: 'PQL_TEXT', value: 'loyalty.points >= 0' },
      evaluationInfo: { batch: true, streaming: true, edge: false },
      lifecycleState: 'PUBLISHED',
    },
    1,
  );
  return { sandboxId, audienceId };
}

/** The pooled ingest writer on `store`, counting the changes it publishes. */
function pooledWriter(store: Store) {
  const published = { count: 0 };
  const writer = new PooledIngestWriter({
    store,
    limits: DEFAULT_LIMITS,
    bus: { publishAll: (_topic, payloads) => (published.count += payloads.length) },
    log: pino({ level: 'silent' }),
    sweepMs: 60_000,
  });
  const ingest = async (sandboxId: number, records: ProfileRecord[]) => {
    const reply = await writer.write([{ kind: 'profile', sandboxId, records }]);
    if (reply.busy) throw new Error('busy');
    const [outcome] = reply.outcomes;
    if (!outcome?.ok) throw outcome?.error ?? new Error('no outcome');
    expect(outcome.result.accepted).toBe(records.length);
  };
  return { published, ingest };
}

/** Statements of a request of 20 and of 400 new profiles, each entering the streaming audience. */
async function statementsPerRequest(store: Store) {
  const { sandboxId, audienceId } = await streamingSandbox(store);
  const { published, ingest } = pooledWriter(store);
  const counted = async (from: number, n: number) => {
    const before = sqlStatementsTotal();
    await ingest(sandboxId, newProfiles(from, n));
    return sqlStatementsTotal() - before;
  };
  // The first request reads the streaming plan; the next ones find it cached.
  await counted(0, 1);
  const small = await counted(1, 20);
  const large = await counted(1_000, 400);
  const members = (await store.all<{ audienceId: number; status: string }>(membershipRows)).filter(
    (m) => m.audienceId === audienceId,
  );
  const history = await store.all<{ audienceId: number; toStatus: string; cause: string }>(historyRowsWithSandbox);
  const audience = (await store.all<{ id: number; size: number }>(audienceRows)).find((a) => a.id === audienceId);
  return { small, large, published: published.count, members, history, size: audience?.size };
}

function expectBounded(n: Awaited<ReturnType<typeof statementsPerRequest>>) {
  expect(n.large).toBe(n.small);
  // The ingest's own few statements, the plan's versions, the documents, the memberships' writes.
  expect(n.small).toBeLessThanOrEqual(16);
  expect(n.published).toBe(421);
  expect(n.members).toHaveLength(421);
  expect(n.members.every((m) => m.status === 'REALIZED')).toBe(true);
  expect(n.history).toHaveLength(421);
  expect(n.history.every((h) => h.toStatus === 'REALIZED' && h.cause === 'streaming')).toBe(true);
  expect(n.size).toBe(421);
}

describe('membership writes per request, on SQLite', () => {
  it('do not grow with the number of profiles entering an audience', async () => {
    const conn = openDatabase(':memory:');
    try {
      expectBounded(await statementsPerRequest(conn));
    } finally {
      conn.close();
    }
  });
});

/**
 * Two audiences and four profiles; then three calls of moves: new members, exits and a member
 * that leaves and comes back within one call, and a return from EXITED (the upsert's update).
 */
async function movesSandbox(store: Store): Promise<{ sandboxId: number; a: number; b: number; p: number[] }> {
  const sandboxId = (await createSandbox(store, 'moves', 1)).id;
  const audience = async (name: string) =>
    (
      await createSegmentDefinition(
        store,
        sandboxId,
        { name, expression: { format: 'PQL_TEXT', value: 'loyalty.points >= 0' } },
        1,
      )
    ).audienceId;
  const a = await audience('A');
  const b = await audience('B');
  const catalog = buildCatalog(DEFAULT_SCHEMA_FIELDS);
  const done = await ingestProfilesPooled(store, sandboxId, newProfiles(0, 4), { catalog, limits: DEFAULT_LIMITS });
  return { sandboxId, a, b, p: done.result.profileIds };
}

function movesOf({ sandboxId, a, b, p }: Awaited<ReturnType<typeof movesSandbox>>): [number, MembershipMove[]][] {
  const move = (
    audienceId: number,
    profile: number,
    from: 'REALIZED' | 'EXITED' | null,
    enters: boolean,
    at: number,
    version: number | null,
  ) => membershipMove(sandboxId, audienceId, p[profile]!, from, enters, at, 'streaming', version);
  return [
    [1_000, [move(a, 0, null, true, 1_000, 1), move(a, 1, null, true, 1_000, 1), move(b, 0, null, true, 1_000, null)]],
    [
      2_000,
      [
        move(a, 1, 'REALIZED', false, 2_000, 1),
        move(a, 2, null, true, 2_000, 1),
        // Out and back in the same call: written in that order.
        move(a, 0, 'REALIZED', false, 2_000, 1),
        move(b, 0, 'REALIZED', false, 2_000, null),
        move(a, 0, 'EXITED', true, 2_000, 2),
      ],
    ],
    [3_000, [move(a, 1, 'EXITED', true, 3_000, 2), move(b, 3, null, true, 3_000, null)]],
  ];
}

/** One at a time, synchronously on SQLite: the reference. */
function writeOneByOne(conn: Connection, calls: [number, MembershipMove[]][]): void {
  for (const [at, moves] of calls) {
    conn.sqlite.transaction(() => {
      const writer = new MembershipWriter(conn);
      for (const { change, history } of moves) {
        const version = history[7] as number | null;
        const { sandboxId, audienceId, profileId, from, to, cause } = change;
        writer.change(sandboxId, audienceId, profileId, from, to === 'REALIZED', change.at, cause, version);
      }
      writer.flushSizes(at);
    })();
  }
}

async function writeTogether(store: Store, calls: [number, MembershipMove[]][]): Promise<unknown[]> {
  const changes: unknown[] = [];
  for (const [at, moves] of calls) {
    await writeUnit(store, async (tx) => {
      const writer = new StoreMembershipWriter(tx);
      changes.push(...(await writer.writeAll(moves)));
      await writer.flushSizes(at);
    });
  }
  return changes;
}

function stateOf(store: Store) {
  return storedMembershipState(store, { history: historyRowsWithSandbox, audiences: audienceRows });
}

/** What the reference leaves, so that the writers cannot agree on something wrong. */
function expectReference(state: Awaited<ReturnType<typeof stateOf>>, ids: Awaited<ReturnType<typeof movesSandbox>>) {
  const { a, b, p } = ids;
  expect(state.memberships).toEqual([
    { audienceId: a, profileId: p[0], status: 'REALIZED', qualifiedAt: 2_000, lastEvaluatedAt: 2_000, exitedAt: null },
    { audienceId: a, profileId: p[1], status: 'REALIZED', qualifiedAt: 3_000, lastEvaluatedAt: 3_000, exitedAt: null },
    { audienceId: a, profileId: p[2], status: 'REALIZED', qualifiedAt: 2_000, lastEvaluatedAt: 2_000, exitedAt: null },
    { audienceId: b, profileId: p[0], status: 'EXITED', qualifiedAt: 1_000, lastEvaluatedAt: 2_000, exitedAt: 2_000 },
    { audienceId: b, profileId: p[3], status: 'REALIZED', qualifiedAt: 3_000, lastEvaluatedAt: 3_000, exitedAt: null },
  ]);
  expect(
    (state.history as { id: number; audienceId: number; profileId: number; toStatus: string }[]).map((h) => [
      h.audienceId,
      h.profileId,
      h.toStatus,
    ]),
  ).toEqual([
    [a, p[0], 'REALIZED'],
    [a, p[1], 'REALIZED'],
    [b, p[0], 'REALIZED'],
    [a, p[1], 'EXITED'],
    [a, p[2], 'REALIZED'],
    [a, p[0], 'EXITED'],
    [b, p[0], 'EXITED'],
    [a, p[0], 'REALIZED'],
    [a, p[1], 'REALIZED'],
    [b, p[3], 'REALIZED'],
  ]);
  const sizes = new Map((state.audiences as { id: number; size: number }[]).map((x) => [x.id, x.size]));
  expect([sizes.get(a), sizes.get(b)]).toEqual([3, 1]);
}

describe('moves written together, on SQLite', () => {
  it('leave the rows MembershipWriter leaves one move at a time', async () => {
    const reference = openDatabase(':memory:');
    const together = openDatabase(':memory:');
    try {
      const ids = await movesSandbox(reference);
      expect(await movesSandbox(together)).toEqual(ids);
      writeOneByOne(reference, movesOf(ids));
      const changes = await writeTogether(together, movesOf(ids));
      expect(changes).toEqual(movesOf(ids).flatMap(([, moves]) => moves.map((m) => m.change)));
      const expected = await stateOf(reference);
      expectReference(expected, ids);
      expect(await stateOf(together)).toEqual(expected);
    } finally {
      reference.close();
      together.close();
    }
  });
});

describeOnPostgres('membership writes on PostgreSQL', 'pg_membership_batch', (pg) => {
  it('do not grow with the number of profiles entering an audience', async () => {
    expectBounded(await statementsPerRequest(pg.conn));
  });

  it('leave the rows MembershipWriter leaves on SQLite one move at a time', async () => {
    const reference = openDatabase(':memory:');
    const source = openDatabase(':memory:');
    let own: Awaited<ReturnType<typeof pgCopyOf>> | undefined;
    try {
      const ids = await movesSandbox(reference);
      expect(await movesSandbox(source)).toEqual(ids);
      // A copy of its own: the history ids it assigns are compared with SQLite's.
      own = await pgCopyOf(source.sqlite, 'pg_membership_batch_moves');
      writeOneByOne(reference, movesOf(ids));
      await writeTogether(own.conn, movesOf(ids));
      const expected = await stateOf(reference);
      expectReference(expected, ids);
      expect(await stateOf(own.conn)).toEqual(expected);
    } finally {
      reference.close();
      source.close();
      await own?.drop();
    }
  });

  it('ingests 20 requests of 1,000 profiles entering a streaming audience (timing logged)', async () => {
    const own = await freshPgDatabase('pg_membership_batch_timing');
    try {
      const { sandboxId, audienceId } = await streamingSandbox(own.conn);
      const { published, ingest } = pooledWriter(own.conn);
      const t0 = performance.now();
      for (let from = 0; from < 20_000; from += 1_000) await ingest(sandboxId, newProfiles(from, 1_000));
      const ms = performance.now() - t0;
      console.log(
        `pooled ingest writer on PostgreSQL: 20 requests of 1000 profiles entering a streaming audience ${Math.round(ms)} ms; load average ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}`,
      );
      expect(published.count).toBe(20_000);
      const audience = (await own.conn.all<{ id: number; size: number }>(audienceRows)).find(
        (a) => a.id === audienceId,
      );
      expect(audience?.size).toBe(20_000);
      expect(await own.conn.all(historyRowsWithSandbox)).toHaveLength(20_000);
    } finally {
      await own.drop();
    }
  }, 300_000);
});

/**
 * A list naming Ann by two addresses and Bob by one, before their profiles exist; then the call
 * that tells the pending members both of Ann's addresses and Bob's at once.
 */
async function pendingSandbox(conn: Connection, dir: string) {
  const sandboxId = (await createSandbox(conn, 'lists', 1)).id;
  const external = await ingestCrmList(conn, sandboxId, {
    dir,
    name: `list-${sandboxId}-${Math.random()}.csv`,
    text: 'email,points\nann@example.com,1\nann2@example.com,2\nbob@example.com,3\n',
    now: 1_000,
  });
  const catalog = buildCatalog(DEFAULT_SCHEMA_FIELDS);
  const records: ProfileRecord[] = [
    {
      identities: [
        { namespace: 'email', id: 'ann@example.com' },
        { namespace: 'email', id: 'ann2@example.com' },
      ],
      attributes: {},
    },
    { identities: [{ namespace: 'email', id: 'bob@example.com' }], attributes: {} },
  ];
  const [ann, bob] = (await ingestProfilesPooled(conn, sandboxId, records, { catalog, limits: DEFAULT_LIMITS })).result
    .profileIds;
  const added: AddedIdentity[] = [
    { namespace: 'email', value: 'ann@example.com', profileId: ann! },
    { namespace: 'email', value: 'ann2@example.com', profileId: ann! },
    { namespace: 'email', value: 'bob@example.com', profileId: bob! },
  ];
  return { sandboxId, audienceId: external.audienceId, added, ann: ann!, bob: bob! };
}

async function listStateOf(store: Store) {
  return {
    ...(await stateOf(store)),
    payloads: (await store.all<{ payload: string | null }>(payloadRows)).map((r) => ({
      ...r,
      payload: r.payload === null ? null : (JSON.parse(r.payload) as unknown),
    })),
  };
}

describe('pending members written together, on SQLite', () => {
  it('cost the same statements for 3 identities as for 297', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segql-memb-batch-'));
    const conn = openDatabase(':memory:');
    try {
      const sandboxId = (await createSandbox(conn, 'lists', 1)).id;
      const emails = Array.from({ length: 300 }, (_, i) => `p${i}@example.com`);
      const external = await ingestCrmList(conn, sandboxId, {
        dir,
        name: 'many.csv',
        text: `email,points\n${emails.map((e, i) => `${e},${i}`).join('\n')}\n`,
        now: 1_000,
      });
      const catalog = buildCatalog(DEFAULT_SCHEMA_FIELDS);
      const records = emails.map((id) => ({ identities: [{ namespace: 'email', id }], attributes: {} }));
      const { profileIds } = (await ingestProfilesPooled(conn, sandboxId, records, { catalog, limits: DEFAULT_LIMITS }))
        .result;
      const added = emails.map((value, i) => ({ namespace: 'email', value, profileId: profileIds[i]! }));
      const counted = async (batch: AddedIdentity[]) => {
        const before = sqlStatementsTotal();
        const changes = await writeUnit(conn, (tx) => resolvePendingMembersOn(tx, sandboxId, batch, 5_000));
        return { statements: sqlStatementsTotal() - before, entered: changes.length };
      };
      const small = await counted(added.slice(0, 3));
      const large = await counted(added.slice(3));
      expect(small.entered).toBe(3);
      expect(large.entered).toBe(297);
      expect(large.statements).toBe(small.statements);
      const audience = (await conn.all<{ id: number; size: number }>(audienceRows)).find(
        (a) => a.id === external.audienceId,
      );
      expect(audience?.size).toBe(300);
    } finally {
      conn.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leave what resolvePendingMembers leaves, a member named twice entering once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segql-memb-batch-'));
    const reference = openDatabase(':memory:');
    const pooled = openDatabase(':memory:');
    try {
      const ids = await pendingSandbox(reference, dir);
      expect(await pendingSandbox(pooled, dir)).toEqual(ids);
      const expectedChanges = reference.sqlite.transaction(() =>
        resolvePendingMembers(reference, ids.sandboxId, ids.added, 5_000),
      )();
      const changes = await writeUnit(pooled, (tx) => resolvePendingMembersOn(tx, ids.sandboxId, ids.added, 5_000));
      expect(changes).toEqual(expectedChanges);
      expect(changes.map((c) => [c.audienceId, c.profileId, c.from, c.to, c.cause])).toEqual([
        [ids.audienceId, ids.ann, null, 'REALIZED', 'import'],
        [ids.audienceId, ids.bob, null, 'REALIZED', 'import'],
      ]);
      const expected = await listStateOf(reference);
      // Ann's membership carries the last row that named her.
      expect(expected.payloads).toEqual([
        { audienceId: ids.audienceId, profileId: ids.ann, payload: { points: 2 } },
        { audienceId: ids.audienceId, profileId: ids.bob, payload: { points: 3 } },
      ]);
      expect(expected.history).toHaveLength(2);
      expect((expected.audiences as { id: number; size: number }[]).find((a) => a.id === ids.audienceId)?.size).toBe(2);
      expect(await listStateOf(pooled)).toEqual(expected);
    } finally {
      reference.close();
      pooled.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
