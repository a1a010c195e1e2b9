/**
 * segment_job_definitions (drizzle/0023, drizzle/pg/0016): the migration fills it from the jobs
 * already there by the rule the read used before it, so an upgraded store names the same latest
 * jobs; from then on triggers keep it as segment jobs are queued and definitions or jobs deleted;
 * and the latest-jobs statement reads it by its key, never the sandbox's jobs. On SQLite, and on
 * PostgreSQL when SEGQL_TEST_DATABASE_URL names a server.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate as migrateSqlite } from 'drizzle-orm/better-sqlite3/migrator';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate as migrateNodePg } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { migratePg, openPgDatabase, pgStatementRunner } from '../../src/db/pg/index.js';
import type { StatementRunner } from '../../src/db/statement.js';
import '../../src/domain/segment-jobs/latest-jobs.js';
import { admin, databaseUrl, pgAdminUrl } from './pg-test-database.js';
import { statementsOf } from './statements-harness.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const latestStatement = statementsOf('latest-jobs')('latest');

/** A copy of a migrations folder holding its migrations up to and including `lastTag` only. */
function migrationsUpTo(folder: string, lastTag: string, work: string): string {
  const journal = JSON.parse(readFileSync(join(root, folder, 'meta/_journal.json'), 'utf8'));
  const last = journal.entries.findIndex((e: { tag: string }) => e.tag === lastTag);
  expect(last).toBeGreaterThan(0);
  const entries = journal.entries.slice(0, last + 1);
  const out = join(work, folder);
  mkdirSync(join(out, 'meta'), { recursive: true });
  writeFileSync(join(out, 'meta/_journal.json'), JSON.stringify({ ...journal, entries }));
  for (const e of entries) copyFileSync(join(root, folder, `${e.tag}.sql`), join(out, `${e.tag}.sql`));
  return out;
}

/** A definition row; `true`/`false` are flags on both databases. */
const definition = (id: number, sandboxId: number, batch: boolean, createdAt: number) =>
  `INSERT INTO segment_definitions (id, sandbox_id, audience_id, name, name_key, expression_format, expression_value,
     expression_text, eval_batch, eval_streaming, eval_edge, eligible_streaming, eligible_edge, created_at, updated_at)
   VALUES (${id}, ${sandboxId}, ${100 + id}, 'd${id}', 'd${id}', 'PQL', 'true', 'true', ${batch}, false, false, false, false,
     ${createdAt}, ${createdAt})`;
const job = (id: number, sandboxId: number, input: object, createdAt: number, kind = 'SEGMENT') =>
  `INSERT INTO jobs (id, sandbox_id, kind, status, input, created_at, updated_at)
   VALUES (${id}, ${sandboxId}, '${kind}', 'SUCCEEDED', '${JSON.stringify(input)}', ${createdAt}, ${createdAt})`;

/** Each definition asked for with the id of its latest job, or null. */
async function latestOf(
  conn: StatementRunner,
  sandboxId: number,
  ids: number[],
): Promise<Record<number, number | null>> {
  const out: Record<number, number | null> = Object.fromEntries(ids.map((id) => [id, null]));
  const rows = await conn.all<{ id: number; definitionIds: string }>(latestStatement, [sandboxId, JSON.stringify(ids)]);
  for (const row of rows) for (const d of JSON.parse(row.definitionIds) as number[]) out[d] = Number(row.id);
  return out;
}

/**
 * Sandbox 1: definitions 1 and 5 batch-enabled before the `all` job 2, 2 batch-enabled but made
 * after it, 3 not batch-enabled (named by jobs 1 and 3), 4 named by an export only; sandbox 2:
 * definition 6, named by sandbox 1's job 1 (which does not count) and covered by its own `all`
 * job 5.
 */
const before = [
  "INSERT INTO sandboxes (id, name, created_at) VALUES (1, 'prod', 0), (2, 'other', 0)",
  definition(1, 1, true, 100),
  definition(2, 1, true, 2_500),
  definition(3, 1, false, 100),
  definition(4, 1, false, 100),
  definition(5, 1, true, 200),
  definition(6, 2, true, 100),
  job(1, 1, { definitionIds: [1, 3, 6], all: false, at: null }, 1_000),
  job(2, 1, { definitionIds: null, all: true, at: null }, 2_000),
  job(3, 1, { definitionIds: [3], all: false, at: null }, 3_000),
  job(4, 1, { definitionIds: [1, 2, 3, 4] }, 4_000, 'EXPORT'),
  job(5, 2, { definitionIds: null, all: true, at: null }, 5_000),
];
const answersBefore = { 1: 2, 2: null, 3: 3, 4: null, 5: 2 };

/** Migrated with the jobs above present, then used: the same answers, then the triggers' rows. */
async function upgradeAndUse(exec: (sql: string) => Promise<unknown[]>, conn: StatementRunner): Promise<void> {
  expect(await latestOf(conn, 1, [1, 2, 3, 4, 5])).toEqual(answersBefore);
  expect(await latestOf(conn, 2, [6])).toEqual({ 6: 5 });
  expect(await latestOf(conn, 2, [1])).toEqual({ 1: null });

  // Queued while 1, 2 and 5 are batch-enabled: theirs even once 1 is not; 3, enabled after it
  // was queued, keeps the job that named it.
  await exec(job(7, 1, { definitionIds: null, all: true, at: null }, 6_000));
  await exec('UPDATE segment_definitions SET eval_batch = false WHERE id = 1');
  await exec('UPDATE segment_definitions SET eval_batch = true WHERE id = 3');
  expect(await latestOf(conn, 1, [1, 2, 3, 4, 5])).toEqual({ 1: 7, 2: 7, 3: 3, 4: null, 5: 7 });
  // A job naming a definition of another sandbox records nothing for it.
  await exec(job(8, 2, { definitionIds: [4, 6], all: false, at: null }, 7_000));
  expect(await latestOf(conn, 1, [4])).toEqual({ 4: null });
  expect(await latestOf(conn, 2, [6])).toEqual({ 6: 8 });

  await exec('DELETE FROM segment_definitions WHERE id = 5');
  await exec('DELETE FROM jobs WHERE id = 3');
  expect(await latestOf(conn, 1, [3])).toEqual({ 3: 1 });
  await exec('DELETE FROM jobs WHERE id = 7');
  expect(await latestOf(conn, 1, [1, 2])).toEqual({ 1: 2, 2: null });
  const left = (await exec('SELECT definition_id AS d, job_id AS j FROM segment_job_definitions ORDER BY 1, 2')) as {
    d: number;
    j: number;
  }[];
  expect(left.map((r) => [Number(r.d), Number(r.j)])).toEqual([
    [1, 1],
    [1, 2],
    [3, 1],
    [6, 5],
    [6, 8],
  ]);
}

describe('segment_job_definitions on SQLite', () => {
  const work = mkdtempSync(join(tmpdir(), 'segment-job-definitions-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('answers as before the migration, then follows jobs queued and rows deleted', async () => {
    const file = join(work, 'upgraded.db');
    const old = openDatabase(file, { migrate: false });
    try {
      migrateSqlite(old.db, { migrationsFolder: migrationsUpTo('drizzle', '0022_job_range_result_arrays', work) });
      for (const sql of before) old.sqlite.exec(sql);
    } finally {
      old.close();
    }
    const conn = openDatabase(file);
    try {
      await upgradeAndUse(async (sql) => {
        const statement = conn.sqlite.prepare(sql);
        if (statement.reader) return statement.all();
        statement.run();
        return [];
      }, conn);
    } finally {
      conn.close();
    }
  });

  it('finds a definition no job named with one seek, however many segment jobs the sandbox has', async () => {
    const conn = openDatabase(':memory:');
    try {
      for (const sql of before) conn.sqlite.exec(sql);
      conn.sqlite.exec('BEGIN');
      const insert = conn.sqlite.prepare(
        `INSERT INTO jobs (sandbox_id, kind, status, input, created_at, updated_at) VALUES (1, 'SEGMENT', 'SUCCEEDED', ?, ?, ?)`,
      );
      for (let i = 0; i < 5_000; i++)
        insert.run(JSON.stringify({ definitionIds: [1 + (i % 3)], all: false }), 10_000 + i, 10_000 + i);
      conn.sqlite.exec('COMMIT');
      const plan = (
        conn.sqlite.prepare(`EXPLAIN QUERY PLAN ${latestStatement.sqlite}`).all(1, '[4, 5]') as { detail: string }[]
      ).map((r) => r.detail);
      // The definition's newest row by the key; jobs only by rowid, for the rows that were found.
      expect(plan).toContainEqual(expect.stringMatching(/^SEARCH s USING PRIMARY KEY \(definition_id=\?\)$/));
      expect(plan.filter((d) => /\b(jobs|j|job)\b/.test(d))).toEqual([
        expect.stringMatching(/^SEARCH job USING INTEGER PRIMARY KEY \(rowid=\?\)$/),
      ]);
      // Nothing read whole but the list of ids asked for.
      expect(plan.filter((d) => d.startsWith('SCAN'))).toEqual([expect.stringMatching(/^SCAN json_each /)]);
      // The newest row walked to on the key, not sorted.
      expect(plan.filter((d) => d.includes('TEMP B-TREE'))).toEqual(['USE TEMP B-TREE FOR GROUP BY']);
      expect(await latestOf(conn, 1, [4, 5])).toEqual({ 4: null, 5: 2 });
    } finally {
      conn.close();
    }
  });
});

describe.skipIf(!pgAdminUrl)('segment_job_definitions on PostgreSQL (SEGQL_TEST_DATABASE_URL)', () => {
  const work = mkdtempSync(join(tmpdir(), 'segment-job-definitions-pg-'));
  const made: string[] = [];
  /** A new, empty database of its own for each test. */
  async function database(): Promise<string> {
    const name = `segql_test_${randomBytes(6).toString('hex')}`;
    await admin(`CREATE DATABASE ${name}`);
    made.push(name);
    return databaseUrl(name);
  }
  afterAll(async () => {
    for (const name of made) await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    rmSync(work, { recursive: true, force: true });
  });

  it('answers as before the migration, then follows jobs queued and rows deleted', async () => {
    const url = await database();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await migrateNodePg(drizzle(client), {
        migrationsFolder: migrationsUpTo('drizzle/pg', '0015_memberships_exited_index', work),
      });
      for (const sql of before) await client.query(sql);
    } finally {
      await client.end();
    }
    const conn = openPgDatabase(url, { max: 1 });
    try {
      await migratePg(conn);
      await upgradeAndUse(async (sql) => (await conn.pool.query(sql)).rows, pgStatementRunner(conn.pool));
    } finally {
      await conn.close();
    }
  });

  it('finds a definition no job named through the key, however many segment jobs the sandbox has', async () => {
    const conn = openPgDatabase(await database(), { max: 1 });
    try {
      await migratePg(conn);
      for (const sql of before) await conn.pool.query(sql);
      await conn.pool.query(
        `INSERT INTO jobs (id, sandbox_id, kind, status, input, created_at, updated_at)
         SELECT 1000 + g, 1, 'SEGMENT', 'SUCCEEDED', jsonb_build_object('definitionIds', jsonb_build_array(1 + g % 3), 'all', false),
           10000 + g, 10000 + g
         FROM generate_series(1, 5000) g`,
      );
      await conn.pool.query('ANALYZE');
      const { rows } = await conn.pool.query(
        `EXPLAIN ${latestStatement.postgres.replace('$1', '1').replace('$2', "'[4, 5]'")}`,
      );
      const plan = rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
      // The definition's newest row by the key; no walk of the sandbox's jobs.
      expect(plan).toMatch(
        /Index Only Scan Backward using segment_job_definitions_definition_id_job_id_pk on segment_job_definitions s/,
      );
      expect(plan).not.toMatch(/Seq Scan on (jobs|segment_job_definitions)/);
      expect(plan).not.toMatch(/jobs_sandbox_kind/);
      expect(await latestOf(pgStatementRunner(conn.pool), 1, [4, 5])).toEqual({ 4: null, 5: 2 });
    } finally {
      await conn.close();
    }
  });
});
