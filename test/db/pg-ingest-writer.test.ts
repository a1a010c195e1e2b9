/**
 * The ingest writer of a pooled database (src/domain/pooled-ingest-writer.ts) against SQLite's
 * (LocalIngestWriter) on the same store: a sandbox with streaming definitions and an external
 * audience whose list names identities no profile has yet, copied to PostgreSQL; the same
 * profiles and events written through each writer publish the same membership changes (pending
 * members first, then streaming, as SQLite orders them) and leave the same memberships. Runs
 * when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/config.js';
import { openDatabase } from '../../src/db/index.js';
import type { Store } from '../../src/db/store.js';
import { createSegmentDefinition } from '../../src/domain/definitions.js';
import type { IngestWrite, IngestWriter } from '../../src/domain/ingest-writer.js';
import { LocalIngestWriter } from '../../src/domain/ingest-writer.js';
import type { MembershipChange } from '../../src/domain/memberships.js';
import { PooledIngestWriter } from '../../src/domain/pooled-ingest-writer.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { publishMembershipChanges, StreamingSegmentation, sweepExpired } from '../../src/domain/streaming.js';
import { ingestCrmList } from './crm-list.js';
import { pgCopyOf } from './pg-test-database.js';
import { describeOnPostgres } from './statements-harness.js';
import { membershipStatuses } from './stored-rows.js';

// The writers stamp changes with the clock: events are placed relative to it.
const NOW = Date.now();
/** Made by the suite, so a run without PostgreSQL leaves none behind. */
let dir: string;

const email = (id: string) => ({ namespace: 'email', id });
const at = (minutes: number) => new Date(NOW - minutes * 60_000).toISOString();

/** Profiles, then events, as the API would send them: each a request of its own. */
const REQUESTS = (sandboxId: number): IngestWrite[] => [
  {
    kind: 'profile',
    sandboxId,
    records: [
      { identities: [email('ann@example.com')], attributes: { loyalty: { tier: 'gold' } } },
      { identities: [email('bob@example.com')], attributes: { loyalty: { tier: 'silver' } } },
    ],
  },
  {
    kind: 'event',
    sandboxId,
    events: [
      { id: 'e1', identity: email('ann@example.com'), timestamp: at(5), eventType: 'commerce.purchases' },
      { id: 'e2', identity: email('carl@example.com'), timestamp: at(3), eventType: 'commerce.purchases' },
      { id: 'e3', identity: email('bob@example.com'), timestamp: at(2), eventType: 'web.pageViews' },
    ],
  },
  {
    kind: 'event',
    sandboxId,
    events: [{ id: 'e4', identity: email('dana@example.com'), timestamp: 'not a time', eventType: 'web.pageViews' }],
  },
];

/** What a change says, without the instant (each writer stamps its own). */
const shape = (c: MembershipChange) => [c.audienceId, c.profileId, c.from, c.to, c.cause];

describeOnPostgres('the ingest writer on a pooled database', 'pg_ingest_writer', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'segql-pg-writer-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('publishes the changes SQLite publishes and leaves the same memberships', async () => {
    const sqlite = openDatabase(join(dir, 'writer.db'));
    const sandboxId = (await ensureSandbox(sqlite, 'prod')).id;
    for (const [name, value] of [
      ['Gold', 'loyalty.tier = "gold"'],
      [
        'Recent buyers',
        'select X from xEvent where X.eventType = "commerce.purchases" and X.timestamp occurs <= 1 hours before now',
      ],
      ['Gold buyers', 'inSegment("Gold") and inSegment("Recent buyers")'],
    ] as const) {
      await createSegmentDefinition(sqlite, sandboxId, {
        name,
        expression: { format: 'PQL_TEXT', value },
        evaluationInfo: { batch: true, streaming: true, edge: false },
      });
    }
    // A list naming Carl and Dana, whose profiles do not exist yet: pending members.
    await ingestCrmList(sqlite, sandboxId, {
      dir,
      name: 'list.csv',
      text: 'email,points\ncarl@example.com,5\ndana@example.com,7\n',
      now: NOW - 60_000,
    });

    const pg = await pgCopyOf(sqlite.sqlite, 'pg_ingest_writer_copy');
    const log = pino({ level: 'silent' });
    const published = (): {
      bus: { publishAll(topic: string, p: readonly unknown[]): void };
      seen: MembershipChange[];
    } => {
      const seen: MembershipChange[] = [];
      return { seen, bus: { publishAll: (_topic, payloads) => seen.push(...(payloads as MembershipChange[])) } };
    };
    try {
      const run = async (writer: IngestWriter) => {
        const outcomes = [];
        for (const request of REQUESTS(sandboxId)) {
          const reply = await writer.write([request]);
          if (reply.busy) throw new Error('busy');
          outcomes.push(...reply.outcomes);
        }
        return outcomes.map((o) => (o.ok ? { accepted: o.result.accepted, rejected: o.result.rejected } : 'failed'));
      };
      const onSqlite = published();
      const local = new LocalIngestWriter({
        conn: sqlite,
        limits: DEFAULT_LIMITS,
        streaming: new StreamingSegmentation({ conn: sqlite, bus: onSqlite.bus, log, sweepMs: 60_000 }),
      });
      const onPg = published();
      const pooled = new PooledIngestWriter({
        store: pg.conn,
        limits: DEFAULT_LIMITS,
        bus: onPg.bus,
        log,
        sweepMs: 60_000,
      });
      const sqliteOutcomes = await run(local);
      const pgOutcomes = await run(pooled);
      expect(pgOutcomes).toEqual(sqliteOutcomes);
      expect(sqliteOutcomes).toEqual([
        { accepted: 2, rejected: 0 },
        { accepted: 3, rejected: 0 },
        { accepted: 0, rejected: 1 },
      ]);
      expect(onPg.seen.map(shape)).toEqual(onSqlite.seen.map(shape));
      const memberships = async (store: Store) => store.all(membershipStatuses);
      expect(await memberships(pg.conn)).toEqual(await memberships(sqlite));
      // Carl joined the list's audience when his profile arrived (an import), before the buyers.
      expect(onSqlite.seen.map((c) => c.cause)).toContain('import');
      // Audiences 1 Gold, 2 Recent buyers, 3 Gold buyers, 4 the list; profiles 1 Ann, 2 Bob, 3 Carl.
      expect(onSqlite.seen.map(shape)).toEqual([
        [1, 1, null, 'REALIZED', 'streaming'],
        [4, 3, null, 'REALIZED', 'import'],
        [2, 1, null, 'REALIZED', 'streaming'],
        [3, 1, null, 'REALIZED', 'streaming'],
        [2, 3, null, 'REALIZED', 'streaming'],
      ]);
      // Two hours on, the purchases have left the window: the sweep exits the same members.
      const later = NOW + 2 * 3_600_000;
      onSqlite.seen.length = 0;
      onPg.seen.length = 0;
      publishMembershipChanges(onSqlite.bus, sweepExpired(sqlite, sandboxId, later));
      await pooled.sweep(later);
      expect(onPg.seen.map(shape)).toEqual(onSqlite.seen.map(shape));
      expect(onSqlite.seen.map(shape)).toEqual([
        [2, 1, 'REALIZED', 'EXITED', 'expiry'],
        [2, 3, 'REALIZED', 'EXITED', 'expiry'],
        [3, 1, 'REALIZED', 'EXITED', 'expiry'],
      ]);
      expect(await memberships(pg.conn)).toEqual(await memberships(sqlite));
      await pooled.close();
    } finally {
      await pg.drop();
      sqlite.close();
    }
  });
});
