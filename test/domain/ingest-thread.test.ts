import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_INGEST_LIMITS } from '../../src/config.js';
import { openDatabase } from '../../src/db/index.js';
import { isCorruption } from '../../src/db/integrity.js';
import { createSegmentDefinition } from '../../src/domain/definitions.js';
import { DomainError } from '../../src/domain/errors.js';
import { EventBus, topics } from '../../src/domain/events.js';
import { IngestService } from '../../src/domain/ingest.js';
import { ThreadIngestWriter } from '../../src/domain/ingest-thread.js';
import { receiveReply, sendReply } from '../../src/domain/ingest-writer.js';
import type { MembershipChange } from '../../src/domain/memberships.js';
import { updateProfileSchema } from '../../src/domain/profile-schema.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { streamingEvaluationsTotal } from '../../src/domain/streaming.js';

const dir = mkdtempSync(join(tmpdir(), 'segql-ingest-thread-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A new store in `file` with a sandbox, and ingestion through its own thread. */
async function threadIngest(file: string) {
  const conn = openDatabase(join(dir, file));
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  const writer = new ThreadIngestWriter({
    conn,
    bus: new EventBus(),
    limits: DEFAULT_INGEST_LIMITS,
    sweepMs: 60_000,
    log: pino({ level: 'silent' }),
  });
  return { conn, sandboxId, writer, ingest: new IngestService({ writer }) };
}

describe('ingest on its own thread', () => {
  it('stores, evaluates and publishes there, the changes on this bus before the request is answered', async () => {
    const conn = openDatabase(join(dir, 'a.db'));
    const sandboxId = (await ensureSandbox(conn, 'prod')).id;
    const definition = await createSegmentDefinition(conn, sandboxId, {
      name: 'buyers',
      expression: {
        format: 'PQL_TEXT',
        value: 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 24 hours before now].count() >= 1',
      },
      evaluationInfo: { batch: true, streaming: true, edge: false },
      lifecycleState: 'PUBLISHED',
    });
    const bus = new EventBus();
    const published: { topic: string; changes: MembershipChange[] }[] = [];
    const publishAll = bus.publishAll.bind(bus);
    bus.publishAll = (topic, payloads) => {
      published.push({ topic, changes: [...payloads] as MembershipChange[] });
      publishAll(topic, payloads);
    };
    const writer = new ThreadIngestWriter({
      conn,
      bus,
      limits: DEFAULT_INGEST_LIMITS,
      sweepMs: 60_000,
      log: pino({ level: 'silent' }),
    });
    const ingest = new IngestService({ writer });
    const evaluationsBefore = streamingEvaluationsTotal();
    try {
      const event = (id: string, who: string) => ({
        id,
        identity: { namespace: 'email', id: who },
        eventType: 'commerce.purchases',
        timestamp: new Date().toISOString(),
      });
      const [a, b] = await Promise.all([
        ingest.events(sandboxId, [event('e1', 'ann@example.com')]),
        ingest.events(sandboxId, [
          event('e2', 'bob@example.com'),
          { ...event('e3', 'cat@example.com'), eventType: '' },
        ]),
      ]);
      expect(a).toMatchObject({ accepted: 1, rejected: 0 });
      expect(b).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, message: 'eventType is empty' }] });
      // Written by the thread's connection, read here through this one.
      expect(conn.sqlite.prepare('SELECT event_id FROM events ORDER BY event_id').pluck().all()).toEqual(['e1', 'e2']);
      const profileIds = [...a.profileIds, ...b.profileIds];
      // Both changes reached this thread's bus, on the sandbox's topic, before the answers.
      expect(published.map((p) => p.topic)).toEqual([topics.memberships(sandboxId)]);
      expect(published[0]!.changes.map((c) => [c.audienceId, c.profileId, c.from, c.to, c.cause])).toEqual(
        profileIds.map((id) => [definition.audienceId, id, null, 'REALIZED', 'streaming']),
      );
      // The thread's evaluations count in this process's metrics.
      expect(streamingEvaluationsTotal() - evaluationsBefore).toBe(2);
    } finally {
      await ingest.close();
      conn.close();
    }
  });

  it('checks events on this thread against its catalogue, which a schema change here moves at once', async () => {
    const { conn, sandboxId, ingest } = await threadIngest('c.db');
    const event = (id: string, data: unknown) => ({
      id,
      identity: { namespace: 'email', id: 'ann@example.com' },
      eventType: 'commerce.purchases',
      timestamp: new Date().toISOString(),
      data,
    });
    try {
      const before = await ingest.events(sandboxId, [event('e1', { giftWrap: true }), event('e2', {})]);
      expect(before).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 0, code: 'BAD_USER_INPUT' }] });
      expect(before.errors[0]!.message).toMatch(/Unknown field "giftWrap"/);
      await updateProfileSchema(conn, sandboxId, [{ class: 'event', path: 'giftWrap', type: 'boolean' }]);
      // Checked before it was sent, against the catalogue the change just updated.
      const after = await ingest.events(sandboxId, [event('e3', { giftWrap: true }), event('e4', { giftWrap: 'yes' })]);
      expect(after).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, code: 'BAD_USER_INPUT' }] });
      const stored = conn.sqlite.prepare('SELECT event_id, json(payload) AS p FROM events ORDER BY event_id').all();
      expect(stored).toEqual([
        { event_id: 'e2', p: '{}' },
        { event_id: 'e3', p: '{"giftWrap":true}' },
      ]);
    } finally {
      await ingest.close();
      conn.close();
    }
  });

  it('answers a request the thread died under with an error, and starts another thread for the next', async () => {
    const { conn, sandboxId, writer, ingest } = await threadIngest('b.db');
    const event = (id: string) => ({
      id,
      identity: { namespace: 'email', id: 'ann@example.com' },
      eventType: 'web.pageViews',
      timestamp: new Date().toISOString(),
    });
    try {
      expect(await ingest.events(sandboxId, [event('e1')])).toMatchObject({ accepted: 1 });
      // The thread stops (a crash, say) with a request in flight: the request fails, nothing hangs.
      // A request large enough to be still on the thread when it stops, handed to it first: a
      // stop begun before the hand-over raced the thread's exit, after which the request went to
      // a new thread and was written.
      const thread = (writer as unknown as { worker: { terminate(): Promise<number> } }).worker;
      const inFlight = ingest.events(
        sandboxId,
        Array.from({ length: 1_000 }, (_, i) => event(`e2-${i}`)),
      );
      await new Promise((resolve) => setImmediate(resolve));
      await thread.terminate();
      await expect(inFlight).rejects.toThrow(/ingest thread stopped/);
      // Another thread is started without waiting for an ingest (it runs the sweep of expired members).
      const next = writer as unknown as { worker?: unknown };
      for (let waited = 0; waited < 5_000 && !next.worker; waited += 50) await new Promise((r) => setTimeout(r, 50));
      expect(next.worker).toBeDefined();
      // The next request starts a new thread and is written; the first request's event is there once.
      expect(await ingest.events(sandboxId, [event('e3'), event('e1')])).toMatchObject({ accepted: 2, duplicates: 1 });
      const stored = conn.sqlite.prepare('SELECT event_id FROM events ORDER BY event_id').pluck().all() as string[];
      expect(stored.filter((id) => !id.startsWith('e2-'))).toEqual(['e1', 'e3']);
    } finally {
      await ingest.close();
      conn.close();
    }
  });

  it('keeps an error DomainError or SQLite across the thread, codes and all', () => {
    const corrupt = Object.assign(new Error('database disk image is malformed'), { code: 'SQLITE_CORRUPT' });
    const sent = sendReply({
      busy: false,
      outcomes: [
        { ok: false, error: new DomainError('RATE_LIMITED', 'later', { retryAfterSeconds: 1 }) },
        { ok: false, error: corrupt },
        { ok: false, error: 'a string' },
      ],
    });
    // What a port carries: plain data.
    const received = receiveReply(structuredClone(sent));
    if (received.busy) throw new Error('not busy');
    const [domain, sqlite, other] = received.outcomes.map((o) => (o.ok ? undefined : o.error)) as Error[];
    expect(domain).toBeInstanceOf(DomainError);
    expect(domain).toMatchObject({ code: 'RATE_LIMITED', message: 'later', extensions: { retryAfterSeconds: 1 } });
    expect(isCorruption(sqlite)).toBe(true);
    expect(sqlite!.message).toBe('database disk image is malformed');
    expect(other!.message).toBe('a string');
  });
});
