import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { createSegmentDefinition } from '../../src/domain/definitions.js';
import { evaluateProfile } from '../../src/domain/evaluation.js';
import { ingestEventGroup, ingestEvents } from '../../src/domain/event-ingest.js';
import { EventBus } from '../../src/domain/events.js';
import { type EventInput, ingestProfiles, type ProfilesChangedHook } from '../../src/domain/profile-ingest.js';
import { deleteProfile } from '../../src/domain/profiles.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { StreamingSegmentation } from '../../src/domain/streaming.js';
import { streamingWindows } from '../../src/domain/streaming-window.js';
import { createStreamingDefinition } from './streaming-definition.js';

const NOW = Date.parse('2026-11-28T12:00:00Z');
const MINUTE = 60_000;

let dir: string;
let conn: Connection;
let sandboxId: number;
let streaming: StreamingSegmentation;
let buyers: number;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'segql-window-'));
  conn = openDatabase(join(dir, 'segql.db'));
  sandboxId = (await ensureSandbox(conn, 'prod')).id;
  streaming = new StreamingSegmentation({ conn, bus: new EventBus(), log: pino({ level: 'silent' }), sweepMs: 60_000 });
  buyers = await define(
    'buyers',
    'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 24 hours before now].count() >= 3',
  );
});
afterEach(() => {
  conn.close();
  rmSync(dir, { recursive: true, force: true });
});

async function define(name: string, value: string): Promise<number> {
  return (await createStreamingDefinition(conn, sandboxId, name, value, NOW)).audienceId;
}

const person = (name: string) => ({ namespace: 'email', id: `${name}@example.com` });
let n = 0;
function event(who: string, at: number, eventType = 'commerce.purchases'): EventInput {
  return { id: `e${n++}`, identity: person(who), timestamp: new Date(at).toISOString(), eventType, data: {} };
}

/** Ingests as the server does: the streaming step in the transaction, its windows kept after the commit. */
function ingest(events: EventInput[], now: number, into: Connection = conn): void {
  const result = ingestEvents(into, sandboxId, events, {
    now,
    onProfilesChanged: into === conn ? streaming.onProfilesChanged : undefined,
  });
  expect(result.accepted).toBe(events.length);
}

/** Whether streaming left `who` a member of `audienceId`. */
function member(who: string, audienceId: number): boolean {
  return (
    conn.sqlite
      .prepare(
        `SELECT count(*) FROM memberships m JOIN identities i ON i.profile_id = m.profile_id
         WHERE i.value = ? AND m.audience_id = ? AND m.status IN ('REALIZED', 'EXISTING')`,
      )
      .pluck()
      .get(person(who).id, audienceId) === 1
  );
}

/** What evaluating the whole stored profile says at `now`. */
function fresh(who: string, audienceId: number, now: number): boolean {
  return evaluateProfile(conn, sandboxId, person(who), { at: now, audienceIds: [audienceId] }).audienceIds.includes(
    audienceId,
  );
}

describe('streaming windows', () => {
  it('serves a profile ingested before from memory, advanced by the new events', () => {
    ingest([event('ann', NOW - 10 * MINUTE)], NOW);
    const windows = streamingWindows(conn);
    const before = { hits: windows.hits, misses: windows.misses };
    ingest([event('ann', NOW - 5 * MINUTE)], NOW + MINUTE);
    expect(member('ann', buyers)).toBe(false);
    ingest([event('ann', NOW)], NOW + 2 * MINUTE);
    expect(windows.hits - before.hits).toBe(2);
    expect(windows.misses - before.misses).toBe(0);
    expect(member('ann', buyers)).toBe(true);
    // A day later the window has moved past all three.
    ingest([event('ann', NOW + 25 * 60 * MINUTE)], NOW + 25 * 60 * MINUTE);
    expect(member('ann', buyers)).toBe(false);
    expect(fresh('ann', buyers, NOW + 25 * 60 * MINUTE)).toBe(false);
  });

  it('reads the payloads of the events it advanced with, as written', async () => {
    const bigSpenders = await define(
      'big spenders',
      'xEvent[eventType = "commerce.purchases" and commerce.order.priceTotal > 100 and timestamp occurs <= 24 hours before now].count() >= 1',
    );
    const purchase = (at: number, priceTotal: number): EventInput => ({
      ...event('ann', at),
      data: { commerce: { order: { priceTotal } } },
    });
    ingest([purchase(NOW - 10 * MINUTE, 50)], NOW);
    const windows = streamingWindows(conn);
    const misses = windows.misses;
    // From memory: each new event's payload is the one its ingest wrote.
    ingest([purchase(NOW - 5 * MINUTE, 99.5)], NOW + MINUTE);
    expect(member('ann', bigSpenders)).toBe(false);
    ingest([purchase(NOW, 150)], NOW + 2 * MINUTE);
    expect(windows.misses).toBe(misses);
    expect(member('ann', bigSpenders)).toBe(true);
    expect(fresh('ann', bigSpenders, NOW + 2 * MINUTE)).toBe(true);
  });

  it('keeps a window in time order when events arrive out of it', async () => {
    const firstViewed = await define(
      'first viewed',
      'xEvent[timestamp occurs <= 24 hours before now].head().eventType = "web.pageView"',
    );
    ingest([event('ann', NOW - 10 * MINUTE), event('ann', NOW - 5 * MINUTE)], NOW);
    expect(member('ann', firstViewed)).toBe(false);
    // Earlier than both held: it goes first in the window, from memory.
    const windows = streamingWindows(conn);
    const misses = windows.misses;
    ingest([event('ann', NOW - 20 * MINUTE, 'web.pageView')], NOW + MINUTE);
    expect(windows.misses).toBe(misses);
    expect(member('ann', firstViewed)).toBe(true);
    // Between the two: the view stays first.
    ingest([event('ann', NOW - 7 * MINUTE)], NOW + 2 * MINUTE);
    expect(member('ann', firstViewed)).toBe(true);
    expect(fresh('ann', firstViewed, NOW + 2 * MINUTE)).toBe(true);
    // Earlier still, a purchase: now first.
    ingest([event('ann', NOW - 30 * MINUTE)], NOW + 3 * MINUTE);
    expect(member('ann', firstViewed)).toBe(false);
    expect(fresh('ann', firstViewed, NOW + 3 * MINUTE)).toBe(false);
  });

  it('sees the events identity stitching moved onto the surviving profile', () => {
    ingest([event('ann', NOW - 3 * MINUTE), event('bob', NOW - 2 * MINUTE), event('bob', NOW - MINUTE)], NOW);
    expect(member('ann', buyers)).toBe(false);
    // One record naming both joins them into ann's profile, bob's purchases with it.
    ingestProfiles(conn, sandboxId, [{ identities: [person('ann'), person('bob')], attributes: {} }], {
      now: NOW + MINUTE,
      onProfilesChanged: streaming.onProfilesChanged,
    });
    expect(member('ann', buyers)).toBe(true);
    // And the next ingest reads the joined window, not ann's alone.
    ingest([event('ann', NOW + MINUTE, 'web.pageView')], NOW + 2 * MINUTE);
    ingest([event('ann', NOW + 2 * MINUTE)], NOW + 3 * MINUTE);
    expect(member('ann', buyers)).toBe(fresh('ann', buyers, NOW + 3 * MINUTE));
    expect(member('ann', buyers)).toBe(true);
  });

  it('sees events another connection wrote', () => {
    ingest([event('ann', NOW - 3 * MINUTE)], NOW);
    const other = openDatabase(join(dir, 'segql.db'));
    try {
      // Written elsewhere (another process, a worker): no streaming step of this connection saw them.
      ingest([event('ann', NOW - 2 * MINUTE), event('ann', NOW - MINUTE)], NOW, other);
    } finally {
      other.close();
    }
    ingest([event('ann', NOW, 'web.pageView')], NOW + MINUTE);
    ingest([event('ann', NOW + MINUTE)], NOW + 2 * MINUTE);
    expect(fresh('ann', buyers, NOW + 2 * MINUTE)).toBe(true);
    expect(member('ann', buyers)).toBe(true);
  });

  it('sees events this connection wrote without a streaming step', () => {
    ingest([event('ann', NOW - 3 * MINUTE)], NOW);
    // The seeder's path: same connection, no hooks.
    ingestEvents(conn, sandboxId, [event('ann', NOW - 2 * MINUTE), event('ann', NOW - MINUTE)], { now: NOW });
    ingest([event('ann', NOW)], NOW + MINUTE);
    expect(member('ann', buyers)).toBe(true);
  });

  it('keeps nothing of an ingest whose transaction was rolled back', () => {
    ingest([event('ann', NOW - 4 * MINUTE), event('ann', NOW - 3 * MINUTE)], NOW);
    // The streaming step runs (a third purchase: ann enters), then the commit's shared step fails.
    const failing: ProfilesChangedHook = (...args) => {
      streaming.onProfilesChanged(...args);
      throw new Error('shared step failed');
    };
    const [outcome] = ingestEventGroup(conn, [{ sandboxId, events: [event('ann', NOW - 2 * MINUTE)] }], {
      now: NOW,
      onProfilesChanged: failing,
    });
    expect(outcome!.ok).toBe(false);
    expect(conn.sqlite.prepare('SELECT count(*) FROM events').pluck().get()).toBe(2);
    expect(member('ann', buyers)).toBe(false);
    // A page view: still two purchases in the window, not three.
    ingest([event('ann', NOW - MINUTE, 'web.pageView')], NOW + MINUTE);
    expect(member('ann', buyers)).toBe(false);
    // Neither the event nor the membership the rolled-back evaluation wrote was kept: the real
    // third purchase enters her.
    ingest([event('ann', NOW)], NOW + 2 * MINUTE);
    expect(fresh('ann', buyers, NOW + 2 * MINUTE)).toBe(true);
    expect(member('ann', buyers)).toBe(true);
  });

  it('sees events written after a rolled-back ingest, whose ids they take again', () => {
    ingest([event('ann', NOW - 4 * MINUTE)], NOW);
    // bob's streaming step reads past the id of his event, then the commit's shared step fails.
    const failing: ProfilesChangedHook = (...args) => {
      streaming.onProfilesChanged(...args);
      throw new Error('shared step failed');
    };
    const [outcome] = ingestEventGroup(conn, [{ sandboxId, events: [event('bob', NOW - 3 * MINUTE)] }], {
      now: NOW,
      onProfilesChanged: failing,
    });
    expect(outcome!.ok).toBe(false);
    const top = () => conn.sqlite.prepare('SELECT max(id) FROM events').pluck().get() as number;
    const before = top();
    // The seeder's path (no streaming step) stores ann's second purchase under bob's id.
    ingestEvents(conn, sandboxId, [event('ann', NOW - 2 * MINUTE)], { now: NOW });
    expect(top()).toBe(before + 1);
    // Her third: only a window that holds the second enters her.
    ingest([event('ann', NOW - MINUTE)], NOW + MINUTE);
    expect(fresh('ann', buyers, NOW + MINUTE)).toBe(true);
    expect(member('ann', buyers)).toBe(true);
  });

  it('makes its watches again when the transaction that first made them rolled back', () => {
    const watches = () =>
      conn.sqlite
        .prepare("SELECT count(*) FROM sqlite_temp_master WHERE name LIKE 'segql_window_%'")
        .pluck()
        .get() as number;
    // The first streaming step of the connection makes them inside its ingest's transaction.
    const failing: ProfilesChangedHook = (...args) => {
      streaming.onProfilesChanged(...args);
      throw new Error('shared step failed');
    };
    ingestEventGroup(conn, [{ sandboxId, events: [event('ann', NOW - 3 * MINUTE)] }], {
      now: NOW,
      onProfilesChanged: failing,
    });
    expect(watches()).toBe(0);
    ingest([event('ann', NOW - 2 * MINUTE)], NOW);
    expect(watches()).toBeGreaterThan(0);
  });

  it('reloads the windows when the definitions come to read another event type', async () => {
    ingest([event('ann', NOW - 3 * MINUTE)], NOW);
    // Page views no streaming definition reads yet: the window holds purchases only.
    ingest([event('ann', NOW - 2 * MINUTE, 'web.pageView'), event('ann', NOW - MINUTE, 'web.pageView')], NOW);
    const viewers = await define(
      'viewers',
      'xEvent[eventType = "web.pageView" and timestamp occurs <= 24 hours before now].count() >= 3',
    );
    ingest([event('ann', NOW, 'web.pageView')], NOW + MINUTE);
    expect(fresh('ann', viewers, NOW + MINUTE)).toBe(true);
    expect(member('ann', viewers)).toBe(true);
  });

  it('sees attributes changed without a streaming step', async () => {
    const loyalBuyers = await define(
      'loyal buyers',
      'loyalty.points > 10 and xEvent[eventType = "commerce.purchases" and timestamp occurs <= 24 hours before now].count() >= 1',
    );
    ingest([event('ann', NOW - 3 * MINUTE)], NOW);
    expect(member('ann', loyalBuyers)).toBe(false);
    ingestProfiles(conn, sandboxId, [{ identities: [person('ann')], attributes: { loyalty: { points: 20 } } }], {
      now: NOW,
    });
    ingest([event('ann', NOW - 2 * MINUTE)], NOW + MINUTE);
    expect(fresh('ann', loyalBuyers, NOW + MINUTE)).toBe(true);
    expect(member('ann', loyalBuyers)).toBe(true);
  });

  it('sees memberships written by other paths, on this connection or another', () => {
    ingest([event('ann', NOW - 3 * MINUTE), event('ann', NOW - 2 * MINUTE), event('ann', NOW - MINUTE)], NOW);
    expect(member('ann', buyers)).toBe(true);
    const exit = (on: Connection) =>
      on.sqlite.prepare("UPDATE memberships SET status = 'EXITED' WHERE audience_id = ?").run(buyers);
    // Exited elsewhere (a job, a manual edit): the next ingest finds ann qualifies and enters her again.
    exit(conn);
    ingest([event('ann', NOW)], NOW + MINUTE);
    expect(member('ann', buyers)).toBe(true);
    const other = openDatabase(join(dir, 'segql.db'));
    try {
      exit(other);
    } finally {
      other.close();
    }
    ingest([event('ann', NOW + MINUTE)], NOW + 2 * MINUTE);
    expect(member('ann', buyers)).toBe(true);
    // Its own writes are what it keeps: no reload for them.
    const windows = streamingWindows(conn);
    const misses = windows.misses;
    ingest([event('ann', NOW + 2 * MINUTE)], NOW + 3 * MINUTE);
    expect(windows.misses).toBe(misses);
  });

  it('keeps nothing read before a write later in the same transaction', async () => {
    const otherSandbox = (await ensureSandbox(conn, 'other')).id;
    await createSegmentDefinition(
      conn,
      otherSandbox,
      {
        name: 'any buyer',
        expression: {
          format: 'PQL_TEXT',
          value: 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 24 hours before now].count() >= 1',
        },
        evaluationInfo: { batch: true, streaming: true, edge: false },
        lifecycleState: 'PUBLISHED',
      },
      NOW,
    );
    // After ann's streaming step, the transaction writes more of her purchases by another path;
    // then the other sandbox's streaming step runs.
    const thenMore: ProfilesChangedHook = (...args) => {
      const after = streaming.onProfilesChanged(...args);
      const [sandbox, profileIds] = args;
      if (sandbox !== sandboxId) return after;
      const insert = conn.sqlite.prepare(
        `INSERT INTO events (sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at)
         VALUES (?, ?, ?, 'commerce.purchases', ?, jsonb('{}'), ?)`,
      );
      insert.run(sandboxId, profileIds[0], NOW - 2 * MINUTE, 'late-1', NOW);
      insert.run(sandboxId, profileIds[0], NOW - MINUTE, 'late-2', NOW);
      return after;
    };
    ingestEventGroup(
      conn,
      [
        { sandboxId, events: [event('ann', NOW - 3 * MINUTE, 'web.pageView')] },
        { sandboxId: otherSandbox, events: [event('bob', NOW - 3 * MINUTE)] },
      ],
      { now: NOW, onProfilesChanged: thenMore },
    );
    // One more purchase: three with the late ones, one without.
    ingest([event('ann', NOW)], NOW + MINUTE);
    expect(fresh('ann', buyers, NOW + MINUTE)).toBe(true);
    expect(member('ann', buyers)).toBe(true);
  });

  it('serves each sandbox of a group commit from memory', async () => {
    const otherSandbox = (await ensureSandbox(conn, 'other')).id;
    const otherBuyers = (
      await createSegmentDefinition(
        conn,
        otherSandbox,
        {
          name: 'buyers',
          expression: {
            format: 'PQL_TEXT',
            value: 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 24 hours before now].count() >= 2',
          },
          evaluationInfo: { batch: true, streaming: true, edge: false },
          lifecycleState: 'PUBLISHED',
        },
        NOW,
      )
    ).audienceId;
    const group = (at: number) =>
      ingestEventGroup(
        conn,
        [
          { sandboxId, events: [event('ann', at)] },
          { sandboxId: otherSandbox, events: [event('ann', at)] },
        ],
        { now: at, onProfilesChanged: streaming.onProfilesChanged },
      );
    group(NOW);
    const windows = streamingWindows(conn);
    const misses = windows.misses;
    group(NOW + MINUTE);
    expect(windows.misses).toBe(misses);
    const memberOf = (audienceId: number) =>
      conn.sqlite
        .prepare("SELECT count(*) FROM memberships WHERE audience_id = ? AND status = 'REALIZED'")
        .pluck()
        .get(audienceId);
    expect([memberOf(buyers), memberOf(otherBuyers)]).toEqual([0, 1]);
    group(NOW + 2 * MINUTE);
    expect([memberOf(buyers), memberOf(otherBuyers)]).toEqual([1, 1]);
  });

  it('drops the window of a deleted profile, and keeps at most the configured number', async () => {
    ingest([event('ann', NOW - 3 * MINUTE), event('bob', NOW - 3 * MINUTE)], NOW);
    const windows = streamingWindows(conn);
    expect(windows.size).toBe(2);
    await deleteProfile(conn, sandboxId, person('bob'));
    ingest([event('ann', NOW - 2 * MINUTE)], NOW + MINUTE);
    expect(windows.size).toBe(1);

    const small = new StreamingSegmentation({
      conn,
      bus: new EventBus(),
      log: pino({ level: 'silent' }),
      sweepMs: 60_000,
      windowProfiles: 2,
    });
    ingestEvents(
      conn,
      sandboxId,
      ['cid', 'dan', 'eve'].map((who) => event(who, NOW)),
      {
        now: NOW + 2 * MINUTE,
        onProfilesChanged: small.onProfilesChanged,
      },
    );
    expect(windows.size).toBe(2);
  });
});

describe('a store without streaming definitions', () => {
  it('keeps no windows and puts no triggers on its writes until a streaming definition runs', async () => {
    const other = openDatabase(join(dir, 'other.db'));
    try {
      const otherSandbox = (await ensureSandbox(other, 'prod')).id;
      const triggers = () =>
        other.sqlite
          .prepare("SELECT count(*) FROM sqlite_temp_master WHERE type = 'trigger' AND name LIKE 'segql_window_%'")
          .pluck()
          .get() as number;
      const service = new StreamingSegmentation({
        conn: other,
        bus: new EventBus(),
        log: pino({ level: 'silent' }),
        sweepMs: 60_000,
        windowProfiles: 10,
      });
      const events = [
        {
          id: 'x1',
          identity: person('bo'),
          timestamp: new Date(NOW).toISOString(),
          eventType: 'commerce.purchases',
          data: {},
        },
      ];
      ingestEvents(other, otherSandbox, events, { now: NOW, onProfilesChanged: service.onProfilesChanged });
      expect(triggers()).toBe(0);
      await createSegmentDefinition(
        other,
        otherSandbox,
        {
          name: 'any purchase',
          expression: {
            format: 'PQL_TEXT',
            value: 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 24 hours before now].count() > 0',
          },
          evaluationInfo: { batch: true, streaming: true, edge: false },
          lifecycleState: 'PUBLISHED',
        },
        NOW,
      );
      ingestEvents(other, otherSandbox, [{ ...events[0]!, id: 'x2' }], {
        now: NOW,
        onProfilesChanged: service.onProfilesChanged,
      });
      expect(triggers()).toBeGreaterThan(0);
      // The capacity set before the windows existed is theirs.
      expect(streamingWindows(other).capacity).toBe(10);
    } finally {
      other.close();
    }
  });
});
