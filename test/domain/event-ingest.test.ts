import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_INGEST_LIMITS } from '../../src/config.js';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { createSegmentDefinition } from '../../src/domain/definitions.js';
import { type EventRequest, ingestEventGroup } from '../../src/domain/event-ingest.js';
import { EventBus } from '../../src/domain/events.js';
import { IngestService } from '../../src/domain/ingest.js';
import { ThreadIngestWriter } from '../../src/domain/ingest-thread.js';
import {
  type GroupReply,
  GroupsInOrder,
  type IngestWrite,
  type IngestWriter,
  LocalIngestWriter,
} from '../../src/domain/ingest-writer.js';
import type { EventInput, ProfilesChangedHook } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import type { StreamingSegmentation } from '../../src/domain/streaming.js';
import { segmentProfiles } from '../../src/domain/streaming.js';

const NOW = Date.parse('2026-12-05T12:00:00Z');

async function setup() {
  const conn = openDatabase(':memory:');
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  return { conn, sandboxId };
}

const purchase = (id: string, who: string): EventInput => ({
  id,
  identity: { namespace: 'email', id: `${who}@example.com` },
  timestamp: new Date(NOW - 60_000).toISOString(),
  eventType: 'commerce.purchases',
  data: {},
});

function storedEventIds(conn: ReturnType<typeof openDatabase>): string[] {
  return (conn.sqlite.prepare('SELECT event_id FROM events ORDER BY event_id').pluck().all() as string[]).sort();
}

describe('group commit of event ingests', () => {
  it('gives two requests committed together their own answers, the bad row reported to its own request', async () => {
    const { conn, sandboxId } = await setup();
    const bad = { ...purchase('b2', 'bob'), timestamp: 'yesterday' };
    const outcomes = ingestEventGroup(
      conn,
      [
        { sandboxId, events: [purchase('a1', 'ann'), purchase('a2', 'ann')] },
        { sandboxId, events: [purchase('b1', 'bob'), bad, purchase('b3', 'cat')] },
      ],
      { now: NOW },
    );
    expect(outcomes.map((o) => o.ok)).toEqual([true, true]);
    const [a, b] = outcomes.map((o) => (o.ok ? o.result : undefined));
    expect(a).toMatchObject({ accepted: 2, rejected: 0, errors: [] });
    expect(b).toMatchObject({ accepted: 2, rejected: 1 });
    expect(b!.errors).toEqual([expect.objectContaining({ index: 1, code: 'BAD_USER_INPUT' })]);
    expect(storedEventIds(conn)).toEqual(['a1', 'a2', 'b1', 'b3']);
    // Three profiles, touched once each at the commit's instant.
    expect(conn.sqlite.prepare('SELECT count(*) FROM profiles WHERE updated_at = ?').pluck().get(NOW)).toBe(3);
  });

  it('undoes a request that fails part way, and only it: nothing of it is half-written', async () => {
    const { conn, sandboxId } = await setup();
    // A storage failure on the second event of the second request, after its first was written.
    conn.sqlite.exec(
      `CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.event_id = 'poison'
       BEGIN SELECT RAISE(ABORT, 'disk says no'); END`,
    );
    const outcomes = ingestEventGroup(
      conn,
      [
        { sandboxId, events: [purchase('a1', 'ann')] },
        { sandboxId, events: [purchase('b1', 'bob'), purchase('poison', 'bob')] },
        { sandboxId, events: [purchase('c1', 'cat')] },
      ],
      { now: NOW },
    );
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
    expect(String((outcomes[1] as { error: unknown }).error)).toMatch(/disk says no/);
    expect(storedEventIds(conn)).toEqual(['a1', 'c1']);
    // bob's profile and identity, made by the failed request, are gone with it.
    expect(conn.sqlite.prepare("SELECT count(*) FROM identities WHERE value = 'bob@example.com'").pluck().get()).toBe(
      0,
    );
    expect(conn.sqlite.prepare('SELECT count(*) FROM profiles').pluck().get()).toBe(2);
  });

  it('refuses an oversized request alone and commits the others', async () => {
    const { conn, sandboxId } = await setup();
    const limits = { ...DEFAULT_INGEST_LIMITS, maxBatch: 2 };
    const outcomes = ingestEventGroup(
      conn,
      [
        { sandboxId, events: [purchase('a1', 'ann'), purchase('a2', 'ann'), purchase('a3', 'ann')] },
        { sandboxId, events: [purchase('b1', 'bob')] },
      ],
      { now: NOW, limits },
    );
    expect(outcomes[0]).toMatchObject({ ok: false });
    expect(String((outcomes[0] as { error: unknown }).error)).toMatch(/At most 2 events per call, got 3/);
    expect(outcomes[1]).toMatchObject({ ok: true, result: { accepted: 1 } });
    expect(storedEventIds(conn)).toEqual(['b1']);
  });

  it('tries each request alone when the shared streaming step fails, so one cannot fail the others', async () => {
    const { conn, sandboxId } = await setup();
    const calls: number[][] = [];
    // Fails whenever cat's profile is among the changed ones.
    const onProfilesChanged: ProfilesChangedHook = (_sandbox, profileIds) => {
      calls.push([...profileIds]);
      const cat = conn.sqlite
        .prepare("SELECT profile_id FROM identities WHERE value = 'cat@example.com'")
        .pluck()
        .get();
      if (profileIds.includes(cat as number)) throw new Error('streaming failed for cat');
      return undefined;
    };
    const requests: EventRequest[] = [
      { sandboxId, events: [purchase('a1', 'ann')] },
      { sandboxId, events: [purchase('c1', 'cat')] },
      { sandboxId, events: [purchase('b1', 'bob')] },
    ];
    const outcomes = ingestEventGroup(conn, requests, { now: NOW, onProfilesChanged });
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
    expect(storedEventIds(conn)).toEqual(['a1', 'b1']);
    // Once for the group (rolled back), then once per request alone.
    expect(calls.map((c) => c.length)).toEqual([3, 1, 1, 1]);
  });

  it('evaluates a profile created by one request and found by another of the same commit in full', async () => {
    const { conn, sandboxId } = await setup();
    await createSegmentDefinition(
      conn,
      sandboxId,
      {
        name: 'new people',
        // Reads attributes only: new events alone would not evaluate it.
        expression: { format: 'PQL_TEXT', value: 'loyalty.points.isNull()' },
        evaluationInfo: { batch: true, streaming: true, edge: false },
        lifecycleState: 'PUBLISHED',
      },
      NOW,
    );
    let added: ReadonlyMap<number, ReadonlySet<string>> | undefined;
    const onProfilesChanged: ProfilesChangedHook = (sandbox, profileIds, now, types) => {
      added = types;
      segmentProfiles(conn, sandbox, profileIds, now, 'streaming', types);
      return undefined;
    };
    ingestEventGroup(
      conn,
      [
        { sandboxId, events: [purchase('a1', 'dan')] },
        { sandboxId, events: [{ ...purchase('a2', 'dan'), eventType: 'web.pageViews' }] },
      ],
      { now: NOW, onProfilesChanged },
    );
    expect(added?.size).toBe(0);
    expect(conn.sqlite.prepare('SELECT count(*) FROM memberships').pluck().get()).toBe(1);
  });
});

/** Streaming that evaluates nothing, for tests of the queue alone. */
const quiet = {
  onProfilesChanged: () => undefined,
  publish: () => {},
  start: () => {},
  stop: () => {},
} as unknown as StreamingSegmentation;

describe('event times handed over already read', () => {
  it('stores an instant given as epoch ms as it stores its ISO text, and refuses one out of range', async () => {
    const { conn, sandboxId } = await setup();
    const at = Date.parse('2026-12-05T09:30:00.123+02:00');
    const [outcome] = ingestEventGroup(
      conn,
      [
        {
          sandboxId,
          events: [
            { ...purchase('text', 'ann'), timestamp: '2026-12-05T09:30:00.123+02:00' },
            { ...purchase('ms', 'ann'), timestamp: at },
            { ...purchase('late', 'ann'), timestamp: 253402300800000 },
            { ...purchase('half', 'ann'), timestamp: at + 0.5 },
          ],
        },
      ],
      { now: NOW },
    );
    expect(outcome!.ok && outcome!.result).toMatchObject({ accepted: 2, rejected: 2 });
    expect(outcome!.ok && outcome!.result.errors.map((e) => [e.index, e.code])).toEqual([
      [2, 'BAD_USER_INPUT'],
      [3, 'BAD_USER_INPUT'],
    ]);
    const stored = conn.sqlite.prepare('SELECT event_id, ts FROM events ORDER BY event_id').raw().all();
    expect(stored).toEqual([
      ['ms', at],
      ['text', at],
    ]);
  });

  it('measures the guardrail the same either way: the time counts as its ISO text', async () => {
    const { conn, sandboxId } = await setup();
    const limits = { ...DEFAULT_INGEST_LIMITS, eventRecordBytes: 400 };
    const iso = new Date(NOW).toISOString();
    const sized = (id: string, bytes: number, timestamp: string | number): EventInput => {
      const event = { ...purchase(id, 'ann'), timestamp: iso, data: { channel: '' } };
      const channel = 'x'.repeat(bytes - Buffer.byteLength(JSON.stringify(event)));
      return { ...event, timestamp, data: { channel } };
    };
    const [outcome] = ingestEventGroup(
      conn,
      [
        {
          sandboxId,
          events: [sized('t400', 400, iso), sized('m400', 400, NOW), sized('t401', 401, iso), sized('m401', 401, NOW)],
        },
      ],
      { now: NOW, limits },
    );
    expect(outcome!.ok && outcome!.result.errors.map((e) => [e.index, e.code])).toEqual([
      [2, 'GUARDRAIL'],
      [3, 'GUARDRAIL'],
    ]);
  });
});

describe('IngestService.events', () => {
  it('commits requests made in the same turn together, each resolving with its own result', async () => {
    const { conn, sandboxId } = await setup();
    const groups: number[][] = [];
    const streaming = {
      onProfilesChanged: ((_sandbox, profileIds) => {
        groups.push([...profileIds]);
        return undefined;
      }) as ProfilesChangedHook,
      publish: () => {},
    } as unknown as StreamingSegmentation;
    const ingest = new IngestService({
      writer: new LocalIngestWriter({ conn, limits: DEFAULT_INGEST_LIMITS, streaming }),
    });
    const [a, b] = await Promise.all([
      ingest.events(sandboxId, [purchase('a1', 'ann')]),
      ingest.events(sandboxId, [purchase('b1', 'bob'), { ...purchase('b2', 'bob'), eventType: '' }]),
    ]);
    expect(a).toMatchObject({ accepted: 1, rejected: 0 });
    expect(b).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, message: 'eventType is empty' }] });
    expect(groups.map((g) => g.length)).toEqual([2]);
    // A request made after the commit goes into the next one.
    await ingest.events(sandboxId, [purchase('c1', 'cat')]);
    expect(groups.map((g) => g.length)).toEqual([2, 1]);
  });

  it('rejects only the request that failed', async () => {
    const { conn, sandboxId } = await setup();
    const ingest = new IngestService({
      writer: new LocalIngestWriter({ conn, limits: { ...DEFAULT_INGEST_LIMITS, maxBatch: 1 }, streaming: quiet }),
    });
    const results = await Promise.allSettled([
      ingest.events(sandboxId, [purchase('a1', 'ann'), purchase('a2', 'ann')]),
      ingest.events(sandboxId, [purchase('b1', 'bob')]),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
    expect(storedEventIds(conn)).toEqual(['b1']);
  });

  it("groups waiting requests up to the writer's cap, never splitting one", async () => {
    // A writer that records the groups it is handed and answers each at once.
    const groups: number[][] = [];
    const writer: IngestWriter = {
      depth: 1,
      groupEvents: 5,
      write(group) {
        groups.push(group.map((w) => (w.kind === 'event' ? w.events.length : -1)));
        return {
          busy: false,
          outcomes: group.map(() => ({
            ok: true as const,
            result: { accepted: 0, rejected: 0, duplicates: 0, errors: [], profileIds: [] },
          })),
        };
      },
      start() {},
      async close() {},
    };
    const ingest = new IngestService({ writer });
    const batch = (n: number, tag: string) => Array.from({ length: n }, (_, i) => purchase(`${tag}${i}`, 'ann'));
    // Read in one turn: all four wait for the same hand-over.
    await Promise.all([
      ingest.events(1, batch(2, 'a')),
      ingest.events(1, batch(3, 'b')),
      ingest.events(1, batch(1, 'c')),
      ingest.events(1, batch(7, 'd')),
    ]);
    // 2 + 3 fill the cap; 1 + 7 would pass it, so the 7 (over the cap alone) goes by itself.
    expect(groups).toEqual([[2, 3], [1], [7]]);
  });

  it('keeps a busy group ahead of the group sent after it, with two in flight', async () => {
    // A writer taking two groups, as the ingest thread does, written one step at a time by the
    // test; the lock is taken for the first group and free by the time the second is tried.
    const written: string[] = [];
    const queue: { epoch: number; group: IngestWrite[]; resolve(reply: GroupReply): void }[] = [];
    const inOrder = new GroupsInOrder();
    let epoch = 0;
    let locked = true;
    const writer: IngestWriter = {
      depth: 2,
      groupEvents: 200,
      write(group) {
        const sentEpoch = epoch;
        return new Promise<GroupReply>((resolve) =>
          queue.push({
            epoch: sentEpoch,
            group,
            resolve: (reply) => {
              if (reply.busy) epoch = Math.max(epoch, sentEpoch + 1);
              resolve(reply);
            },
          }),
        );
      },
      start() {},
      async close() {},
    };
    const step = async () => {
      const next = queue.shift()!;
      next.resolve(
        inOrder.write(next.epoch, () => {
          if (locked) return { busy: true };
          const ids = next.group.flatMap((w) => (w.kind === 'event' ? w.events.map((e) => e.id!) : []));
          written.push(...ids);
          return {
            busy: false,
            outcomes: next.group.map(() => ({
              ok: true as const,
              result: { accepted: 1, rejected: 0, duplicates: 0, errors: [], profileIds: [] },
            })),
          };
        }),
      );
      await new Promise((resolve) => setImmediate(resolve));
    };
    const ingest = new IngestService({ writer });
    const first = ingest.events(1, [purchase('a', 'ann')]);
    await new Promise((resolve) => setImmediate(resolve));
    const second = ingest.events(1, [purchase('b', 'bob')]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(queue.map((q) => q.group.length)).toEqual([1, 1]);
    await step(); // 'a': busy
    locked = false;
    await step(); // 'b': sent before the busy reply was heard, refused though the lock is free
    expect(written).toEqual([]);
    // Both go again, in order (one group now), once the retry timer fires.
    for (let waited = 0; queue.length === 0 && waited < 1_000; waited += 5) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    while (queue.length > 0) await step();
    await Promise.all([first, second]);
    expect(written).toEqual(['a', 'b']);
  });

  // The same waits whether the group is written on this thread or on the ingest thread.
  describe.each([
    ['on this thread', 'local'],
    ['on the ingest thread', 'thread'],
  ] as const)('while another connection holds the write lock (a job writing its results), %s', (_, where) => {
    const writers: IngestWriter[] = [];
    /** The locked stores' connections and directories, closed and removed once their writers have closed. */
    const stores: { conn: Connection; dir: string }[] = [];
    afterEach(async () => {
      await Promise.all(writers.splice(0).map((w) => w.close()));
      for (const { conn, dir } of stores.splice(0)) {
        conn.sqlite.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
    function writerOf(conn: Connection): IngestWriter {
      const writer =
        where === 'local'
          ? new LocalIngestWriter({ conn, limits: DEFAULT_INGEST_LIMITS, streaming: quiet })
          : new ThreadIngestWriter({
              conn,
              bus: new EventBus(),
              limits: DEFAULT_INGEST_LIMITS,
              sweepMs: 60_000,
              log: pino({ level: 'silent' }),
            });
      writers.push(writer);
      return writer;
    }
    async function locked() {
      const dir = mkdtempSync(join(tmpdir(), 'segql-ingest-lock-'));
      const file = join(dir, 'segql.db');
      const conn = openDatabase(file);
      const sandboxId = (await ensureSandbox(conn, 'prod')).id;
      const other = new Database(file);
      other.exec('BEGIN IMMEDIATE');
      // The ingest thread's connection first: its writer closes in afterEach, then this one.
      stores.push({ conn, dir });
      const cleanup = () => {
        if (other.inTransaction) other.exec('ROLLBACK');
        other.close();
      };
      return { conn, sandboxId, other, cleanup };
    }

    it('waits on a timer, never holding the event loop, and stores the events once the lock is free', async () => {
      const { conn, sandboxId, other, cleanup } = await locked();
      try {
        const ingest = new IngestService({ writer: writerOf(conn) });
        let settled = false;
        const result = ingest.events(sandboxId, [purchase('a1', 'ann')]).finally(() => {
          settled = true;
        });
        // With the connection's 5 s busy wait, this timer would fire only after the wait.
        const started = Date.now();
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(Date.now() - started).toBeLessThan(1_000);
        expect(settled).toBe(false);
        expect(storedEventIds(conn)).toEqual([]);
        // Requests arriving meanwhile keep their order behind the waiting one.
        const later = ingest.events(sandboxId, [purchase('b1', 'bob')]);
        other.exec('COMMIT');
        expect(await result).toMatchObject({ accepted: 1, rejected: 0 });
        expect(await later).toMatchObject({ accepted: 1, rejected: 0 });
        expect(storedEventIds(conn)).toEqual(['a1', 'b1']);
        // The connection's own busy timeout is back for every other write.
        expect(conn.sqlite.pragma('busy_timeout', { simple: true })).toBe(5000);
      } finally {
        cleanup();
      }
    });

    it('keeps profile and event requests in arrival order across the wait', async () => {
      const { conn, sandboxId, other, cleanup } = await locked();
      try {
        const ingest = new IngestService({ writer: writerOf(conn) });
        const record = (tier: string) => ({
          identities: [{ namespace: 'email', id: 'ann@example.com' }],
          attributes: { loyalty: { tier } },
        });
        const first = ingest.profiles(sandboxId, [record('silver')]);
        const events = ingest.events(sandboxId, [purchase('a1', 'ann')]);
        const second = ingest.profiles(sandboxId, [record('gold')]);
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(conn.sqlite.prepare('SELECT count(*) FROM profiles').pluck().get()).toBe(0);
        other.exec('COMMIT');
        const [a, b, c] = await Promise.all([first, events, second]);
        expect([a.accepted, b.accepted, c.accepted]).toEqual([1, 1, 1]);
        // One profile: the events found the profile the first record made, the last record won.
        expect(new Set([...a.profileIds, ...c.profileIds]).size).toBe(1);
        const attributes = conn.sqlite.prepare('SELECT json(attributes) FROM profiles').pluck().all() as string[];
        expect(attributes.map((json) => JSON.parse(json).loyalty.tier)).toEqual(['gold']);
      } finally {
        cleanup();
      }
    });

    it('writes the requests in arrival order while the lock comes and goes under the groups in flight', async () => {
      const { conn, sandboxId, other, cleanup } = await locked();
      other.exec('COMMIT');
      try {
        const ingest = new IngestService({ writer: writerOf(conn) });
        // The other connection takes and frees the lock at random while requests keep coming:
        // a group answered busy has groups sent after it in flight (the thread takes two), which
        // must not be written ahead of it.
        let toggling = true;
        const toggle = (async () => {
          for (let i = 0; toggling; i++) {
            if (other.inTransaction) other.exec('COMMIT');
            else other.exec('BEGIN IMMEDIATE');
            await new Promise((resolve) => setTimeout(resolve, 1 + (i % 4)));
          }
          if (other.inTransaction) other.exec('COMMIT');
        })();
        const sent: Promise<unknown>[] = [];
        for (let i = 0; i < 60; i++) {
          sent.push(ingest.events(sandboxId, [purchase(`e${String(i).padStart(2, '0')}`, `p${i % 7}`)]));
          if (i % 3 === 2) await new Promise((resolve) => setTimeout(resolve, 1));
        }
        const settle = Promise.all(sent);
        await new Promise((resolve) => setTimeout(resolve, 200));
        toggling = false;
        await toggle;
        expect((await settle).every((r) => (r as { accepted: number }).accepted === 1)).toBe(true);
        // Stored in the order sent: the rowids follow the ids.
        const byRow = conn.sqlite.prepare('SELECT event_id FROM events ORDER BY id').pluck().all() as string[];
        expect(byRow).toEqual([...byRow].sort());
        expect(byRow).toHaveLength(60);
      } finally {
        cleanup();
      }
    });

    it('refuses the waiting requests as RATE_LIMITED past the wait, having written nothing', async () => {
      const { conn, sandboxId, cleanup } = await locked();
      try {
        const ingest = new IngestService({ writer: writerOf(conn), writeLockWaitMs: 150 });
        const results = await Promise.allSettled([
          ingest.events(sandboxId, [purchase('a1', 'ann')]),
          ingest.events(sandboxId, [purchase('b1', 'bob')]),
        ]);
        expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
        const error = (results[0] as PromiseRejectedResult).reason as { code: string; extensions: object };
        expect(error.code).toBe('RATE_LIMITED');
        expect(error.extensions).toEqual({ retryAfterSeconds: 1 });
        expect(storedEventIds(conn)).toEqual([]);
      } finally {
        cleanup();
      }
    });
  });
});
