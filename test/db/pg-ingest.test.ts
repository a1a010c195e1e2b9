/**
 * Ingest on a pooled database (src/domain/pooled-ingest.ts): the same records and events give
 * the same profiles, identities, stitching, events, refusals, audience sizes and hand-off to the
 * streaming step as SQLite's synchronous ingest (profile-ingest.ts, event-ingest.ts) — run here
 * three ways: the synchronous ingest on SQLite, the pooled ingest on SQLite, the pooled ingest on
 * PostgreSQL. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server; the merge patch's own
 * cases run everywhere.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_INGEST_LIMITS } from '../../src/config.js';
import { type Connection, openDatabase } from '../../src/db/index.js';
import type { PgConnection } from '../../src/db/pg/index.js';
import type { Store } from '../../src/db/store.js';
import { ingestEvents } from '../../src/domain/event-ingest.js';
import { ingestEventsPooled, ingestProfilesPooled, mergePatch } from '../../src/domain/pooled-ingest.js';
import {
  type EventInput,
  type IngestResult,
  ingestProfiles,
  type ProfileRecord,
} from '../../src/domain/profile-ingest.js';
import { createSandbox } from '../../src/domain/sandboxes.js';
import { buildCatalog, DEFAULT_SCHEMA_FIELDS } from '../../src/pql/index.js';
import { freshPgDatabase } from './pg-test-database.js';
import { describeOnPostgres } from './statements-harness.js';
import { audienceSizes, eventRowsWithIngestedAt, identityRows, storedEvents, storedProfiles } from './stored-rows.js';

describe('mergePatch (RFC 7396)', () => {
  it('merges objects, removes nulls, replaces the rest', () => {
    expect(mergePatch({ a: 'b' }, { a: 'c' })).toEqual({ a: 'c' });
    expect(mergePatch({ a: 'b' }, { b: 'c' })).toEqual({ a: 'b', b: 'c' });
    expect(mergePatch({ a: 'b' }, { a: null })).toEqual({});
    expect(mergePatch({ a: 'b', b: 'c' }, { a: null })).toEqual({ b: 'c' });
    expect(mergePatch({ a: ['b'] }, { a: 'c' })).toEqual({ a: 'c' });
    expect(mergePatch({ a: 'c' }, { a: ['b'] })).toEqual({ a: ['b'] });
    expect(mergePatch({ a: { b: 'c' } }, { a: { b: 'd', c: null } })).toEqual({ a: { b: 'd' } });
    expect(mergePatch({ a: [{ b: 'c' }] }, { a: [1] })).toEqual({ a: [1] });
    expect(mergePatch({}, { a: { bb: { ccc: null } } })).toEqual({ a: { bb: {} } });
    expect(mergePatch({ e: null }, { a: 1 })).toEqual({ e: null, a: 1 });
    expect(mergePatch([1, 2], { a: 'b', c: null })).toEqual({ a: 'b' });
  });

  it('stores a "__proto__" key as data, never as the prototype', () => {
    const patched = mergePatch({}, JSON.parse('{"__proto__": {"polluted": true}}')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(patched)).toBe(Object.prototype);
    expect(Object.hasOwn(patched, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

const catalog = buildCatalog(DEFAULT_SCHEMA_FIELDS);
const limits = { ...DEFAULT_INGEST_LIMITS, identitiesPerProfile: 3 };
const email = (id: string) => ({ namespace: 'email', id });

/** Batches that make, merge, stitch and refuse profiles; each batch one ingest call. */
const BATCHES: ProfileRecord[][] = [
  [
    {
      identities: [email('ann@example.com')],
      attributes: { person: { name: { firstName: 'Ann' } }, loyalty: { points: 10 } },
    },
    {
      identities: [email('bob@example.com'), { namespace: 'crm', id: 'B-1' }],
      attributes: { homeAddress: { city: 'Oslo' } },
    },
    { identities: [], attributes: {} },
    { identities: [email('bad@example.com')], attributes: { loyalty: { points: 'many' } } },
    { identities: [{ namespace: 'e mail', id: 'x' }], attributes: {} },
    { identities: [email('carl@example.com')], attributes: { preferences: { categories: ['shoes', 'hats'] } } },
  ],
  [
    // A merge: a field added, one replaced, one removed by null.
    {
      identities: [email('ann@example.com')],
      attributes: { person: { name: { lastName: 'Lee' } }, loyalty: { points: null, tier: 'gold' } },
    },
    { identities: [email('carl@example.com')], attributes: { preferences: { categories: ['socks'] } } },
  ],
  [
    // Stitching Ann (1) and Bob (2) through one record naming both: Bob's profile joins Ann's.
    {
      identities: [email('bob@example.com'), email('ann@example.com')],
      attributes: { homeAddress: { postalCode: '0150' } },
    },
    // Over the identities guardrail once joined (3 stored + 1 new > 3).
    { identities: [email('ann@example.com'), email('ann2@example.com')], attributes: {} },
  ],
];

async function stateOf(store: Store) {
  return {
    profiles: await storedProfiles(store),
    identities: await store.all(identityRows),
    audiences: await store.all(audienceSizes),
    eventOwners: (await store.all<{ eventId: string; profileId: number }>(eventRowsWithIngestedAt)).map((e) => [
      e.eventId,
      e.profileId,
    ]),
  };
}

/**
 * An audience with Bob (profile 2) and Carl (3) as members, so the stitch drops one membership,
 * and an event of Bob's, which the stitch moves.
 */
async function seedAudience(run: (text: string, params: unknown[]) => Promise<void>, sandboxId: number) {
  await run(
    `INSERT INTO audiences (sandbox_id, name, name_key, namespace, origin, lifecycle_state, size, created_at, updated_at)
     VALUES ($1, 'Members', 'members', 'segql', 'UPLOAD', 'PUBLISHED', 2, 1, 1)`,
    [sandboxId],
  );
  for (const profileId of [2, 3]) {
    await run(
      `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, last_evaluated_at) VALUES ($1, 1, $2, 'EXISTING', 1)`,
      [sandboxId, profileId],
    );
  }
  await run(
    `INSERT INTO events (sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at)
     VALUES ($1, 2, 5, 'web.pageView', 'bob-1', '{}', 5)`,
    [sandboxId],
  );
}

const onSqlite = (conn: Connection) => async (text: string, params: unknown[]) => {
  conn.sqlite.prepare(text.replace(/\$\d+/g, '?')).run(...params);
};
const onPostgres = (conn: PgConnection) => async (text: string, params: unknown[]) => {
  await conn.pool.query(text, params);
};

const at = (iso: string) => ({ timestamp: iso });
const EVENT_BATCHES: EventInput[][] = [
  [
    {
      id: 'e1',
      identity: email('ann@example.com'),
      ...at('2026-12-01T10:00:00Z'),
      eventType: 'web.pageView',
      data: { web: { webPageDetails: { name: 'home' } } },
    },
    {
      id: 'e2',
      identity: email('ann@example.com'),
      ...at('2026-12-01T10:05:00.250Z'),
      eventType: 'commerce.purchase',
      data: { commerce: { order: { priceTotal: 12.5 } } },
    },
    { id: 'e1', identity: email('ann@example.com'), ...at('2026-12-01T10:00:00Z'), eventType: 'web.pageView' },
    { id: 'e9', identity: email('ann@example.com'), timestamp: 'yesterday', eventType: 'web.pageView' },
    {
      id: 'e8',
      identity: email('ann@example.com'),
      ...at('2026-12-01T10:00:00Z'),
      eventType: 'web.pageView',
      data: { timestamp: '2026-12-01T10:00:00Z' },
    },
    { id: 'e7', identity: email('ann@example.com'), ...at('2026-12-01T10:00:00Z'), eventType: '' },
    {
      id: 'e3',
      identity: email('bob@example.com'),
      ...at('2026-12-01T11:00:00+01:00'),
      eventType: 'web.pageView',
      data: { channel: 'mobile' },
    },
  ],
  [
    { id: 'e2', identity: email('ann@example.com'), ...at('2026-12-01T10:05:00.250Z'), eventType: 'commerce.purchase' },
    { id: 'e4', identity: email('ann@example.com'), ...at('2026-12-02T09:00:00Z'), eventType: 'web.formFilled' },
    { identity: email('carl@example.com'), ...at('2026-12-02T09:30:00Z'), eventType: 'web.pageView' },
  ],
];

interface HandOff {
  touched: number[];
  addedTypes: [number, string[]][];
  written: [number, { id: number; timestamp: number; eventType: string; payloadJson: string }[]][];
}

describeOnPostgres('ingest on a pooled database', 'pg_ingest', (pg) => {
  it('gives the same profiles, identities, refusals and sizes as the synchronous ingest', async () => {
    const reference = openDatabase(':memory:');
    const pooledSqlite = openDatabase(':memory:');
    try {
      const runs: { store: Store; results: IngestResult[] }[] = [];

      const a = await createSandbox(reference, 'ingest');
      const b = await createSandbox(pooledSqlite, 'ingest');
      const pgSandbox = (
        await pg.conn.pool.query<{ id: number }>(
          "INSERT INTO sandboxes (name, created_at) VALUES ('ingest', 1) RETURNING id",
        )
      ).rows[0]!.id;
      expect([a.id, b.id, pgSandbox]).toEqual([1, 1, 1]);

      // Batch one makes the profiles the audience names; then the audience, then the rest.
      const sync = async (records: ProfileRecord[], now: number) =>
        ingestProfiles(reference, a.id, records, { limits, now });
      const pooled = (store: Store, sandboxId: number) => async (records: ProfileRecord[], now: number) =>
        (await ingestProfilesPooled(store, sandboxId, records, { catalog, limits, now })).result;

      for (const [store, ingest, seed, sandboxId] of [
        [reference, sync, onSqlite(reference), a.id],
        [pooledSqlite, pooled(pooledSqlite, b.id), onSqlite(pooledSqlite), b.id],
        [pg.conn, pooled(pg.conn, pgSandbox), onPostgres(pg.conn), pgSandbox],
      ] as const) {
        const results = [await ingest(BATCHES[0]!, 10_000)];
        await seedAudience(seed, sandboxId);
        for (const [i, batch] of BATCHES.slice(1).entries()) results.push(await ingest(batch, 11_000 + i * 1_000));
        runs.push({ store, results });
      }

      const [expected, ...others] = await Promise.all(
        runs.map(async (r) => ({ results: r.results, ...(await stateOf(r.store)) })),
      );
      for (const other of others) expect(other).toEqual(expected);

      // And what that is, so the three cannot agree on something wrong.
      expect(expected!.results.map((r) => [r.accepted, r.rejected, r.errors.map((e) => [e.index, e.code])])).toEqual([
        [
          3,
          3,
          [
            [2, 'BAD_USER_INPUT'],
            [3, 'BAD_USER_INPUT'],
            [4, 'BAD_USER_INPUT'],
          ],
        ],
        [2, 0, []],
        [1, 1, [[1, 'GUARDRAIL']]],
      ]);
      expect(expected!.profiles).toEqual([
        {
          id: 1,
          attributes: {
            person: { name: { firstName: 'Ann', lastName: 'Lee' } },
            loyalty: { tier: 'gold' },
            homeAddress: { city: 'Oslo', postalCode: '0150' },
          },
          createdAt: 10_000,
          updatedAt: 12_000,
        },
        { id: 3, attributes: { preferences: { categories: ['socks'] } }, createdAt: 10_000, updatedAt: 11_000 },
      ]);
      expect(expected!.identities).toEqual([
        { namespace: 'crm', value: 'B-1', profileId: 1 },
        { namespace: 'email', value: 'ann@example.com', profileId: 1 },
        { namespace: 'email', value: 'bob@example.com', profileId: 1 },
        { namespace: 'email', value: 'carl@example.com', profileId: 3 },
      ]);
      // Bob's membership went with his profile; the size follows.
      expect(expected!.audiences).toEqual([{ id: 1, size: 1 }]);
      expect(expected!.eventOwners).toEqual([['bob-1', 1]]);
      expect(expected!.results[2]!.profileIds).toEqual([1]);
    } finally {
      reference.close();
      pooledSqlite.close();
    }
  });

  it('stores the same events and hands the streaming step the same changes', async () => {
    const reference = openDatabase(':memory:');
    const pooledSqlite = openDatabase(':memory:');
    // A database of its own: the ids it assigns are compared with SQLite's.
    const own = await freshPgDatabase('pg_ingest_events');
    try {
      const a = (await createSandbox(reference, 'events')).id;
      const b = (await createSandbox(pooledSqlite, 'events')).id;
      const c = (
        await own.conn.pool.query<{ id: number }>(
          "INSERT INTO sandboxes (name, created_at) VALUES ('events', 1) RETURNING id",
        )
      ).rows[0]!.id;
      const handOff = (
        touched: number[],
        addedTypes: ReadonlyMap<number, ReadonlySet<string>> | undefined,
        written: ReadonlyMap<number, readonly HandOff['written'][number][1][number][]> | undefined,
      ): HandOff => ({
        touched: [...touched].sort((x, y) => x - y),
        addedTypes: [...(addedTypes ?? new Map())]
          .map(([id, types]) => [id, [...types].sort()] as [number, string[]])
          .sort((x, y) => x[0] - y[0]),
        written: [...(written ?? new Map())]
          .map(([id, list]) => [id, [...list]] as HandOff['written'][number])
          .sort((x, y) => x[0] - y[0]),
      });
      const runs: { results: IngestResult[]; handOffs: HandOff[]; store: Store; sandboxId: number }[] = [];
      {
        const results: IngestResult[] = [];
        const handOffs: HandOff[] = [];
        for (const [i, batch] of EVENT_BATCHES.entries()) {
          results.push(
            ingestEvents(reference, a, batch, {
              limits,
              now: 20_000 + i * 1_000,
              onProfilesChanged: (_s, ids, _now, added, written) => {
                handOffs.push(handOff(ids, added, written));
                return undefined;
              },
            }),
          );
        }
        runs.push({ results, handOffs, store: reference, sandboxId: a });
      }
      for (const [store, sandboxId] of [
        [pooledSqlite, b],
        [own.conn, c],
      ] as const) {
        const results: IngestResult[] = [];
        const handOffs: HandOff[] = [];
        for (const [i, batch] of EVENT_BATCHES.entries()) {
          const done = await ingestEventsPooled(store, sandboxId, batch, { catalog, limits, now: 20_000 + i * 1_000 });
          results.push(done.result);
          handOffs.push(handOff(done.touched, done.addedTypes, done.written));
        }
        runs.push({ results, handOffs, store, sandboxId });
      }
      const seen = await Promise.all(
        runs.map(async (r) => ({
          results: r.results,
          handOffs: r.handOffs,
          profiles: (await stateOf(r.store)).profiles,
          identities: (await stateOf(r.store)).identities,
          events: await storedEvents(r.store, eventRowsWithIngestedAt),
        })),
      );
      const [expected, ...others] = seen;
      for (const other of others) expect(other).toEqual(expected);

      expect(
        expected!.results.map((r) => [r.accepted, r.rejected, r.duplicates, r.errors.map((e) => e.index)]),
      ).toEqual([
        [4, 3, 1, [3, 4, 5]],
        [3, 0, 1, []],
      ]);
      // An id is spent on a duplicate's refused insert, on both databases alike.
      expect(expected!.events.map((e) => [e.id, e.profileId, e.eventId])).toEqual([
        [1, 1, 'e1'],
        [2, 1, 'e2'],
        [4, 2, 'e3'],
        [6, 1, 'e4'],
        [7, 3, 'generated'],
      ]);
      expect(expected!.events[1]).toMatchObject({
        ts: Date.parse('2026-12-01T10:05:00.250Z'),
        payload: { commerce: { order: { priceTotal: 12.5 } } },
      });
      expect(expected!.events[2]).toMatchObject({ ts: Date.parse('2026-12-01T10:00:00Z'), ingestedAt: 20_000 });
      // Batch two: Ann existed and only gained a form event; Carl is new, so evaluated in full.
      expect(expected!.handOffs[1]).toMatchObject({ touched: [1, 3], addedTypes: [[1, ['web.formFilled']]] });
      // A profile's row is not written for its events (its latest ingest is read off them).
      expect(expected!.profiles.map((p) => [p.id, p.updatedAt])).toEqual([
        [1, 20_000],
        [2, 20_000],
        [3, 21_000],
      ]);
      expect(expected!.events.find((e) => e.eventId === 'e4')).toMatchObject({ profileId: 1, ingestedAt: 21_000 });
    } finally {
      reference.close();
      pooledSqlite.close();
      await own.drop();
    }
  });

  it('serialises two nodes ingesting the same new identity into one profile', async () => {
    const sandboxId = (
      await pg.conn.pool.query<{ id: number }>(
        "INSERT INTO sandboxes (name, created_at) VALUES ('race', 1) RETURNING id",
      )
    ).rows[0]!.id;
    const record = { identities: [email('dana@example.com')], attributes: { loyalty: { tier: 'silver' } } };
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, () => ingestProfilesPooled(pg.conn, sandboxId, [record], { catalog, limits })),
    );
    const ids = new Set(outcomes.map((o: { result: IngestResult }) => o.result.profileIds[0]));
    expect(ids.size).toBe(1);
    const { rows } = await pg.conn.pool.query<{ n: number }>(
      'SELECT count(*) AS n FROM profiles WHERE sandbox_id = $1',
      [sandboxId],
    );
    expect(rows[0]!.n).toBe(1);
    expect(outcomes.flatMap((o: { added: unknown[] }) => o.added)).toHaveLength(1);
  });
});
