/**
 * Lookups by a list of ids (the statements named below): on a file with hundreds of rows in one
 * sandbox and a few in another, each finds the rows asked for by primary key (identities by the
 * profile index, pending list rows by the identity index) instead of walking one of the sandbox's
 * indexes, and gives nothing of another sandbox even when its id is asked for.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { madeStatements, type Statement } from '../../src/db/statement.js';
import '../../src/domain/definitions.js';
import '../../src/domain/evaluation.js';
import '../../src/domain/exports/datasets.js';
import '../../src/domain/external-audiences/external-audiences.js';
import '../../src/domain/external-audiences/pending-members.js';
import '../../src/domain/folders.js';
import '../../src/domain/jobs/job-store.js';
import '../../src/domain/profiles.js';
import { DEFAULT_SANDBOX, ensureSandbox } from '../../src/domain/sandboxes.js';
import '../../src/domain/schedules/freshness.js';
import '../../src/domain/segment-jobs/latest-jobs.js';

const dir = mkdtempSync(join(tmpdir(), 'lookups-by-ids-'));
const conn = openDatabase(join(dir, 'segql.db'));
afterAll(() => {
  conn.close();
  rmSync(dir, { recursive: true, force: true });
});
const mine = (await ensureSandbox(conn, DEFAULT_SANDBOX)).id;
const other = (await ensureSandbox(conn, 'other')).id;

let serial = 0;
/**
 * Inserts a row of `table` in the sandbox: each required column without a default gets a value
 * of its type that no other row has (unique indexes hold), JSON text for text, an empty JSON
 * object for a blob; `set` overrides. Returns the rowid.
 */
function insert(table: string, sandboxId: number, set: Record<string, unknown> = {}): number {
  const values: Record<string, unknown> = { sandbox_id: sandboxId };
  const columns = conn.sqlite.prepare(`PRAGMA table_info(${table})`).all() as {
    name: string;
    type: string;
    notnull: number;
    dflt_value: unknown;
    pk: number;
  }[];
  for (const c of columns) {
    if (c.name in values || !c.notnull || c.dflt_value !== null || (c.pk && c.type === 'INTEGER')) continue;
    serial += 1;
    values[c.name] = c.type === 'TEXT' ? JSON.stringify(`v${serial}`) : c.type === 'BLOB' ? '{}' : serial;
  }
  Object.assign(values, set);
  const names = Object.keys(values);
  const blob = new Set(columns.filter((c) => c.type === 'BLOB').map((c) => c.name));
  const placeholders = names.map((n) => (blob.has(n) ? 'jsonb(?)' : '?'));
  const { lastInsertRowid } = conn.sqlite
    .prepare(`INSERT INTO ${table} (${names.map((n) => `"${n}"`).join(', ')}) VALUES (${placeholders.join(', ')})`)
    .run(...names.map((n) => values[n]));
  return Number(lastInsertRowid);
}

/** Rows of `table`: 300 in this sandbox, 5 in the other. */
function rows(table: string, set: (sandboxId: number) => Record<string, unknown> = () => ({})) {
  const out = { mine: [] as number[], theirs: [] as number[] };
  for (let i = 0; i < 300; i++) out.mine.push(insert(table, mine, set(mine)));
  for (let i = 0; i < 5; i++) out.theirs.push(insert(table, other, set(other)));
  return out;
}

function statement(name: string): Statement {
  const found = madeStatements().find((s) => s.name === name);
  if (!found) throw new Error(`no statement ${name}`);
  return found;
}

function plan(s: Statement, params: unknown[]): string[] {
  return conn.sqlite
    .prepare(`EXPLAIN QUERY PLAN ${s.sqlite}`)
    .all(...params)
    .map((row) => (row as { detail: string }).detail);
}

/** A plan that searches `table` (or its alias) by rowid and never through a sandbox index. */
function expectByPrimaryKey(lines: string[], table: string): void {
  expect(lines.find((d) => d.startsWith(`SEARCH ${table} `))).toMatch(/USING INTEGER PRIMARY KEY \(rowid=\?\)/);
  expect(lines.filter((d) => /INDEX \w*sandbox\w* \(sandbox_id=\?\)$/.test(d))).toEqual([]);
}

conn.sqlite.exec('BEGIN');
const definitions = rows('segment_definitions', () => ({ eval_batch: 1 }));
const audiences = { mine: [] as number[], theirs: [] as number[] };
for (const [side, sandboxId] of [
  ['mine', mine],
  ['theirs', other],
] as const)
  for (const d of definitions[side])
    audiences[side].push(insert('audiences', sandboxId, { definition_id: d, lifecycle_state: 'DRAFT', size: d % 7 }));
const jobs = rows('jobs', () => ({ kind: 'SEGMENT', input: '{"definitionIds":[]}' }));
const events = rows('events');
const profiles = rows('profiles');
const simple = {
  'folders.byIds': { table: 'folders', ...rows('folders') },
  'datasets.byIds': { table: 'datasets', ...rows('datasets') },
  'external-audiences.byIds': {
    table: 'external_audiences',
    // Audience ids no audience has, so that the two lists below can take real ones (unique).
    ...rows('external_audiences', () => ({ audience_id: -serial })),
  },
  'jobs.byIds': { table: 'jobs', ...jobs },
  'definitions.byIds': { table: 'segment_definitions', ...definitions },
  'profiles.eventsByIds': { table: 'events', ...events },
};
// Each definition's latest job names it; an identity per profile, and one in the other sandbox
// for a profile of this one (a profile id asked for whose identity is not this sandbox's).
const latestOf = (sandboxId: number, definitionId: number) =>
  insert('jobs', sandboxId, { kind: 'SEGMENT', input: JSON.stringify({ definitionIds: [definitionId] }) });
const latest = {
  mine: definitions.mine.map((d) => latestOf(mine, d)),
  theirs: definitions.theirs.map((d) => latestOf(other, d)),
};
for (const p of profiles.mine) insert('identities', mine, { namespace: 'email', value: `${p}@x`, profile_id: p });
for (const p of profiles.theirs) insert('identities', other, { namespace: 'email', value: `${p}@x`, profile_id: p });
insert('identities', other, { namespace: 'email', value: 'elsewhere@x', profile_id: profiles.mine[20]! });
// A list of 300 identities in an audience of this sandbox, and one of 5 in the other's that
// shares an identity with it.
for (const [sandboxId, audienceId, n] of [
  [mine, audiences.mine[0]!, 300],
  [other, audiences.theirs[0]!, 5],
] as const) {
  insert('external_audiences', sandboxId, { audience_id: audienceId, ttl_in_days: 30 });
  for (let i = 0; i < n; i++)
    insert('external_members', sandboxId, {
      audience_id: audienceId,
      namespace: 'email',
      value: `m${i}@x`,
      imported_at: 0,
    });
}
conn.sqlite.exec('COMMIT');

/** A few of this sandbox's ids and one of the other's, unsorted. */
const asked = (ids: { mine: number[]; theirs: number[] }) => [
  ids.mine[250]!,
  ids.theirs[2]!,
  ids.mine[3]!,
  ids.mine[120]!,
];
const expected = (ids: { mine: number[] }) => [ids.mine[3]!, ids.mine[120]!, ids.mine[250]!];

describe('lookups by ids', () => {
  for (const [name, ids] of Object.entries(simple)) {
    it(`${name}: by primary key, this sandbox's rows in id order`, async () => {
      const s = statement(name);
      const params = [mine, JSON.stringify(asked(ids))];
      expectByPrimaryKey(plan(s, params), ids.table);
      const found = await conn.all<{ id: number }>(s, params);
      expect(found.map((r) => r.id)).toEqual(expected(ids));
    });
  }

  it("evaluation.audiences: by primary key, this sandbox's audiences with their definitions in id order", async () => {
    const s = statement('evaluation.audiences');
    const params = [mine, JSON.stringify(asked(audiences))];
    expectByPrimaryKey(plan(s, params), 'a');
    const found = await conn.all<{ id: number; audienceId: number }>(s, params);
    expect(found.map((r) => r.audienceId)).toEqual(expected(audiences));
    expect(found.map((r) => r.id)).toEqual(expected(definitions));
  });

  it("freshness.batchEvaluated: by primary key, this sandbox's batch-enabled audiences", async () => {
    const s = statement('freshness.batchEvaluated');
    const params = [mine, JSON.stringify(asked(audiences))];
    expectByPrimaryKey(plan(s, params), 'a');
    const found = await conn.all<{ id: number }>(s, params);
    expect(found.map((r) => r.id).sort((a, b) => a - b)).toEqual(expected(audiences));
  });

  it("latest-jobs.latest: definitions by primary key, the latest job of this sandbox's", async () => {
    const s = statement('latest-jobs.latest');
    const params = [mine, JSON.stringify(asked(definitions))];
    expectByPrimaryKey(plan(s, params), 'd');
    const found = await conn.all<{ id: number; definitionIds: string }>(s, params);
    const byDefinition = new Map(found.flatMap((r) => (JSON.parse(r.definitionIds) as number[]).map((d) => [d, r.id])));
    expect([...byDefinition.keys()].sort((a, b) => a - b)).toEqual(expected(definitions));
    expect(byDefinition.get(definitions.mine[120]!)).toBe(latest.mine[120]);
  });

  it("pending-members.rows: each identity through the identity index, this sandbox's list rows only", async () => {
    const s = statement('pending-members.rows');
    const added = [
      ['email', 'm250@x', profiles.mine[0]],
      ['email', 'm3@x', profiles.mine[1]],
      ['email', 'nowhere@x', profiles.mine[2]],
    ];
    const params = [JSON.stringify(added), mine];
    const lines = plan(s, params);
    expect(lines.slice(0, 2)).toEqual([
      expect.stringMatching(/^SCAN j /),
      'SEARCH x USING INDEX external_members_identity (sandbox_id=? AND namespace=? AND value=?)',
    ]);
    const found = await conn.all<{ idx: number; audienceId: number }>(s, params);
    expect(found.map((r) => [r.idx, r.audienceId])).toEqual([
      [0, audiences.mine[0]],
      [1, audiences.mine[0]],
    ]);
  });

  it("profiles.identitiesOf: through the profile index, this sandbox's identities only", async () => {
    const s = statement('profiles.identitiesOf');
    const params = [mine, JSON.stringify([profiles.mine[20]!, profiles.theirs[1]!, profiles.mine[7]!])];
    const lines = plan(s, params);
    expect(lines.find((d) => d.startsWith('SEARCH identities '))).toMatch(
      /INDEX identities_profile_namespace \(profile_id=\?\)/,
    );
    const found = await conn.all<{ profileId: number; id: string }>(s, params);
    expect(found).toEqual([
      { profileId: profiles.mine[7], namespace: 'email', id: `${profiles.mine[7]}@x` },
      { profileId: profiles.mine[20], namespace: 'email', id: `${profiles.mine[20]}@x` },
    ]);
  });
});
