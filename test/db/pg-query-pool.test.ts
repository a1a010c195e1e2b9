/**
 * The query pool answering from PostgreSQL (docs/scale-out.md step 4) gives what it gives on
 * SQLite for the same store: the same pages of matching ids in both directions (items, cursors,
 * page flags), the same counts, the same edge evaluations, the same PQL errors; and a query past
 * its budget is QUERY_TIMEOUT, stopped in the database by `statement_timeout`. The store is the
 * demo data and reference definitions the segment-job comparisons use, its memberships made by
 * the single-process job (for inSegment), copied into a fresh PostgreSQL database. Skipped
 * (visibly) without SEGQL_TEST_DATABASE_URL.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ConnectionCache } from '../../src/db/connection-cache.js';
import { copySqliteToPostgres } from '../../src/db/pg/copy-from-sqlite.js';
import { DomainError } from '../../src/domain/errors.js';
import type { EdgeEvaluation } from '../../src/domain/evaluation.js';
import { createExternalAudience } from '../../src/domain/external-audiences/external-audiences.js';
import { importList } from '../../src/domain/external-audiences/local-import.js';
import type { Page, PageArgs } from '../../src/domain/paging.js';
import { countMatchingPg, withPgReadSession } from '../../src/domain/queries/pg-evaluation.js';
import { QueryTimedOut } from '../../src/domain/queries/query-deadline.js';
import { QueryPool } from '../../src/domain/queries/query-pool.js';
import type { QueryArgs, QueryName } from '../../src/domain/queries/query-worker.js';
import { checkSource } from '../../src/pql/check/checker.js';
import { PqlError } from '../../src/pql/index.js';
import { compileToSql } from '../../src/pql/sql/to-sql.js';
import { CHECK_OPTIONS } from '../pql/differential-harness.js';
import { buildSegmentStore, type SegmentStore, STORE_NOW } from './segment-store.js';
import { describeOnPostgres } from './statements-harness.js';

const DAY = 86_400_000;
const PAGE = 45;
const log = pino({ level: 'silent' });
/** Made by the suite, so a run without PostgreSQL leaves none behind. */
let dataDir: string;

/** Expressions beyond the twenty reference definitions: attributes, event windows, inSegment, values. */
const EXPRESSIONS = [
  'loyalty.tier = "gold"',
  'homeAddress.countryCode in ["SE", "NO"] and loyalty.points > 1000',
  'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 14 days before now].count() >= 1',
  'xEvent[timestamp occurs >= 20 days before now and timestamp occurs last month].count() > 1',
  'xEvent[eventType = "web.webpagedetails.pageViews" and timestamp occurs this month].count() >= 2',
  'inSegment("nordics") and not inSegment("gold-mid-points")',
  'not inSegment("big-spenders")',
  'inSegment("nl-2026")',
  'inSegment("Newsletter").payload.points >= 100',
  'false',
  'true',
];

describeOnPostgres('the query pool on PostgreSQL', 'query_pool', (db) => {
  let store: SegmentStore;
  let onSqlite: QueryPool;
  let onPostgres: QueryPool;
  let expressions: string[];
  let identities: { namespace: string; id: string }[];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'segql-query-pool-'));
    store = await buildSegmentStore('query_pool', 240, 8);
    await store.runSqliteJob();
    // An external audience with a payload, imported as `segql import` does, for `inSegment("…").payload`.
    await createExternalAudience(store.conn, store.sandboxId, {
      name: 'Newsletter',
      namespace: 'crm',
      externalId: 'nl-2026',
      fields: [
        { name: 'email', type: 'STRING', identityNamespace: 'email' },
        { name: 'points', type: 'NUMBER', identityNamespace: null },
      ],
    });
    const list = join(dataDir, 'list.csv');
    const rows = Array.from({ length: 30 }, (_, i) => `user${i * 3}@example.com,${i * 10}`);
    writeFileSync(list, `email,points\n${rows.join('\n')}\n`);
    const run = await importList(store.conn, dataDir, {
      sandboxId: store.sandboxId,
      audience: 'nl-2026',
      file: list,
      mode: 'REPLACE',
    });
    expect(run.status).toBe('SUCCEEDED');
    // A few definitions evaluated at the edge: the default set of evaluateProfile.
    store.conn.sqlite
      .prepare(
        'UPDATE segment_definitions SET eval_edge = 1 WHERE id IN (SELECT id FROM segment_definitions ORDER BY id LIMIT 8)',
      )
      .run();
    const client = await db.conn.pool.connect();
    try {
      await copySqliteToPostgres(store.conn.sqlite, client);
    } finally {
      client.release();
    }
    onSqlite = new QueryPool(store.file, 1, 20_000, log);
    onPostgres = new QueryPool(db.url, 1, 20_000, log);
    expressions = [...store.definitions.map((d) => d.expressionText), ...EXPRESSIONS];
    identities = (
      store.conn.sqlite
        .prepare(
          'SELECT namespace, value AS id FROM identities WHERE sandbox_id = ? AND namespace = ? ORDER BY profile_id LIMIT 12',
        )
        .all(store.sandboxId, 'email') as { namespace: string; id: string }[]
    ).map((r) => ({ namespace: r.namespace, id: r.id }));
  }, 120_000);

  afterAll(async () => {
    await onSqlite?.close();
    await onPostgres?.close();
    store?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const both = async <R>(query: QueryName, args: QueryArgs[QueryName]): Promise<[R, R]> =>
    Promise.all([onSqlite.run<QueryName, R>(query, args), onPostgres.run<QueryName, R>(query, args)]);

  const input = (value: string) => ({ format: 'PQL_TEXT' as const, value });

  /** Every page of one direction, following the cursors, on one pool. */
  async function allPages(pool: QueryPool, expression: string, at: number, backward: boolean): Promise<Page<number>[]> {
    const pages: Page<number>[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page: PageArgs = backward ? { last: PAGE, before: cursor } : { first: PAGE, after: cursor };
      const got = await pool.run<'matchingProfileIds', Page<number>>('matchingProfileIds', {
        sandboxId: store.sandboxId,
        input: input(expression),
        at,
        page,
      });
      pages.push(got);
      const more = backward ? got.hasPreviousPage : got.hasNextPage;
      if (!more || pages.length > 50) return pages;
      cursor = backward ? got.cursors[0] : got.cursors.at(-1);
    }
  }

  it('gives the same pages in both directions, and the same counts', async () => {
    for (const at of [STORE_NOW, STORE_NOW - 30 * DAY]) {
      for (const expression of expressions) {
        const what = `${expression} at ${new Date(at).toISOString()}`;
        const [sqliteCount, pgCount] = await both<number>('countMatching', {
          sandboxId: store.sandboxId,
          input: input(expression),
          at,
        });
        expect(pgCount, what).toBe(sqliteCount);
        for (const backward of [false, true]) {
          const sqlitePages = await allPages(onSqlite, expression, at, backward);
          const pgPages = await allPages(onPostgres, expression, at, backward);
          expect(pgPages, `${what}, ${backward ? 'backward' : 'forward'}`).toEqual(sqlitePages);
          expect(sqlitePages.flatMap((p) => p.items).length, what).toBe(sqliteCount);
        }
      }
    }
    // Not every expression is empty or everyone: the comparison compares something.
    const counts = await Promise.all(
      expressions.map((e) =>
        onSqlite.run<'countMatching', number>('countMatching', {
          sandboxId: store.sandboxId,
          input: input(e),
          at: STORE_NOW,
        }),
      ),
    );
    expect(counts.filter((n) => n > 0 && n < 240).length).toBeGreaterThan(10);
  }, 120_000);

  it('runs an arithmetic chain SQLite refuses as too large, selecting what its short form selects', async () => {
    // Integers added 400 times over are exact: the chain selects what `loyalty.points * 400 > …` does.
    const chain = (n: number, bound: number) =>
      `${Array.from({ length: n }, () => 'loyalty.points').join(' + ')} > ${n * bound}`;
    const args = (value: string) => ({ sandboxId: store.sandboxId, input: input(value), at: STORE_NOW });
    const bound = 150;
    // Before the server sees it: a sub-select per operator was planned as about 5^n operations
    // (test/pql/postgres-regressions.test.ts), past the server's memory at these lengths.
    const selects = (source: string) =>
      compileToSql(checkSource(source, CHECK_OPTIONS), { now: STORE_NOW, sandboxId: 1, dialect: 'postgres' }).sql.match(
        /SELECT/g,
      )?.length;
    expect(selects(chain(400, bound))).toBe(selects(`loyalty.points > ${bound}`));
    const [short] = await both<number>('countMatching', args(`loyalty.points > ${bound}`));
    expect(short).toBeGreaterThan(20);
    expect(short).toBeLessThan(220);
    // 300 terms: SQLite runs it too, and both give the short form's count.
    expect(await both<number>('countMatching', args(chain(300, bound)))).toEqual([short, short]);
    // 400: past SQLite's expression depth, refused there; PostgreSQL answers, at once.
    await expect(onSqlite.run('countMatching', args(chain(400, bound)))).rejects.toMatchObject({
      code: 'PQL_TYPE_ERROR',
      message: expect.stringContaining('too large to run'),
    });
    expect(await onPostgres.run<'countMatching', number>('countMatching', args(chain(400, bound)))).toBe(short);
    const pages = await allPages(onPostgres, chain(400, bound), STORE_NOW, false);
    const shortPages = await allPages(onSqlite, `loyalty.points > ${bound}`, STORE_NOW, false);
    expect(pages.flatMap((p) => p.items)).toEqual(shortPages.flatMap((p) => p.items));
  }, 60_000);

  it('gives the same page for a page from the middle and for a hand-made cursor', async () => {
    const expression = 'loyalty.tier = "gold"';
    for (const page of [
      { first: 5, after: Buffer.from(JSON.stringify([40])).toString('base64url') },
      { last: 5, before: Buffer.from(JSON.stringify([200])).toString('base64url') },
      { first: 5, after: Buffer.from(JSON.stringify(['x'])).toString('base64url') },
      { first: 0 },
    ]) {
      const args = { sandboxId: store.sandboxId, input: input(expression), at: STORE_NOW, page };
      const [a, b] = await Promise.all([
        onSqlite.run('matchingProfileIds', args).catch((e: Error) => e.message),
        onPostgres.run('matchingProfileIds', args).catch((e: Error) => e.message),
      ]);
      expect(b, JSON.stringify(page)).toEqual(a);
    }
  });

  const withoutDuration = ({ durationMs: _, ...rest }: EdgeEvaluation) => rest;

  it('evaluates a profile the same: the edge-enabled definitions, given audiences, an expression', async () => {
    const audienceIds = store.definitions.map((d) => d.audienceId);
    const options: Omit<QueryArgs['evaluateProfile'], 'sandboxId' | 'identity'>[] = [
      { expression: null, audienceIds: null, at: STORE_NOW },
      { expression: null, audienceIds, at: STORE_NOW },
      { expression: null, audienceIds, at: STORE_NOW - 30 * DAY },
      { expression: input('xEvent.count()'), audienceIds: null, at: STORE_NOW },
      {
        expression: input('xEvent[eventType = "commerce.purchases"].map(timestamp)'),
        audienceIds: null,
        at: STORE_NOW,
      },
      { expression: input(EXPRESSIONS[2]!), audienceIds: audienceIds.slice(0, 3), at: STORE_NOW },
      { expression: input('loyalty'), audienceIds: null, at: STORE_NOW },
      { expression: input('inSegment("nl-2026").payload.points'), audienceIds: null, at: STORE_NOW },
      { expression: input('inSegment("nl-2026").payload.points > 50'), audienceIds: null, at: STORE_NOW },
    ];
    let qualified = 0;
    let payloads = 0;
    for (const identity of identities) {
      for (const o of options) {
        const [a, b] = await both<EdgeEvaluation>('evaluateProfile', { sandboxId: store.sandboxId, identity, ...o });
        expect(withoutDuration(b), `${identity.id} ${JSON.stringify(o)}`).toEqual(withoutDuration(a));
        qualified += a.audienceIds.length;
        if (typeof a.value === 'number' && o.expression?.value.includes('payload')) payloads++;
      }
    }
    expect(qualified).toBeGreaterThan(0);
    // user0, user3, user6 and user9 are on the imported list.
    expect(payloads).toBe(4);
  }, 60_000);

  it('gives the same errors on both: PQL errors, an unknown profile, an unknown audience', async () => {
    const cases: [QueryName, QueryArgs[QueryName]][] = [
      ['countMatching', { sandboxId: store.sandboxId, input: input('loyalty.tier = '), at: STORE_NOW }],
      ['countMatching', { sandboxId: store.sandboxId, input: input('xEvent.count()'), at: STORE_NOW }],
      [
        'matchingProfileIds',
        { sandboxId: store.sandboxId, input: input('nope.nothing = 1'), at: STORE_NOW, page: { first: 3 } },
      ],
      [
        'evaluateProfile',
        {
          sandboxId: store.sandboxId,
          identity: { namespace: 'email', id: 'nobody@example.com' },
          expression: null,
          audienceIds: null,
          at: STORE_NOW,
        },
      ],
      [
        'evaluateProfile',
        {
          sandboxId: store.sandboxId,
          identity: identities[0]!,
          expression: input('inSegment("no-such-audience")'),
          audienceIds: null,
          at: STORE_NOW,
        },
      ],
      [
        'evaluateProfile',
        {
          sandboxId: store.sandboxId,
          identity: identities[0]!,
          expression: null,
          audienceIds: [987_654],
          at: STORE_NOW,
        },
      ],
    ];
    for (const [query, args] of cases) {
      const errors = await Promise.all(
        [onSqlite, onPostgres].map((pool) =>
          pool.run(query, args).then(
            () => undefined,
            (e: unknown) => e,
          ),
        ),
      );
      const shape = (e: unknown) =>
        e instanceof PqlError
          ? { pql: e.code, message: e.message, loc: e.loc }
          : e instanceof DomainError
            ? { domain: e.code, message: e.message, extensions: e.extensions }
            : { other: String(e) };
      expect(errors[0], `${query} ${JSON.stringify(args)}`).toBeDefined();
      expect(shape(errors[1]), `${query} ${JSON.stringify(args)}`).toEqual(shape(errors[0]));
    }
  });

  it('stops a statement past the budget in the database, and the client serves the next query', async () => {
    const { pool } = db.conn;
    const cache = new ConnectionCache();
    const started = Date.now();
    await expect(
      withPgReadSession(pool, cache, Date.now() + 150, async (session) => {
        await session.bound();
        await session.client.query('SELECT pg_sleep(5)');
      }),
    ).rejects.toBeInstanceOf(QueryTimedOut);
    expect(Date.now() - started).toBeLessThan(2_000);
    // The transaction was ended: the pool's clients are usable, and the timeout was only its own.
    const n = await withPgReadSession(pool, cache, Date.now() + 10_000, (session) =>
      countMatchingPg(session, store.sandboxId, input('true'), STORE_NOW),
    );
    expect(n).toBe(240);
    const { rows } = await pool.query<{ statement_timeout: string }>('SHOW statement_timeout');
    expect(rows[0]!.statement_timeout).toBe('0');
    // Past the deadline before anything ran: no statement at all.
    await expect(withPgReadSession(pool, cache, Date.now() - 1, async () => 1)).rejects.toBeInstanceOf(QueryTimedOut);
  });

  it('answers QUERY_TIMEOUT for a heavy query within a small budget, and then serves the next one', async () => {
    const warnings: string[] = [];
    const watched = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
    // 100 ms: the heavy query below takes 350–400 ms here; a budget of 40 ms left the light
    // query after it too little room on two cores busy with the other test projects.
    const tight = new QueryPool(db.url, 1, 100, watched);
    try {
      // The thread up first (its start is not the query's to pay for).
      await tight
        .run('countMatching', { sandboxId: store.sandboxId, input: input('false'), at: STORE_NOW })
        .catch(() => {});
      // An `or` of 300 event scans over every profile: far past 100 ms.
      const heavy = Array.from(
        { length: 300 },
        (_, i) => `xEvent[eventType != "t${i}"].count() > ${40 + (i % 9)}`,
      ).join(' or ');
      const err = await tight
        .run('countMatching', { sandboxId: store.sandboxId, input: input(heavy), at: STORE_NOW })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DomainError);
      expect((err as DomainError).code).toBe('QUERY_TIMEOUT');
      // The same thread (not replaced) answers the next query.
      await new Promise((r) => setTimeout(r, 300));
      // A light query may still meet a busy machine: a timed-out try is tried again, up to three.
      let n: number | undefined;
      for (let attempt = 0; attempt < 3 && n === undefined; attempt++) {
        n = await tight
          .run<'countMatching', number>('countMatching', {
            sandboxId: store.sandboxId,
            input: input('false'),
            at: STORE_NOW,
          })
          .catch((e: unknown) => {
            if (e instanceof DomainError && e.code === 'QUERY_TIMEOUT' && attempt < 2) return undefined;
            throw e;
          });
      }
      expect(n).toBe(0);
      // The database stopped the statement: the thread never missed its deadline.
      expect(warnings.join('\n')).not.toContain('missed its deadline');
    } finally {
      await tight.close();
    }
  }, 30_000);
});
