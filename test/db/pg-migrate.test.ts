/**
 * The PostgreSQL migrations on a real server: a fresh database per run, migrated by `segql
 * migrate`, holds every table of the SQLite schema with the same columns and the indexes of the
 * pg schema, and its triggers keep profile counts and search documents as SQLite's do. Skipped
 * (visibly) without SEGQL_TEST_DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test.
 */

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import { getTableConfig as pgTableConfig } from 'drizzle-orm/pg-core';
import { getTableConfig as sqliteTableConfig } from 'drizzle-orm/sqlite-core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratePg, openPgDatabase } from '../../src/db/pg/index.js';
import * as pgSchema from '../../src/db/pg/schema.js';
import { PG_ONLY_COLUMNS } from '../../src/db/pg/schema-drift.js';
import * as sqliteSchema from '../../src/db/schema.js';
import { segqlArgs } from '../segql-command.js';
import { admin } from './pg-test-database.js';

const adminUrl = process.env.SEGQL_TEST_DATABASE_URL;
const root = fileURLToPath(new URL('../..', import.meta.url));

const sqliteTables = Object.values(sqliteSchema)
  .filter((v) => typeof v === 'object' && v !== null && Symbol.for('drizzle:IsDrizzleTable') in v)
  .map((t) => sqliteTableConfig(t as never));
const pgTables = Object.values(pgSchema)
  .filter((v) => typeof v === 'object' && v !== null && Symbol.for('drizzle:IsDrizzleTable') in v)
  .map((t) => pgTableConfig(t as never));

describe.skipIf(!adminUrl)('PostgreSQL migrations (SEGQL_TEST_DATABASE_URL)', () => {
  const name = `segql_test_${randomBytes(6).toString('hex')}`;
  let url: string;
  let client: pg.Client;

  beforeAll(async () => {
    await admin(`CREATE DATABASE ${name}`);
    const u = new URL(adminUrl!);
    u.pathname = `/${name}`;
    url = u.toString();
    const run = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        segqlArgs('migrate'),
        { cwd: root, env: { ...process.env, SEGQL_DATABASE_URL: url }, timeout: 60_000 },
        (err, _stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    client = new pg.Client({ connectionString: url });
    await client.connect();
  }, 90_000);

  afterAll(async () => {
    await client?.end();
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });

  it('has every SQLite table with the same columns', async () => {
    const { rows } = await client.query<{ table_name: string; column_name: string }>(
      `SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name IN (SELECT table_name FROM information_schema.tables
          WHERE table_schema = 'public' AND table_type = 'BASE TABLE')`,
    );
    const live = new Map<string, string[]>();
    for (const r of rows) live.set(r.table_name, [...(live.get(r.table_name) ?? []), r.column_name]);
    expect(sqliteTables.length).toBeGreaterThan(25);
    for (const table of sqliteTables) {
      const expected = [...table.columns.map((c) => c.name), ...(PG_ONLY_COLUMNS[table.name] ?? [])].sort();
      expect({ table: table.name, columns: (live.get(table.name) ?? []).sort() }).toEqual({
        table: table.name,
        columns: expected,
      });
    }
    expect([...live.keys()].sort()).toEqual(sqliteTables.map((t) => t.name).sort());
  });

  it('has every index of the pg schema, the GIN, partial and expression ones as declared', async () => {
    const { rows } = await client.query<{ indexname: string; indexdef: string }>(
      "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    );
    const defs = new Map(rows.map((r) => [r.indexname, r.indexdef]));
    const declared = pgTables.flatMap((t) => t.indexes.map((i) => i.config.name!));
    expect(declared.length).toBeGreaterThan(40);
    expect(declared.filter((n) => !defs.has(n))).toEqual([]);
    expect(defs.get('profiles_attributes_gin')).toMatch(/USING gin \(attributes jsonb_path_ops\)/);
    expect(defs.get('search_documents_vector')).toMatch(/USING gin \(search_vector\)/);
    expect(defs.get('jobs_queued')).toMatch(/WHERE \(status = 'QUEUED'::text\)/);
    expect(defs.get('jobs_preview_definition')).toMatch(/\(\(input ->> 'definitionId'::text\)\)::bigint/);
  });

  it('applies nothing twice when migrated again (two nodes at once)', async () => {
    const a = openPgDatabase(url, { max: 1 });
    const b = openPgDatabase(url, { max: 1 });
    try {
      await Promise.all([migratePg(a), migratePg(b)]);
    } finally {
      await a.close();
      await b.close();
    }
    const { rows } = await client.query('SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations');
    // One row per migration in drizzle/pg, each applied once.
    const journal = JSON.parse(readFileSync(join(root, 'drizzle/pg/meta/_journal.json'), 'utf8'));
    expect(journal.entries.length).toBeGreaterThanOrEqual(3);
    expect(rows[0].n).toBe(journal.entries.length);
  });

  it('keeps profile counts and search documents by trigger', async () => {
    const q = async (sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows;
    const [{ id: sandbox }] = await q("INSERT INTO sandboxes (name, created_at) VALUES ('t', 1) RETURNING id");
    await q(
      "INSERT INTO profiles (sandbox_id, attributes, created_at, updated_at) SELECT $1, jsonb_build_object('n', g), 1, 1 FROM generate_series(1, 7) g",
      [sandbox],
    );
    await q('DELETE FROM profiles WHERE sandbox_id = $1 AND (attributes->>$2)::int <= 2', [sandbox, 'n']);
    expect(await q('SELECT profile_count FROM sandboxes WHERE id = $1', [sandbox])).toEqual([{ profile_count: 5 }]);

    const [{ id: folder }] = await q(
      "INSERT INTO folders (sandbox_id, name, created_at) VALUES ($1, 'emea', 1) RETURNING id",
      [sandbox],
    );
    const [{ id: audience }] = await q(
      `INSERT INTO audiences (sandbox_id, name, name_key, namespace, origin, lifecycle_state, labels, folder_id, created_at, updated_at)
       VALUES ($1, 'Big Spenders', 'big spenders', 'segql', 'SEGMENTATION_SERVICE', 'DRAFT', '["vip"]', $2, 1, 1) RETURNING id`,
      [sandbox, folder],
    );
    await q("UPDATE folders SET name = 'europe' WHERE id = $1", [folder]);
    const search = (text: string) =>
      q(
        "SELECT kind, entity_key, gid, folder FROM search_documents WHERE sandbox_id = $1 AND search_vector @@ to_tsquery('simple', $2)",
        [sandbox, text],
      );
    expect(await search('spend:* & vip')).toEqual([
      {
        kind: 'AUDIENCE',
        entity_key: String(audience),
        gid: Buffer.from(`Audience:${audience}`).toString('base64'),
        folder: '/europe',
      },
    ]);
    await q('DELETE FROM audiences WHERE id = $1', [audience]);
    expect(await search('spend:*')).toEqual([]);
    const [{ revision }] = await q('SELECT revision FROM search_revisions WHERE sandbox_id = $1', [sandbox]);
    expect(revision).toBeGreaterThanOrEqual(3);
  });
});

describe.skipIf(!adminUrl)('PostgreSQL migrations over data (SEGQL_TEST_DATABASE_URL)', () => {
  const name = `segql_test_${randomBytes(6).toString('hex')}`;
  let url: string;
  let work: string;

  beforeAll(async () => {
    await admin(`CREATE DATABASE ${name}`);
    const u = new URL(adminUrl!);
    u.pathname = `/${name}`;
    url = u.toString();
    work = mkdtempSync(join(tmpdir(), 'segql-migrations-'));
  });

  afterAll(async () => {
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    rmSync(work, { recursive: true, force: true });
  });

  /** Applies drizzle/pg's migrations up to and including `lastTag` only. */
  async function migrateUpTo(lastTag: string): Promise<void> {
    const journal = JSON.parse(readFileSync(join(root, 'drizzle/pg/meta/_journal.json'), 'utf8'));
    const last = journal.entries.findIndex((e: { tag: string }) => e.tag === lastTag);
    expect(last).toBeGreaterThan(0);
    const entries = journal.entries.slice(0, last + 1);
    mkdirSync(join(work, 'meta'), { recursive: true });
    writeFileSync(join(work, 'meta/_journal.json'), JSON.stringify({ ...journal, entries }));
    for (const e of entries) copyFileSync(join(root, `drizzle/pg/${e.tag}.sql`), join(work, `${e.tag}.sql`));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await migrate(drizzle(client), { migrationsFolder: work });
    } finally {
      await client.end();
    }
  }

  it('gathers the verdicts a running job staged row by row into one sorted array per range and audience', async () => {
    await migrateUpTo('0013_pql_tiny_instants');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(
        `INSERT INTO job_range_results (job_id, audience_id, profile_id, sandbox_id, range_no)
         VALUES (7, 1, 30, 1, 0), (7, 1, 10, 1, 0), (7, 2, 10, 1, 0), (7, 1, 120, 1, 1)`,
      );
      const conn = openPgDatabase(url, { max: 1 });
      try {
        await migratePg(conn);
      } finally {
        await conn.close();
      }
      const { rows } = await client.query(
        'SELECT job_id, range_no, audience_id, sandbox_id, profile_ids FROM job_range_results ORDER BY range_no, audience_id',
      );
      expect(rows).toEqual([
        { job_id: 7, range_no: 0, audience_id: 1, sandbox_id: 1, profile_ids: ['10', '30'] },
        { job_id: 7, range_no: 0, audience_id: 2, sandbox_id: 1, profile_ids: ['10'] },
        { job_id: 7, range_no: 1, audience_id: 1, sandbox_id: 1, profile_ids: ['120'] },
      ]);
      // Stored out of line without compression ('e'), as the migration sets it.
      const storage = await client.query(
        "SELECT attstorage FROM pg_attribute WHERE attrelid = 'job_range_results'::regclass AND attname = 'profile_ids'",
      );
      expect(storage.rows).toEqual([{ attstorage: 'e' }]);
    } finally {
      await client.end();
    }
  });
});

describe.skipIf(adminUrl)('PostgreSQL migrations', () => {
  it.skip('need SEGQL_TEST_DATABASE_URL (a PostgreSQL that may create databases), e.g. postgres://postgres@127.0.0.1:5432/test', () => {});
});
