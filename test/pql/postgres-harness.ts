/**
 * The PostgreSQL side of the differential tests: a schema of its own in the database
 * SEGQL_TEST_DATABASE_URL names, with the table layout the PostgreSQL compiler assumes and the
 * PQL functions of the PostgreSQL migrations, loaded with the same profiles as the two-engine
 * harness (differential-harness.ts), and the ids compileToSql and compilePredicate select there.
 *
 * The layout, the same tables and columns as the SQLite store (src/db/schema.ts) with the
 * documents as jsonb and times as integer epoch ms:
 *
 *   profiles    (id bigint PRIMARY KEY, sandbox_id bigint, attributes jsonb, created_at bigint, updated_at bigint)
 *   events      (id bigint PRIMARY KEY, sandbox_id bigint, profile_id bigint, ts bigint, event_type text,
 *                event_id text, payload jsonb, ingested_at bigint)
 *   memberships (sandbox_id bigint, audience_id bigint, profile_id bigint, status text, last_evaluated_at bigint,
 *     payload jsonb)
 *
 * with the GIN index of drizzle/pg on the attributes, so a containment test may run through it.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { CheckedExpression } from '../../src/pql/check/types.js';
import { compilePredicate, compileToSql } from '../../src/pql/sql/to-sql.js';
import { TEST_SETTINGS } from '../db/pg-test-database.js';
import { SANDBOX_ID, type TestProfile } from './differential-harness.js';

const FUNCTION_MIGRATIONS = [
  '0003_pql_sums.sql',
  '0004_pql_remainder.sql',
  '0005_pql_age.sql',
  '0006_pql_occurs.sql',
  '0011_pql_products.sql',
  '0013_pql_tiny_instants.sql',
].map((name) => new globalThis.URL(`../../drizzle/pg/${name}`, import.meta.url));

const LAYOUT = `
CREATE TABLE profiles (id bigint PRIMARY KEY, sandbox_id bigint NOT NULL, attributes jsonb NOT NULL,
  created_at bigint NOT NULL, updated_at bigint NOT NULL);
CREATE INDEX profiles_attributes_gin ON profiles USING gin (attributes jsonb_path_ops);
CREATE TABLE events (id bigint PRIMARY KEY, sandbox_id bigint NOT NULL, profile_id bigint NOT NULL, ts bigint NOT NULL,
  event_type text NOT NULL, event_id text NOT NULL, payload jsonb NOT NULL, ingested_at bigint NOT NULL);
CREATE INDEX events_profile_type_ts ON events (profile_id, event_type, ts);
CREATE INDEX events_sandbox_type_ts ON events (sandbox_id, event_type, ts);
CREATE TABLE memberships (sandbox_id bigint NOT NULL, audience_id bigint NOT NULL, profile_id bigint NOT NULL,
  status text NOT NULL, last_evaluated_at bigint NOT NULL, payload jsonb, PRIMARY KEY (audience_id, profile_id));
`;

/** The value with every U+0000 replaced, recursively (PostgreSQL text and jsonb refuse it). */
export function withoutNul<T>(value: T): T {
  return JSON.parse(JSON.stringify(value).replaceAll('\\u0000', '\\u0001')) as T;
}

/** Documents stored as JSON text of their own (see PostgresHarness.load). */
export interface DocumentTexts {
  attributes?: readonly (string | undefined)[];
  payloads?: ReadonlyMap<number, string>;
}

export interface PostgresMatches {
  /** compileToSql's ids, sorted. */
  ids: number[];
  /** The ids for which compilePredicate is true, sorted. */
  byPredicate: number[];
  /** The ids for which compilePredicate is NULL (it must never be). */
  nulls: number[];
  /** compileToSql's ids with `idRange` RANGE (a job's range: its events scans bounded too), sorted. */
  inRange: number[];
  statement: { sql: string; params: unknown[] };
}

/** The profile ids `matches` also asks for alone, as a segment job's range would (ids start at 1). */
export const RANGE = { lo: 4, hi: 17 } as const;

export class PostgresHarness {
  private readonly schema: string;
  private readonly client: pg.Client;

  constructor(url: string, name: string) {
    this.schema = `${name}_${process.pid}_${Date.now()}`;
    this.client = new pg.Client({ connectionString: url });
  }

  async open(): Promise<void> {
    await this.client.connect();
    await this.client.query(`CREATE SCHEMA ${this.schema}`);
    await this.client.query(`SET search_path TO ${this.schema}`);
    // As on every test database (TEST_SETTINGS): the shared database this schema lives in is not
    // one of them, and the differential test loads and queries hundreds of times.
    for (const setting of TEST_SETTINGS) await this.client.query(`SET ${setting}`);
    await this.client.query(LAYOUT);
    for (const migration of FUNCTION_MIGRATIONS) {
      for (const statement of readFileSync(migration, 'utf8').split('--> statement-breakpoint')) {
        await this.client.query(statement);
      }
    }
  }

  async close(): Promise<void> {
    await this.client.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
    await this.client.end();
  }

  /**
   * Replaces the stored profiles with `list` (ids 1…n). `texts.attributes` (by profile index)
   * and `texts.payloads` (by event id) store a document as that JSON text instead: jsonb keeps
   * a number's decimal digits, so `1.00000000000000001` stays what it is where JS reads 1.
   */
  async load(list: readonly TestProfile[], texts: DocumentTexts = {}): Promise<void> {
    await this.client.query('BEGIN');
    try {
      await this.replace(list, texts);
      await this.client.query('COMMIT');
    } catch (err) {
      await this.client.query('ROLLBACK');
      throw err;
    }
  }

  /**
   * DELETE rather than TRUNCATE: a few dozen rows go, where TRUNCATE made new files for the three
   * tables and their indexes at each load.
   */
  private async replace(list: readonly TestProfile[], texts: DocumentTexts): Promise<void> {
    const rows = list.map((p, i) => ({ id: i + 1, ...p }));
    await this.client.query('DELETE FROM memberships; DELETE FROM events; DELETE FROM profiles');
    await this.client.query(
      `INSERT INTO profiles (id, sandbox_id, attributes, created_at, updated_at)
       SELECT (r->>'id')::bigint, $2, r->'attributes', 0, 0 FROM jsonb_array_elements($1::jsonb) AS r`,
      [JSON.stringify(rows), SANDBOX_ID],
    );
    for (const [i, text] of (texts.attributes ?? []).entries()) {
      if (text !== undefined) {
        await this.client.query('UPDATE profiles SET attributes = $1::jsonb WHERE id = $2', [text, i + 1]);
      }
    }
    const events = rows.flatMap((p) => p.events.map((e) => ({ ...e, profileId: p.id })));
    await this.client.query(
      `INSERT INTO events (id, sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at)
       SELECT (r->>'id')::bigint, $2, (r->>'profileId')::bigint, (r->>'timestamp')::bigint, r->>'eventType',
              'evt-' || (r->>'id'), r->'payload', 0
       FROM jsonb_array_elements($1::jsonb) AS r`,
      [JSON.stringify(events), SANDBOX_ID],
    );
    for (const [id, text] of texts.payloads ?? []) {
      await this.client.query('UPDATE events SET payload = $1::jsonb WHERE id = $2', [text, id]);
    }
    const memberships = rows.flatMap((p) => p.memberships.map((m) => ({ ...m, profileId: p.id })));
    await this.client.query(
      `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, last_evaluated_at, payload)
       SELECT $2, (r->>'audienceId')::bigint, (r->>'profileId')::bigint, r->>'status', 0, r->'payload'
       FROM jsonb_array_elements($1::jsonb) AS r`,
      [JSON.stringify(memberships), SANDBOX_ID],
    );
  }

  /** What the PostgreSQL compiler's statement and predicate select on the loaded profiles. */
  async matches(checked: CheckedExpression, now: number): Promise<PostgresMatches> {
    const statement = compileToSql(checked, { now, sandboxId: SANDBOX_ID, dialect: 'postgres' });
    const predicate = compilePredicate(checked, { now, dialect: 'postgres' });
    const ids = (await this.client.query<{ id: string }>(statement.sql, statement.params)).rows
      .map((r) => Number(r.id))
      .sort((a, b) => a - b);
    const ranged = compileToSql(checked, { now, sandboxId: SANDBOX_ID, dialect: 'postgres', idRange: RANGE });
    const inRange = (await this.client.query<{ id: string }>(ranged.sql, ranged.params)).rows
      .map((r) => Number(r.id))
      .sort((a, b) => a - b);
    const flags = await this.client.query<{ id: string; v: boolean | null }>(
      `SELECT p.id AS id, (${predicate.sql}) AS v FROM profiles AS p WHERE p.sandbox_id = $${predicate.params.length + 1} ORDER BY p.id`,
      [...predicate.params, SANDBOX_ID],
    );
    return {
      ids,
      byPredicate: flags.rows.filter((r) => r.v === true).map((r) => Number(r.id)),
      nulls: flags.rows.filter((r) => r.v === null).map((r) => Number(r.id)),
      inRange,
      statement,
    };
  }
}
