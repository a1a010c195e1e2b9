/**
 * The pooled ingest's statements per request (src/domain/pooled-ingest.ts): records and events
 * that need no stitching are written a request at a time, so the number of statements a request
 * issues does not grow with its size — counted here on SQLite everywhere and on PostgreSQL when
 * SEGQL_TEST_DATABASE_URL names a server, where the round trips are what a request waits on. A
 * request mixing new records, records of stored profiles and records colliding within it gives
 * what SQLite's synchronous ingest gives, ids and order included. The 8,000-profile timings are
 * logged, for docs/scale-out.md.
 */
import { loadavg } from 'node:os';
import { describe, expect, it } from 'vitest';
import { DEFAULT_INGEST_LIMITS } from '../../src/config.js';
import { openDatabase } from '../../src/db/index.js';
import { statements } from '../../src/db/statement.js';
import { sqlStatementsTotal } from '../../src/db/statement-count.js';
import type { Store } from '../../src/db/store.js';
import { ingestEvents } from '../../src/domain/event-ingest.js';
import { ingestEventsPooled, ingestProfilesPooled } from '../../src/domain/pooled-ingest.js';
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
import { eventRows, identityRows, profileRows, storedEvents, storedProfiles } from './stored-rows.js';

const { profileCount } = statements('pg-ingest-batch-test', {
  profileCount: {
    sqlite: 'SELECT profile_count AS n FROM sandboxes WHERE id = ?',
    postgres: 'SELECT profile_count AS n FROM sandboxes WHERE id = $1',
  },
});

const catalog = buildCatalog(DEFAULT_SCHEMA_FIELDS);
const limits = { ...DEFAULT_INGEST_LIMITS, identitiesPerProfile: 3 };
const email = (id: string) => ({ namespace: 'email', id });

const newProfiles = (from: number, n: number): ProfileRecord[] =>
  Array.from({ length: n }, (_, i) => ({
    identities: [email(`p${from + i}@example.com`), { namespace: 'crm', id: `C-${from + i}` }],
    attributes: { loyalty: { points: from + i }, person: { name: { firstName: `P${from + i}` } } },
  }));

const eventsFor = (from: number, n: number, prefix: string): EventInput[] =>
  Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${from + i}`,
    identity: email(`p${from + i}@example.com`),
    timestamp: new Date(Date.UTC(2026, 11, 1) + i * 1_000).toISOString(),
    eventType: 'web.pageView',
    data: { web: { webPageDetails: { name: `page ${i % 7}` } } },
  }));

/** The statements `run` issues on this thread. */
async function counted(run: () => Promise<unknown>): Promise<number> {
  const before = sqlStatementsTotal();
  await run();
  return sqlStatementsTotal() - before;
}

/**
 * A request of 20 new profiles and one of 400 cost the same number of statements, as do updates
 * of 20 and of 400 stored profiles, and events naming 20 stored profiles and 20 new identities
 * against 400 and 400.
 */
async function statementsPerRequest(store: Store, sandboxId: number) {
  const profiles = async (from: number, n: number) =>
    counted(() => ingestProfilesPooled(store, sandboxId, newProfiles(from, n), { catalog, limits }));
  const events = async (from: number, n: number, prefix: string) =>
    // Half of them name a profile just made, half an identity never seen (a new profile each).
    counted(() =>
      ingestEventsPooled(store, sandboxId, [...eventsFor(from, n, prefix), ...eventsFor(100_000 + from, n, prefix)], {
        catalog,
        limits,
      }),
    );
  const small = await profiles(0, 20);
  const large = await profiles(1_000, 400);
  // The same records again: each an update of the profile it made.
  const smallUpdates = await profiles(0, 20);
  const largeUpdates = await profiles(1_000, 400);
  const smallEvents = await events(0, 20, 'a');
  const largeEvents = await events(1_000, 400, 'a');
  // The same events again: every one a duplicate.
  const duplicates = await events(1_000, 400, 'a');
  return { small, large, smallUpdates, largeUpdates, smallEvents, largeEvents, duplicates };
}

describe('pooled ingest statements per request, on SQLite', () => {
  it('does not grow with the number of records or events', async () => {
    const conn = openDatabase(':memory:');
    try {
      const sandboxId = (await createSandbox(conn, 'count')).id;
      const n = await statementsPerRequest(conn, sandboxId);
      expect(n.large).toBe(n.small);
      expect(n.largeUpdates).toBe(n.smallUpdates);
      expect(n.largeEvents).toBe(n.smallEvents);
      expect(n.duplicates).toBeLessThanOrEqual(n.largeEvents);
      expect(Math.max(n.small, n.smallUpdates, n.smallEvents)).toBeLessThanOrEqual(8);
      expect((await conn.get<{ n: number }>(profileCount, [sandboxId]))!.n).toBe(420 + 420);
    } finally {
      conn.close();
    }
  });
});

describeOnPostgres('pooled ingest statements per request, on PostgreSQL', 'pg_ingest_batch', (pg) => {
  it('does not grow with the number of records or events', async () => {
    const sandboxId = (
      await pg.conn.pool.query<{ id: number }>(
        "INSERT INTO sandboxes (name, created_at) VALUES ('count', 1) RETURNING id",
      )
    ).rows[0]!.id;
    const n = await statementsPerRequest(pg.conn, sandboxId);
    expect(n.large).toBe(n.small);
    expect(n.largeUpdates).toBe(n.smallUpdates);
    expect(n.largeEvents).toBe(n.smallEvents);
    expect(Math.max(n.small, n.smallUpdates, n.smallEvents)).toBeLessThanOrEqual(8);
    expect((await pg.conn.get<{ n: number }>(profileCount, [sandboxId]))!.n).toBe(420 + 420);
  });

  it('ingests 8,000 new profiles, 8,000 events for them, then 8,000 updates (timing logged)', async () => {
    const own = await freshPgDatabase('pg_ingest_batch_8k');
    try {
      const sandboxId = (
        await own.conn.pool.query<{ id: number }>(
          "INSERT INTO sandboxes (name, created_at) VALUES ('timing', 1) RETURNING id",
        )
      ).rows[0]!.id;
      const records = newProfiles(0, 8_000);
      const events = eventsFor(0, 8_000, 't');
      const t0 = performance.now();
      const profiles = await ingestProfilesPooled(own.conn, sandboxId, records, { catalog, limits });
      const t1 = performance.now();
      const stored = await ingestEventsPooled(own.conn, sandboxId, events, { catalog, limits });
      const t2 = performance.now();
      const updates = records.map((r) => ({ ...r, attributes: { loyalty: { tier: 'gold' } } }));
      const updated = await ingestProfilesPooled(own.conn, sandboxId, updates, { catalog, limits });
      const t3 = performance.now();
      console.log(
        `pooled ingest on PostgreSQL: 8000 new profiles ${Math.round(t1 - t0)} ms, 8000 events ${Math.round(t2 - t1)} ms, 8000 updates ${Math.round(t3 - t2)} ms; load average ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}`,
      );
      expect(updated.result.profileIds).toEqual(profiles.result.profileIds);
      expect(updated.added).toEqual([]);
      const last = await own.conn.all<{ id: number; attributes: string }>(profileRows);
      expect(last).toHaveLength(8_000);
      expect(JSON.parse(last[7_999]!.attributes)).toEqual({
        loyalty: { points: 7_999, tier: 'gold' },
        person: { name: { firstName: 'P7999' } },
      });
      expect(profiles.result.accepted).toBe(8_000);
      expect(profiles.added).toHaveLength(16_000);
      expect(stored.result.accepted).toBe(8_000);
      expect(stored.created).toEqual([]);
      expect(stored.touched).toEqual(profiles.result.profileIds);
      const rows = await own.conn.all<{ id: number; profileId: number; eventId: string }>(eventRows);
      expect(rows).toHaveLength(8_000);
      expect(rows[7_999]).toMatchObject({ profileId: profiles.result.profileIds[7_999], eventId: 't-7999' });
    } finally {
      await own.drop();
    }
  }, 120_000);
});

/**
 * Requests mixing new records with records of stored profiles, records colliding with an earlier
 * one of the same request, a record naming one identity twice, a stitch and a refusal: the new
 * records are written together, the others one by one, in the request's order.
 */
const MIXED: ProfileRecord[][] = [
  [
    { identities: [email('ann@example.com'), { namespace: 'crm', id: 'A-1' }], attributes: { loyalty: { points: 1 } } },
    { identities: [], attributes: {} },
    { identities: [email('bob@example.com')], attributes: { homeAddress: { city: 'Oslo' } } },
  ],
  [
    { identities: [email('dan@example.com'), email('dan@example.com')], attributes: { loyalty: { tier: 'gold' } } },
    { identities: [email('ann@example.com')], attributes: { loyalty: { points: null, tier: 'silver' } } },
    { identities: [email('eve@example.com')], attributes: { person: { name: { firstName: 'Eve' } } } },
    // Eve's, made two records ago in this request: it merges into her profile.
    { identities: [email('eve2@example.com'), email('eve@example.com')], attributes: { loyalty: { points: 5 } } },
    { identities: [email('fay@example.com')], attributes: { loyalty: { points: 'many' } } },
    { identities: [email('fay@example.com')], attributes: { loyalty: { points: 7 } } },
    // Ann and Bob stitched: Bob's profile joins Ann's.
    {
      identities: [email('bob@example.com'), email('ann@example.com')],
      attributes: { homeAddress: { postalCode: '0150' } },
    },
    { identities: [email('gus@example.com')], attributes: {} },
    // Gus into Ann would make four identities, over the guardrail of three.
    { identities: [email('gus@example.com'), email('bob@example.com')], attributes: {} },
    { identities: [email('hal@example.com')], attributes: { loyalty: { points: 9 } } },
  ],
  [
    // Eve's two and two more: over the guardrail, refused without a write.
    { identities: [email('eve@example.com'), email('eve3@example.com'), email('eve4@example.com')], attributes: {} },
    { identities: [email('hal@example.com'), email('hal2@example.com')], attributes: { loyalty: { points: 10 } } },
    { identities: [email('jo@example.com')], attributes: {} },
    { identities: [email('dan@example.com')], attributes: { loyalty: { tier: null } } },
    // Jo, new two records ago, and Dan, updated one record ago: stitched, Jo's profile into Dan's.
    {
      identities: [email('jo@example.com'), email('dan@example.com')],
      attributes: { person: { name: { firstName: 'Dan' } } },
    },
    // Ann twice, by two identities: the second merges into what the first wrote.
    { identities: [email('ann@example.com')], attributes: { person: { name: { lastName: 'Lee' } } } },
    { identities: [{ namespace: 'crm', id: 'A-1' }], attributes: { homeAddress: { city: 'Bergen' } } },
  ],
];

const MIXED_EVENTS: EventInput[][] = [
  [
    { id: 'e1', identity: email('ann@example.com'), timestamp: '2026-12-01T10:00:00Z', eventType: 'web.pageView' },
    { id: 'e2', identity: email('ivy@example.com'), timestamp: '2026-12-01T10:01:00Z', eventType: 'web.pageView' },
    { id: 'e2', identity: email('ivy@example.com'), timestamp: '2026-12-01T10:01:00Z', eventType: 'web.pageView' },
    { id: 'e3', identity: email('hal@example.com'), timestamp: '2026-12-01T10:02:00Z', eventType: 'commerce.purchase' },
  ],
  [
    // A new identity whose only event is stored already: its profile is made, not touched.
    { id: 'e1', identity: email('kim@example.com'), timestamp: '2026-12-01T10:00:00Z', eventType: 'web.pageView' },
    { identity: email('ann@example.com'), timestamp: '2026-12-02T10:00:00Z', eventType: 'web.formFilled' },
    { id: 'e9', identity: email('ann@example.com'), timestamp: 'soon', eventType: 'web.pageView' },
    { id: 'e4', identity: email('ivy@example.com'), timestamp: '2026-12-02T11:00:00Z', eventType: 'commerce.purchase' },
    { id: 'e5', identity: email('eve2@example.com'), timestamp: '2026-12-02T12:00:00Z', eventType: 'web.pageView' },
  ],
];

interface Run {
  results: IngestResult[];
  /** Per request: the profiles it changed, the identities it stored first (profiles), or touched (events). */
  handOffs: unknown[];
  store: Store;
}

async function stateOf({ results, handOffs, store }: Run) {
  return {
    results,
    handOffs,
    profiles: await storedProfiles(store),
    identities: await store.all(identityRows),
    events: await storedEvents(store, eventRows),
  };
}

describeOnPostgres('pooled ingest of mixed requests', 'pg_ingest_batch_mixed', () => {
  it('gives what the synchronous ingest gives, ids and order included', async () => {
    const reference = openDatabase(':memory:');
    const pooledSqlite = openDatabase(':memory:');
    // A database of its own: the ids it assigns are compared with SQLite's.
    const own = await freshPgDatabase('pg_ingest_batch_mixed');
    try {
      const runs: Run[] = [];
      {
        const sandboxId = (await createSandbox(reference, 'mixed')).id;
        const run: Run = { results: [], handOffs: [], store: reference };
        for (const [i, records] of MIXED.entries()) {
          let handOff: unknown;
          run.results.push(
            ingestProfiles(reference, sandboxId, records, {
              limits,
              now: 10_000 + i * 1_000,
              onIdentitiesAdded: (_s, added) => {
                handOff = { added };
                return undefined;
              },
              onProfilesChanged: (_s, changed) => {
                handOff = { ...(handOff as object), changed };
                return undefined;
              },
            }),
          );
          run.handOffs.push(handOff);
        }
        for (const [i, events] of MIXED_EVENTS.entries()) {
          run.results.push(
            ingestEvents(reference, sandboxId, events, {
              limits,
              now: 20_000 + i * 1_000,
              onProfilesChanged: (_s, touched) => {
                run.handOffs.push({ touched });
                return undefined;
              },
            }),
          );
        }
        runs.push(run);
      }
      const pgSandbox = (
        await own.conn.pool.query<{ id: number }>(
          "INSERT INTO sandboxes (name, created_at) VALUES ('mixed', 1) RETURNING id",
        )
      ).rows[0]!.id;
      for (const [store, sandboxId] of [
        [pooledSqlite, (await createSandbox(pooledSqlite, 'mixed')).id],
        [own.conn, pgSandbox],
      ] as const) {
        const run: Run = { results: [], handOffs: [], store };
        for (const [i, records] of MIXED.entries()) {
          const done = await ingestProfilesPooled(store, sandboxId, records, {
            catalog,
            limits,
            now: 10_000 + i * 1_000,
          });
          run.results.push(done.result);
          run.handOffs.push({ added: done.added, changed: done.changed });
        }
        for (const [i, events] of MIXED_EVENTS.entries()) {
          const done = await ingestEventsPooled(store, sandboxId, events, { catalog, limits, now: 20_000 + i * 1_000 });
          run.results.push(done.result);
          run.handOffs.push({ touched: done.touched });
        }
        runs.push(run);
      }
      const [expected, ...others] = await Promise.all(runs.map(stateOf));
      for (const other of others) expect(other).toEqual(expected);

      // And what that is, so the three cannot agree on something wrong.
      expect(expected!.results.map((r) => [r.accepted, r.duplicates, r.errors.map((e) => [e.index, e.code])])).toEqual([
        [2, 0, [[1, 'BAD_USER_INPUT']]],
        [
          8,
          0,
          [
            [4, 'BAD_USER_INPUT'],
            [8, 'GUARDRAIL'],
          ],
        ],
        [6, 0, [[0, 'GUARDRAIL']]],
        [4, 1, []],
        [4, 1, [[2, 'BAD_USER_INPUT']]],
      ]);
      // Ann 1, Bob 2 (joined into Ann), Dan 3, Eve 4, Fay 5, Gus 6, Hal 7, Jo 8 (joined into
      // Dan), Ivy 9, Kim 10.
      expect(expected!.results.map((r) => r.profileIds)).toEqual([
        [1, 2],
        [3, 1, 4, 4, 5, 1, 6, 7],
        [7, 8, 3, 3, 1, 1],
        [1, 9, 9, 7],
        [10, 1, 9, 4],
      ]);
      expect(expected!.handOffs[1]).toEqual({
        added: [
          { namespace: 'email', value: 'dan@example.com', profileId: 3 },
          { namespace: 'email', value: 'eve@example.com', profileId: 4 },
          { namespace: 'email', value: 'eve2@example.com', profileId: 4 },
          { namespace: 'email', value: 'fay@example.com', profileId: 5 },
          { namespace: 'email', value: 'gus@example.com', profileId: 6 },
          { namespace: 'email', value: 'hal@example.com', profileId: 7 },
        ],
        changed: [3, 1, 4, 5, 6, 7],
      });
      expect(expected!.handOffs[2]).toEqual({
        added: [
          { namespace: 'email', value: 'hal2@example.com', profileId: 7 },
          { namespace: 'email', value: 'jo@example.com', profileId: 8 },
        ],
        changed: [7, 8, 3, 1],
      });
      expect(expected!.handOffs[4]).toEqual({ touched: [1, 9, 4] });
      expect(expected!.profiles.map((p) => p.id)).toEqual([1, 3, 4, 5, 6, 7, 9, 10]);
      expect(expected!.profiles[1]).toMatchObject({
        attributes: { loyalty: {}, person: { name: { firstName: 'Dan' } } },
        updatedAt: 12_000,
      });
      // Its record at 12_000, an event (e3) at 20_000: the row keeps the record's time (profiles.ts
      // reads the latest ingest off the events).
      expect(expected!.profiles[5]).toMatchObject({ attributes: { loyalty: { points: 10 } }, updatedAt: 12_000 });
      expect(expected!.profiles[0]).toMatchObject({
        attributes: {
          loyalty: { tier: 'silver' },
          homeAddress: { city: 'Bergen', postalCode: '0150' },
          person: { name: { lastName: 'Lee' } },
        },
        updatedAt: 12_000,
      });
      expect(expected!.profiles.find((p) => p.id === 10)).toMatchObject({ attributes: {}, updatedAt: 21_000 });
      expect(expected!.events.map((e) => [e.id, e.profileId, e.eventId])).toEqual([
        [1, 1, 'e1'],
        [2, 9, 'e2'],
        [4, 7, 'e3'],
        [6, 1, 'generated'],
        [7, 9, 'e4'],
        [8, 4, 'e5'],
      ]);
    } finally {
      reference.close();
      pooledSqlite.close();
      await own.drop();
    }
  });
});
