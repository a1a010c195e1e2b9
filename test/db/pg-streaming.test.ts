/**
 * Streaming segmentation on a pooled database (src/domain/streaming-pooled.ts): the same sandbox
 * and the same ingests give the same memberships, history, audience sizes and returned changes
 * as SQLite's synchronous streaming step (streaming.ts, through the real StreamingSegmentation
 * hook and its in-memory windows) — SQLite with ingestProfiles/ingestEvents, and the pooled
 * ingest running segmentProfilesPooled inside its unit on PostgreSQL and on SQLite; then the
 * expiry sweep at later instants on each. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import pino from 'pino';
import { expect, it } from 'vitest';
import { type Connection, openDatabase } from '../../src/db/index.js';
import type { Store } from '../../src/db/store.js';
import { ingestEvents } from '../../src/domain/event-ingest.js';
import { checkExpressionSync } from '../../src/domain/expressions.js';
import type { MembershipChange } from '../../src/domain/memberships.js';
import { type ChangedProfiles, ingestEventsPooled, ingestProfilesPooled } from '../../src/domain/pooled-ingest.js';
import { loadProfileDocuments, loadProfileDocumentsOn } from '../../src/domain/profile-documents.js';
import { type EventInput, ingestProfiles, type ProfileRecord } from '../../src/domain/profile-ingest.js';
import { catalogOf } from '../../src/domain/profile-schema.js';
import { createSandbox } from '../../src/domain/sandboxes.js';
import { StreamingSegmentation, streamingEvaluationsTotal, sweepExpired } from '../../src/domain/streaming.js';
import { segmentProfilesPooled, streamingSandboxIds, sweepExpiredPooled } from '../../src/domain/streaming-pooled.js';
import { compilePredicate, PqlError, STREAMING_WINDOW_MS } from '../../src/pql/index.js';
import { createStreamingDefinition } from '../domain/streaming-definition.js';
import { pgCopyOf } from './pg-test-database.js';
import { describeOnPostgres } from './statements-harness.js';
import { audienceRowsWithName, historyRows, storedMembershipState } from './stored-rows.js';

const HOUR = 3_600_000;
const MINUTE = 60_000;
const T0 = Date.parse('2026-11-28T12:00:00Z');

/** Streaming definitions of every kind the step meets (each made after the audiences it names). */
const DEFINITIONS: [name: string, pql: string][] = [
  // An attribute.
  ['gold', 'loyalty.points > 10'],
  // Events counted in a window (time-dependent).
  ['buyers', 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 24 hours before now].count() >= 2'],
  // Time-dependent: leaves an hour after the purchase, without new data.
  ['recent', 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 1 hour before now].count() >= 1'],
  // Another event type, so that a profile gaining only these meets fewer definitions.
  ['viewers', 'xEvent[eventType = "web.pageView" and timestamp occurs <= 24 hours before now].count() >= 1'],
  // An inSegment chain two deep.
  ['vip', 'inSegment("buyers") and inSegment("gold")'],
  ['vipNow', 'inSegment("vip") and inSegment("recent")'],
  // recent again, written so that PostgreSQL cannot compile it (U+0000 in a text): its sweep
  // there falls back to the JS engine.
  [
    'recentNul',
    'xEvent[eventType = "commerce.purchases" and eventType != "x\\u0000" and timestamp occurs <= 1 hour before now].count() >= 1',
  ],
];

const person = (i: number) => ({ namespace: 'email', id: `p${i}@example.com` });
const purchase = (i: number, ts: number, id: string): EventInput => ({
  id,
  identity: person(i),
  timestamp: new Date(ts).toISOString(),
  eventType: 'commerce.purchases',
  data: { commerce: { order: { priceTotal: 10 } } },
});
const pageView = (i: number, ts: number, id: string): EventInput => ({
  id,
  identity: person(i),
  timestamp: new Date(ts).toISOString(),
  eventType: 'web.pageView',
});

type Step =
  | { kind: 'profiles'; now: number; records: ProfileRecord[] }
  | { kind: 'events'; now: number; events: EventInput[] }
  | { kind: 'sweep'; now: number };

const STEPS: Step[] = [
  {
    kind: 'profiles',
    now: T0,
    records: [0, 1, 2, 3].map((i) => ({ identities: [person(i)], attributes: { loyalty: { points: i * 10 } } })),
  },
  {
    kind: 'events',
    now: T0 + MINUTE,
    events: [
      purchase(1, T0 - 2 * HOUR, 'a1'),
      purchase(1, T0 - 30 * MINUTE, 'a2'),
      purchase(2, T0 - 30 * HOUR, 'a3'), // outside the streaming window
      purchase(2, T0, 'a4'),
      pageView(3, T0, 'a5'),
      purchase(4, T0, 'a6'), // a new profile
      purchase(4, T0 - 3 * HOUR, 'a7'),
    ],
  },
  // Profile 1 turns gold, so vip (buyers and gold) and vipNow (vip and recent).
  {
    kind: 'profiles',
    now: T0 + 2 * MINUTE,
    records: [{ identities: [person(1)], attributes: { loyalty: { points: 50 } } }],
  },
  {
    kind: 'events',
    now: T0 + 3 * MINUTE,
    events: [
      purchase(2, T0 + 2 * MINUTE, 'b1'), // profile 2: buyers, and vip since gold
      pageView(0, T0 + 2 * MINUTE, 'b2'), // profile 0 only gained a page view
      pageView(1, T0 + 2 * MINUTE, 'b3'),
      purchase(2, T0 + 2 * MINUTE, 'b1'), // a duplicate
    ],
  },
  // recent has passed for everyone: vipNow follows through the sweep's second evaluation.
  { kind: 'sweep', now: T0 + 2 * HOUR },
  // buyers has passed too: vip follows.
  { kind: 'sweep', now: T0 + 30 * HOUR },
  // Nothing left to expire.
  { kind: 'sweep', now: T0 + 31 * HOUR },
];

function stateOf(store: Store) {
  return storedMembershipState(store, { history: historyRows, audiences: audienceRowsWithName });
}

/** The SQLite run: the real streaming hook (windows and all) and its sweep. */
function runOnSqlite(conn: Connection, sandboxId: number): MembershipChange[][] {
  const published: MembershipChange[] = [];
  const streaming = new StreamingSegmentation({
    conn,
    bus: { publishAll: (_topic, list) => published.push(...(list as MembershipChange[])) },
    log: pino({ level: 'silent' }),
    sweepMs: 60_000,
  });
  const out: MembershipChange[][] = [];
  for (const step of STEPS) {
    published.length = 0;
    if (step.kind === 'profiles') {
      ingestProfiles(conn, sandboxId, step.records, { now: step.now, onProfilesChanged: streaming.onProfilesChanged });
      out.push([...published]);
    } else if (step.kind === 'events') {
      ingestEvents(conn, sandboxId, step.events, { now: step.now, onProfilesChanged: streaming.onProfilesChanged });
      out.push([...published]);
    } else {
      out.push(sweepExpired(conn, sandboxId, step.now));
    }
  }
  return out;
}

/** The PostgreSQL run: the pooled ingest with the streaming step inside its unit, and the pooled sweep. */
async function runPooled(store: Store, sandboxId: number, catalog: ReturnType<typeof catalogOf>) {
  const out: MembershipChange[][] = [];
  for (const step of STEPS) {
    let changes: MembershipChange[] = [];
    const inUnit = async (tx: Parameters<typeof segmentProfilesPooled>[0], changed: ChangedProfiles) => {
      changes = await segmentProfilesPooled(tx, sandboxId, changed.profileIds, changed.now, {
        added: changed.added,
        written: changed.written,
        cause: 'streaming',
      });
    };
    if (step.kind === 'profiles') {
      await ingestProfilesPooled(store, sandboxId, step.records, { catalog, now: step.now, inUnit });
    } else if (step.kind === 'events') {
      await ingestEventsPooled(store, sandboxId, step.events, { catalog, now: step.now, inUnit });
    } else {
      changes = await sweepExpiredPooled(store, sandboxId, step.now);
    }
    out.push(changes);
  }
  return out;
}

describeOnPostgres('streaming segmentation on a pooled database', 'pg_streaming', () => {
  it('gives the same memberships, history, sizes and changes as SQLite, sweeps included', async () => {
    const reference = openDatabase(':memory:');
    // The pooled code on SQLite too: it names no database.
    const pooledSqlite = openDatabase(':memory:');
    let own: Awaited<ReturnType<typeof pgCopyOf>> | undefined;
    try {
      const sandboxId = (await createSandbox(reference, 'streaming')).id;
      await createSandbox(pooledSqlite, 'streaming');
      for (const [name, pql] of DEFINITIONS) {
        await createStreamingDefinition(reference, sandboxId, name, pql, T0 - HOUR);
        await createStreamingDefinition(pooledSqlite, sandboxId, name, pql, T0 - HOUR);
      }
      // The same sandbox on PostgreSQL, ids and all (a database of its own: ids are compared).
      own = await pgCopyOf(reference.sqlite, 'pg_streaming');
      const catalog = catalogOf(reference, sandboxId);
      expect(await streamingSandboxIds(own.conn)).toEqual([sandboxId]);

      const nul = checkExpressionSync(reference, sandboxId, {
        format: 'PQL_TEXT',
        value: DEFINITIONS.at(-1)![1],
      }).checked;
      expect(() => compilePredicate(nul, { now: T0, dialect: 'postgres' })).toThrow(PqlError);

      const counted = streamingEvaluationsTotal();
      const onPg = await runPooled(own.conn, sandboxId, catalog);
      const evaluatedOnPg = streamingEvaluationsTotal() - counted;
      const onSqlite = runOnSqlite(reference, sandboxId);
      expect(onPg).toEqual(onSqlite);
      // The same definitions met per profile (a profile that gained page views only meets fewer).
      expect(streamingEvaluationsTotal() - counted - evaluatedOnPg).toBe(evaluatedOnPg);
      expect(await runPooled(pooledSqlite, sandboxId, catalog)).toEqual(onSqlite);
      const expected = await stateOf(reference);
      expect(await stateOf(own.conn)).toEqual(expected);
      expect(await stateOf(pooledSqlite)).toEqual(expected);

      // And what that is, so the two cannot agree on something wrong.
      const audienceId = new Map(
        expected.audiences.map((a) => [(a as { name: string }).name, (a as { id: number }).id]),
      );
      const moves = (changes: MembershipChange[]) =>
        changes
          .map((c) => `${[...audienceId].find(([, id]) => id === c.audienceId)![0]}:${c.profileId}:${c.to}:${c.cause}`)
          .filter((m) => !m.startsWith('recentNul:'))
          .sort();
      // recentNul moves as recent does, on both.
      for (const changes of onSqlite) {
        const of = (name: string) =>
          changes.filter((c) => c.audienceId === audienceId.get(name)).map((c) => [c.profileId, c.to, c.cause]);
        expect(of('recentNul')).toEqual(of('recent'));
      }
      // Person i is profile i + 1; the new person 4 is profile 5.
      // Profiles: points 20 and 30 are gold.
      expect(moves(onSqlite[0]!)).toEqual(['gold:3:REALIZED:streaming', 'gold:4:REALIZED:streaming']);
      // Events: 2 buys twice in a day, once in the hour; 3 once in the window (its other purchase
      // is older than the streaming window); the new 5 twice; 4 views a page.
      expect(moves(onSqlite[1]!)).toEqual([
        'buyers:2:REALIZED:streaming',
        'buyers:5:REALIZED:streaming',
        'recent:2:REALIZED:streaming',
        'recent:3:REALIZED:streaming',
        'recent:5:REALIZED:streaming',
        'viewers:4:REALIZED:streaming',
      ]);
      // 2 turns gold: the chain follows in the same step.
      expect(moves(onSqlite[2]!)).toEqual([
        'gold:2:REALIZED:streaming',
        'vip:2:REALIZED:streaming',
        'vipNow:2:REALIZED:streaming',
      ]);
      expect(moves(onSqlite[3]!)).toEqual([
        'buyers:3:REALIZED:streaming',
        'viewers:1:REALIZED:streaming',
        'viewers:2:REALIZED:streaming',
        'vip:3:REALIZED:streaming',
        'vipNow:3:REALIZED:streaming',
      ]);
      // Two hours on: the hour has passed for every purchase; vipNow follows in the second pass.
      expect(moves(onSqlite[4]!)).toEqual([
        'recent:2:EXITED:expiry',
        'recent:3:EXITED:expiry',
        'recent:5:EXITED:expiry',
        'vipNow:2:EXITED:expiry',
        'vipNow:3:EXITED:expiry',
      ]);
      // A day on: the counts and views have left their windows; vip follows.
      expect(moves(onSqlite[5]!)).toEqual([
        'buyers:2:EXITED:expiry',
        'buyers:3:EXITED:expiry',
        'buyers:5:EXITED:expiry',
        'viewers:1:EXITED:expiry',
        'viewers:2:EXITED:expiry',
        'viewers:4:EXITED:expiry',
        'vip:2:EXITED:expiry',
        'vip:3:EXITED:expiry',
      ]);
      expect(onSqlite[6]).toEqual([]);

      // A step that fails after streaming takes the streaming writes back with the ingest's.
      const later = T0 + 31 * HOUR;
      const before = await stateOf(own.conn);
      await expect(
        ingestEventsPooled(own.conn, sandboxId, [purchase(0, later, 'c1'), purchase(0, later, 'c2')], {
          catalog,
          now: later + MINUTE,
          inUnit: async (tx, changed) => {
            const changes = await segmentProfilesPooled(tx, sandboxId, changed.profileIds, changed.now, {
              added: changed.added,
              cause: 'streaming',
            });
            expect(changes.length).toBeGreaterThan(0);
            throw new Error('after streaming');
          },
        }),
      ).rejects.toThrow('after streaming');
      expect(await stateOf(own.conn)).toEqual(before);

      // No window in memory: events another node wrote are read with the rest.
      for (const id of ['n1', 'n2']) {
        await own.conn.pool.query(
          `INSERT INTO events (sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at)
           VALUES ($1, 1, $2, 'commerce.purchases', $3, '{}', $2)`,
          [sandboxId, later, id],
        );
      }
      let changes: MembershipChange[] = [];
      await ingestProfilesPooled(own.conn, sandboxId, [{ identities: [person(0)], attributes: {} }], {
        catalog,
        now: later + MINUTE,
        inUnit: async (tx, changed) => {
          changes = await segmentProfilesPooled(tx, sandboxId, changed.profileIds, changed.now, { cause: 'streaming' });
        },
      });
      expect(moves(changes)).toEqual(['buyers:1:REALIZED:streaming', 'recent:1:REALIZED:streaming']);

      // Ingests and a sweep of one sandbox at once, from several clients: serialised by the
      // sandbox's ingest lock, so no transition is written twice and every size matches its members.
      const soon = later + 10 * MINUTE;
      await Promise.all([
        ...[0, 1, 2, 3].map((n) =>
          ingestEventsPooled(own!.conn, sandboxId, [purchase(3, soon, `r${n}`)], {
            catalog,
            now: soon,
            inUnit: async (tx, changed) => {
              await segmentProfilesPooled(tx, sandboxId, changed.profileIds, changed.now, {
                added: changed.added,
                cause: 'streaming',
              });
            },
          }),
        ),
        sweepExpiredPooled(own.conn, sandboxId, soon),
      ]);
      const after = await stateOf(own.conn);
      const last = new Map<string, string>();
      for (const h of after.history as { audienceId: number; profileId: number; toStatus: string }[]) {
        const key = `${h.audienceId}:${h.profileId}`;
        expect(last.get(key), key).not.toBe(h.toStatus);
        last.set(key, h.toStatus);
      }
      for (const a of after.audiences as { id: number; size: number }[]) {
        const current = (after.memberships as { audienceId: number; status: string }[]).filter(
          (m) => m.audienceId === a.id && m.status !== 'EXITED',
        );
        expect(a.size, `audience ${a.id}`).toBe(current.length);
      }
      expect(
        moves(
          (after.history as { audienceId: number; profileId: number; toStatus: string; at: number; cause: string }[])
            .filter((h) => h.at === soon)
            .map((h) => ({ ...h, to: h.toStatus }) as unknown as MembershipChange),
        ),
      ).toEqual([
        'buyers:4:REALIZED:streaming',
        'recent:4:REALIZED:streaming',
        'vip:4:REALIZED:streaming', // gold already
        'vipNow:4:REALIZED:streaming',
      ]);
    } finally {
      reference.close();
      pooledSqlite.close();
      await own?.drop();
    }
  });

  it('reads the same profile documents from both databases', async () => {
    const reference = openDatabase(':memory:');
    let own: Awaited<ReturnType<typeof pgCopyOf>> | undefined;
    try {
      const sandboxId = (await createSandbox(reference, 'documents')).id;
      const other = (await createSandbox(reference, 'other')).id;
      ingestProfiles(
        reference,
        sandboxId,
        [0, 1, 2].map((i) => ({ identities: [person(i)], attributes: { loyalty: { points: i * 1.5, tier: 'ü' } } })),
        { now: T0 },
      );
      ingestProfiles(reference, other, [{ identities: [person(9)], attributes: {} }], { now: T0 });
      ingestEvents(
        reference,
        sandboxId,
        [
          purchase(0, T0 - 2 * HOUR, 'd1'),
          pageView(0, T0 - 2 * HOUR, 'd2'), // the same instant: (ts, id) order
          purchase(0, T0 - 30 * HOUR, 'd3'),
          pageView(1, T0, 'd4'),
        ],
        { now: T0 },
      );
      ingestEvents(reference, other, [purchase(9, T0, 'd5')], { now: T0 });
      const run = (text: string, ...params: unknown[]) => reference.sqlite.prepare(text).run(...params);
      run(
        `INSERT INTO audiences (sandbox_id, name, name_key, namespace, origin, lifecycle_state, size, created_at, updated_at)
         VALUES (?, 'Listed', 'listed', 'segql', 'UPLOAD', 'PUBLISHED', 2, 1, 1)`,
        sandboxId,
      );
      run(
        `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, last_evaluated_at, payload)
         VALUES (?, 1, 1, 'EXISTING', 1, '{"rank": 2, "note": "a b"}'), (?, 1, 2, 'EXITED', 1, NULL)`,
        sandboxId,
        sandboxId,
      );
      own = await pgCopyOf(reference.sqlite, 'pg_documents');
      const ids = [1, 2, 3, 4, 99];
      const cases: [number, ReadonlySet<string> | null][] = [
        [Number.MIN_SAFE_INTEGER, null],
        [T0 - STREAMING_WINDOW_MS, null],
        [T0 - STREAMING_WINDOW_MS, new Set(['commerce.purchases'])],
        [Number.MIN_SAFE_INTEGER, new Set(['web.pageView', 'commerce.purchases'])],
        [Number.MIN_SAFE_INTEGER, new Set()],
      ];
      for (const [since, types] of cases) {
        const expected = loadProfileDocuments(reference, sandboxId, ids, since, types);
        expect(await loadProfileDocumentsOn(own.conn, sandboxId, ids, since, types)).toEqual(expected);
        expect(await loadProfileDocumentsOn(reference, sandboxId, ids, since, types)).toEqual(expected);
      }
      // And what that is: the other sandbox's profile left out, payloads parsed, EXITED not a membership.
      const docs = loadProfileDocuments(reference, sandboxId, ids);
      expect([...docs.keys()]).toEqual([1, 2, 3]);
      expect(docs.get(1)!.events.map((e) => [e.eventType, e.timestamp])).toEqual([
        ['commerce.purchases', T0 - 30 * HOUR],
        ['commerce.purchases', T0 - 2 * HOUR],
        ['web.pageView', T0 - 2 * HOUR],
      ]);
      expect(docs.get(1)!.payloads.get(1)).toEqual({ rank: 2, note: 'a b' });
      expect([...docs.get(2)!.memberships]).toEqual([]);
      expect(docs.get(2)!.statuses.get(1)).toBe('EXITED');
    } finally {
      reference.close();
      await own?.drop();
    }
  });
});
