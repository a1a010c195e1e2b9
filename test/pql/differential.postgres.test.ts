/**
 * The three engines, one answer: generated expressions and stores (differential-generators.ts)
 * evaluated by the JS evaluator, by the SQLite compiler on SQLite and by the PostgreSQL
 * compiler on PostgreSQL must select the same profiles. Runs when SEGQL_TEST_DATABASE_URL names
 * a PostgreSQL database (e.g. postgres://postgres@127.0.0.1:5432/test): each run creates its
 * own schema and drops it at the end. PG_PROPERTY_RUNS sets the number of cases.
 *
 * The table layout the PostgreSQL compiler assumes, the same tables and columns as the SQLite
 * store (src/db/schema.ts) with the documents as jsonb and times as integer epoch ms:
 *
 *   profiles    (id bigint PRIMARY KEY, sandbox_id bigint, attributes jsonb, created_at bigint, updated_at bigint)
 *   events      (id bigint PRIMARY KEY, sandbox_id bigint, profile_id bigint, ts bigint, event_type text,
 *                event_id text, payload jsonb, ingested_at bigint)
 *   memberships (sandbox_id bigint, audience_id bigint, profile_id bigint, status text, last_evaluated_at bigint,
 *     payload jsonb)
 *
 * A generated expression the PostgreSQL compiler rejects (docs/pql.md "Backends") must be
 * rejected with a PqlError naming PostgreSQL; it is counted, and the share compiled is checked.
 * PostgreSQL text cannot hold U+0000, so the stores loaded here have that character replaced
 * (for all three engines alike).
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PqlError } from '../../src/pql/index.js';
import { compilePredicate, compileToSql } from '../../src/pql/sql/to-sql.js';
import { NOWS, PqlGenerator, profiles } from './differential-generators.js';
import { DifferentialHarness, SANDBOX_ID, type TestProfile } from './differential-harness.js';

const URL = process.env.SEGQL_TEST_DATABASE_URL;
const RUNS = Number(process.env.PG_PROPERTY_RUNS ?? 400);
const PROFILES_PER_CASE = 30;
const FUNCTION_MIGRATIONS = [
  '0003_pql_sums.sql',
  '0004_pql_remainder.sql',
  '0005_pql_age.sql',
  '0006_pql_occurs.sql',
].map((name) => new globalThis.URL(`../../drizzle/pg/${name}`, import.meta.url));

const LAYOUT = `
CREATE TABLE profiles (id bigint PRIMARY KEY, sandbox_id bigint NOT NULL, attributes jsonb NOT NULL,
  created_at bigint NOT NULL, updated_at bigint NOT NULL);
CREATE TABLE events (id bigint PRIMARY KEY, sandbox_id bigint NOT NULL, profile_id bigint NOT NULL, ts bigint NOT NULL,
  event_type text NOT NULL, event_id text NOT NULL, payload jsonb NOT NULL, ingested_at bigint NOT NULL);
CREATE INDEX events_profile_type_ts ON events (profile_id, event_type, ts);
CREATE INDEX events_sandbox_type_ts ON events (sandbox_id, event_type, ts);
CREATE TABLE memberships (sandbox_id bigint NOT NULL, audience_id bigint NOT NULL, profile_id bigint NOT NULL,
  status text NOT NULL, last_evaluated_at bigint NOT NULL, payload jsonb, PRIMARY KEY (audience_id, profile_id));
`;

/** The value with every U+0000 replaced, recursively (PostgreSQL text and jsonb refuse it). */
function withoutNul<T>(value: T): T {
  return JSON.parse(JSON.stringify(value).replaceAll('\\u0000', '\\u0001')) as T;
}

function rejectedForPostgres(e: unknown): boolean {
  return e instanceof PqlError && e.message.startsWith('Not supported on PostgreSQL');
}

describe.runIf(URL === undefined)('PQL on PostgreSQL', () => {
  it.skip('skipped: set SEGQL_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL differential test', () => {});
});

describe.runIf(URL !== undefined)('compileToSql on PostgreSQL agrees with SQLite and the JS evaluator', () => {
  const schema = `pql_diff_${process.pid}_${Date.now()}`;
  const client = new pg.Client({ connectionString: URL });
  const harness = new DifferentialHarness('differential-pg');
  const gen = new PqlGenerator();

  beforeAll(async () => {
    await client.connect();
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.query(`SET search_path TO ${schema}`);
    await client.query(LAYOUT);
    // The functions the compiler calls, as the PostgreSQL migrations create them.
    for (const migration of FUNCTION_MIGRATIONS) {
      for (const statement of readFileSync(migration, 'utf8').split('--> statement-breakpoint')) {
        await client.query(statement);
      }
    }
  });

  afterAll(async () => {
    harness.close();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  async function load(list: readonly TestProfile[]): Promise<void> {
    harness.load(list);
    const rows = list.map((p, i) => ({ id: i + 1, ...p }));
    await client.query('TRUNCATE profiles, events, memberships');
    await client.query(
      `INSERT INTO profiles (id, sandbox_id, attributes, created_at, updated_at)
       SELECT (r->>'id')::bigint, $2, r->'attributes', 0, 0 FROM jsonb_array_elements($1::jsonb) AS r`,
      [JSON.stringify(rows), SANDBOX_ID],
    );
    const events = rows.flatMap((p) => p.events.map((e) => ({ ...e, profileId: p.id })));
    await client.query(
      `INSERT INTO events (id, sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at)
       SELECT (r->>'id')::bigint, $2, (r->>'profileId')::bigint, (r->>'timestamp')::bigint, r->>'eventType',
              'evt-' || (r->>'id'), r->'payload', 0
       FROM jsonb_array_elements($1::jsonb) AS r`,
      [JSON.stringify(events), SANDBOX_ID],
    );
    const memberships = rows.flatMap((p) => p.memberships.map((m) => ({ ...m, profileId: p.id })));
    await client.query(
      `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, last_evaluated_at, payload)
       SELECT $2, (r->>'audienceId')::bigint, (r->>'profileId')::bigint, r->>'status', 0, r->'payload'
       FROM jsonb_array_elements($1::jsonb) AS r`,
      [JSON.stringify(memberships), SANDBOX_ID],
    );
  }

  it(`on ${RUNS} generated expressions × up to ${PROFILES_PER_CASE} generated profiles`, async () => {
    const cases = fc
      .constantFrom(...NOWS)
      .chain((now) => fc.tuple(fc.constant(now), gen.definition(3), profiles(now, PROFILES_PER_CASE)));
    let compiled = 0;
    let rejected = 0;
    await fc.assert(
      fc.asyncProperty(cases, async ([now, source, generated]) => {
        const list = withoutNul(generated);
        const checked = harness.check(source);
        let statement: { sql: string; params: unknown[] };
        let predicate: { sql: string; params: unknown[] };
        try {
          statement = compileToSql(checked, { now, sandboxId: SANDBOX_ID, dialect: 'postgres' });
          predicate = compilePredicate(checked, { now, dialect: 'postgres' });
        } catch (e) {
          if (!rejectedForPostgres(e)) throw e;
          rejected++;
          return;
        }
        compiled++;
        await load(list);
        const sqlite = harness.compare(source, now);
        const ids = (await client.query<{ id: string }>(statement.sql, statement.params)).rows
          .map((r) => Number(r.id))
          .sort((a, b) => a - b);
        const flags = await client.query<{ id: string; v: boolean | null }>(
          `SELECT p.id AS id, (${predicate.sql}) AS v FROM profiles AS p WHERE p.sandbox_id = $${predicate.params.length + 1} ORDER BY p.id`,
          [...predicate.params, SANDBOX_ID],
        );
        const byPredicate = flags.rows.filter((r) => r.v === true).map((r) => Number(r.id));
        const nulls = flags.rows.filter((r) => r.v === null).map((r) => Number(r.id));
        const report = [
          `expression: ${source}`,
          `now: ${new Date(now).toISOString()}`,
          `postgres: ${statement.sql}`,
          `params: ${JSON.stringify(statement.params)}`,
          `js ${JSON.stringify(sqlite.js)}, sqlite ${JSON.stringify(sqlite.sql)}, postgres ${JSON.stringify(ids)}, postgres predicate ${JSON.stringify(byPredicate)}`,
        ].join('\n');
        if (sqlite.mismatches.length > 0) throw new Error(`SQLite disagrees with JS\n${report}`);
        if (nulls.length > 0) throw new Error(`compilePredicate gave NULL for ${JSON.stringify(nulls)}\n${report}`);
        if (
          JSON.stringify(ids) !== JSON.stringify(sqlite.js) ||
          JSON.stringify(byPredicate) !== JSON.stringify(sqlite.js)
        ) {
          const first = sqlite.js.find((id) => !ids.includes(id)) ?? ids.find((id) => !sqlite.js.includes(id));
          throw new Error(`${report}\nprofile ${first}: ${JSON.stringify(list[(first ?? 1) - 1])}`);
        }
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
    console.info(`PostgreSQL differential: ${compiled} compiled and agreed, ${rejected} rejected for PostgreSQL`);
    expect(compiled + rejected).toBe(RUNS);
    // Most generated definitions must run on PostgreSQL: the backend is not a corner case.
    expect(compiled).toBeGreaterThan(RUNS * 0.4);
  }, 900_000);
});
