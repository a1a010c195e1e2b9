/**
 * Copying a SQLite store into PostgreSQL: every table arrives with every row, documents as
 * equal jsonb, booleans as booleans, identity sequences past the copied ids, and a second copy
 * into the same database is refused. Skipped without SEGQL_TEST_DATABASE_URL.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copySqliteToPostgres } from '../../src/db/pg/copy-from-sqlite.js';
import { segqlArgs } from '../segql-command.js';
import { freshPgDatabase, type PgTestDatabase, pgAdminUrl } from './pg-test-database.js';
import { buildSegmentStore, type SegmentStore } from './segment-store.js';

describe.skipIf(!pgAdminUrl)('copying a SQLite store into PostgreSQL', () => {
  let store: SegmentStore;
  let db: PgTestDatabase;
  let copied: Record<string, number>;

  beforeAll(async () => {
    store = await buildSegmentStore('copy', 300, 4);
    store.conn.sqlite
      .prepare(
        `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, payload)
         VALUES (?, ?, 1, 'REALIZED', 1, 1, '{"score": 0.5, "tags": ["a"]}')`,
      )
      .run(store.sandboxId, store.definitions[0]!.audienceId);
    db = await freshPgDatabase('copy');
    const client = await db.conn.pool.connect();
    try {
      copied = (await copySqliteToPostgres(store.conn.sqlite, client)).rows;
    } finally {
      client.release();
    }
  }, 120_000);
  afterAll(async () => {
    store?.close();
    await db?.drop();
  });

  const pgCount = async (table: string) =>
    (await db.conn.pool.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n as number;

  it('copies every row of every table', async () => {
    // Every table but SQLite's own, Drizzle's journal and the FTS5 index with its shadow tables
    // (PostgreSQL searches a generated tsvector column instead).
    const tables = (
      store.conn.sqlite.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all() as string[]
    ).filter((t) => !/^(sqlite_|__drizzle|search_index)/.test(t));
    expect(tables.length).toBeGreaterThan(25);
    for (const table of tables) {
      const n = store.conn.sqlite.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
      expect({ table, n: copied[table] }).toEqual({ table, n });
      expect({ table, n: await pgCount(table) }).toEqual({ table, n });
    }
    expect(copied.profiles).toBe(300);
  });

  it('keeps documents, booleans and counts as SQLite had them', async () => {
    const lite = store.conn.sqlite
      .prepare('SELECT id, json(attributes) AS a FROM profiles ORDER BY id LIMIT 50')
      .all() as { id: number; a: string }[];
    const { rows } = await db.conn.pool.query('SELECT id, attributes FROM profiles ORDER BY id LIMIT 50');
    expect(rows.map((r) => [r.id, r.attributes])).toEqual(lite.map((r) => [r.id, JSON.parse(r.a)]));
    const payload = (await db.conn.pool.query('SELECT payload FROM memberships WHERE profile_id = 1')).rows[0].payload;
    expect(payload).toEqual({ score: 0.5, tags: ['a'] });
    const flags = (
      await db.conn.pool.query('SELECT eval_batch, eval_streaming FROM segment_definitions ORDER BY id LIMIT 1')
    ).rows[0];
    expect(flags).toEqual({ eval_batch: true, eval_streaming: false });
    const sandbox = (await db.conn.pool.query('SELECT profile_count FROM sandboxes')).rows[0];
    expect(sandbox.profile_count).toBe(300);
    // The generated search vector is PostgreSQL's own: computed for every copied document.
    const unsearchable = (
      await db.conn.pool.query('SELECT count(*) AS n FROM search_documents WHERE search_vector IS NULL')
    ).rows[0].n;
    expect(unsearchable).toBe(0);
  });

  it('continues ids after the copied ones and refuses a second copy', async () => {
    const next = (
      await db.conn.pool.query(
        `INSERT INTO profiles (sandbox_id, attributes, created_at, updated_at) VALUES (1, '{}', 0, 0) RETURNING id`,
      )
    ).rows[0].id;
    expect(next).toBe(301);
    const client = await db.conn.pool.connect();
    try {
      await expect(copySqliteToPostgres(store.conn.sqlite, client)).rejects.toThrow(/already holds data/);
    } finally {
      client.release();
    }
  });

  it('is what `segql migrate --from-sqlite` does', async () => {
    const target = await freshPgDatabase('copy_cli');
    try {
      store.conn.sqlite.pragma('wal_checkpoint(TRUNCATE)');
      const run = await new Promise<{ code: number; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          segqlArgs('migrate', '--from-sqlite', store.file),
          {
            cwd: fileURLToPath(new URL('../..', import.meta.url)),
            env: { ...process.env, SEGQL_DATABASE_URL: target.url, SEGQL_LOG_LEVEL: 'warn' },
            timeout: 60_000,
          },
          (err, _stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
        );
      });
      expect(run).toEqual({ code: 0, stderr: '' });
      const counts = (
        await target.conn.pool.query(
          'SELECT (SELECT count(*) FROM profiles) AS profiles, (SELECT count(*) FROM segment_definitions) AS definitions',
        )
      ).rows[0];
      expect(counts).toEqual({ profiles: 300, definitions: copied.segment_definitions });
    } finally {
      await target.drop();
    }
  }, 90_000);
});
