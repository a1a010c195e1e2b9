/**
 * The two-engine harness of the SQL compiler tests: a real SQLite file (migrated by
 * openDatabase, PQL functions registered), profiles written the way the store writes them
 * (JSONB attributes, events with `ts`/`event_type` columns and the rest as JSONB payload,
 * memberships), and the same profiles as the JS engine sees them. `compare` runs one
 * expression through `compileToSql` on SQLite and through `evaluate` on every profile.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { buildCatalog, DEFAULT_SCHEMA_FIELDS, type SchemaFieldRow } from '../../src/pql/check/catalog.js';
import { checkSource } from '../../src/pql/check/checker.js';
import type { CheckedExpression, EventRecord, ProfileDocument, ResolvedAudience } from '../../src/pql/check/types.js';
import { evaluate } from '../../src/pql/js/evaluate.js';
import { compilePredicate, compileToSql } from '../../src/pql/sql/to-sql.js';

export const EXTRA_FIELDS: SchemaFieldRow[] = [
  { class: 'profile', path: '_tenant.score', type: 'number' },
  { class: 'profile', path: '_tenant.nickname', type: 'string' },
  { class: 'profile', path: '_tenant.page-name', type: 'string' },
  { class: 'profile', path: '_tenant.lastVisit', type: 'datetime' },
  { class: 'profile', path: '_tenant.vip', type: 'boolean' },
  { class: 'profile', path: '_tenant.tags', type: 'array<string>' },
  { class: 'profile', path: '_tenant.scores', type: 'array<number>' },
  { class: 'profile', path: '_tenant.prefs', type: 'map<string>' },
  { class: 'event', path: '_tenant.rating', type: 'number' },
];

export const CATALOG = buildCatalog([...DEFAULT_SCHEMA_FIELDS, ...EXTRA_FIELDS]);

/** "Churn risk" is an external audience: its members have a row (`inSegment("…").payload.<field>`). */
export const AUDIENCES: ResolvedAudience[] = [
  { id: 1, name: 'VIP' },
  {
    id: 2,
    name: 'Churn risk',
    payload: {
      kind: 'object',
      fields: {
        tier: { kind: 'string' },
        score: { kind: 'number' },
        optedIn: { kind: 'boolean' },
        since: { kind: 'datetime' },
      },
    },
  },
  { id: 3, name: 'Newsletter' },
];

export const CHECK_OPTIONS = {
  catalog: CATALOG,
  resolveAudience: (ref: string) => AUDIENCES.find((a) => a.name === ref || String(a.id) === ref),
};

export type MembershipStatus = 'REALIZED' | 'EXISTING' | 'EXITED';

export interface TestEvent {
  /** Row id: the tie-break after the timestamp. */
  id: number;
  timestamp: number;
  eventType: string;
  payload: Record<string, unknown>;
}

export interface TestProfile {
  attributes: Record<string, unknown>;
  events: TestEvent[];
  /** `payload`: the member's row of an external audience, stored as the ingestion run writes it. */
  memberships: { audienceId: number; status: MembershipStatus; payload?: Record<string, unknown> }[];
}

export const SANDBOX_ID = 1;

export interface Comparison {
  sql: number[];
  js: number[];
  /** Profile ids (1-based, in input order) on which the engines disagree. */
  mismatches: number[];
  statement: { sql: string; params: unknown[] };
}

export class DifferentialHarness {
  readonly conn: Connection;
  private readonly file: string;
  private docs: ProfileDocument[] = [];
  private readonly checkedCache = new Map<string, CheckedExpression>();

  constructor(name: string) {
    this.file = join(tmpdir(), `segql-${name}-${process.pid}-${Date.now()}.db`);
    this.conn = openDatabase(this.file);
    this.conn.sqlite.prepare('INSERT INTO sandboxes (id, name, created_at) VALUES (?, ?, 0)').run(SANDBOX_ID, 'prod');
  }

  /** The loaded profiles as the JS engine sees them (profile id i + 1 is index i). */
  get documents(): readonly ProfileDocument[] {
    return this.docs;
  }

  close(): void {
    this.conn.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(this.file + suffix, { force: true });
  }

  check(source: string): CheckedExpression {
    let c = this.checkedCache.get(source);
    if (c === undefined) {
      c = checkSource(source, CHECK_OPTIONS);
      this.checkedCache.set(source, c);
    }
    return c;
  }

  /** Replaces the stored profiles with `profiles` (ids 1…n). */
  load(profiles: readonly TestProfile[]): void {
    const db = this.conn.sqlite;
    const insertProfile = db.prepare(
      'INSERT INTO profiles (id, sandbox_id, attributes, created_at, updated_at) VALUES (?, ?, jsonb(?), 0, 0)',
    );
    const insertEvent = db.prepare(
      'INSERT INTO events (id, sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at) VALUES (?, ?, ?, ?, ?, ?, jsonb(?), 0)',
    );
    const insertMembership = db.prepare(
      'INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, last_evaluated_at, payload) VALUES (?, ?, ?, ?, 0, ?)',
    );
    db.transaction(() => {
      db.exec('DELETE FROM memberships; DELETE FROM events; DELETE FROM profiles;');
      profiles.forEach((profile, i) => {
        const id = i + 1;
        insertProfile.run(id, SANDBOX_ID, JSON.stringify(profile.attributes));
        for (const e of profile.events) {
          insertEvent.run(e.id, SANDBOX_ID, id, e.timestamp, e.eventType, `evt-${e.id}`, JSON.stringify(e.payload));
        }
        for (const m of profile.memberships) {
          const payload = m.payload === undefined ? null : JSON.stringify(m.payload);
          insertMembership.run(SANDBOX_ID, m.audienceId, id, m.status, payload);
        }
      });
    })();
    // The JS engine sees what a reader of the store would: the JSON round trip of each document.
    this.docs = profiles.map((profile) => {
      const events: EventRecord[] = profile.events
        .map((e) => ({
          id: e.id,
          timestamp: e.timestamp,
          eventType: e.eventType,
          payload: JSON.parse(JSON.stringify(e.payload)) as Record<string, unknown>,
        }))
        .sort((a, b) => a.timestamp - b.timestamp || a.id - b.id);
      const current = profile.memberships.filter((m) => m.status !== 'EXITED');
      const payloads = new Map(
        current.flatMap((m) =>
          m.payload === undefined
            ? []
            : [[m.audienceId, JSON.parse(JSON.stringify(m.payload)) as Record<string, unknown>] as const],
        ),
      );
      return {
        attributes: JSON.parse(JSON.stringify(profile.attributes)) as Record<string, unknown>,
        events,
        memberships: new Set(current.map((m) => m.audienceId)),
        payloads,
      };
    });
  }

  sqlMatches(
    checked: CheckedExpression,
    now: number,
  ): { ids: number[]; statement: { sql: string; params: unknown[] } } {
    const statement = compileToSql(checked, { now, sandboxId: SANDBOX_ID });
    const rows = this.conn.sqlite.prepare(statement.sql).all(...(statement.params as never[])) as { id: number }[];
    const ids = rows.map((r) => r.id).sort((a, b) => a - b);
    if (new Set(ids).size !== ids.length) throw new Error(`compileToSql selected a profile twice: ${statement.sql}`);
    return { ids, statement };
  }

  jsMatches(checked: CheckedExpression, now: number): number[] {
    const ids: number[] = [];
    this.docs.forEach((doc, i) => {
      if (evaluate(checked, doc, { now })) ids.push(i + 1);
    });
    return ids;
  }

  /**
   * The ids `compilePredicate` (no sandbox given: every event condition stays a correlated
   * sub-query) selects, with the predicate as a column so its exactly-0-or-1 promise is checked.
   */
  predicateMatches(checked: CheckedExpression, now: number): number[] {
    const { sql, params } = compilePredicate(checked, { now });
    const rows = this.conn.sqlite
      .prepare(`SELECT p.id AS id, (${sql}) AS v FROM profiles AS p WHERE p.sandbox_id = ? ORDER BY p.id`)
      .all(...(params as never[]), SANDBOX_ID) as { id: number; v: unknown }[];
    for (const r of rows)
      if (r.v !== 0 && r.v !== 1) throw new Error(`compilePredicate gave ${String(r.v)} for profile ${r.id}`);
    return rows.filter((r) => r.v === 1).map((r) => r.id);
  }

  /** Both engines on the loaded profiles; the SQL engine both as compileToSql and as compilePredicate. */
  compare(source: string, now: number): Comparison {
    const checked = this.check(source);
    const { ids: sql, statement } = this.sqlMatches(checked, now);
    const js = this.jsMatches(checked, now);
    const inSql = new Set(sql);
    const inPredicate = new Set(this.predicateMatches(checked, now));
    const inJs = new Set(js);
    const mismatches: number[] = [];
    for (let id = 1; id <= this.docs.length; id++) {
      if (inSql.has(id) !== inJs.has(id) || inPredicate.has(id) !== inJs.has(id)) mismatches.push(id);
    }
    return { sql, js, mismatches, statement };
  }
}
