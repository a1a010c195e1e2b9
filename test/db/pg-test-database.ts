/**
 * A fresh, migrated PostgreSQL database for one test file, on the server SEGQL_TEST_DATABASE_URL
 * names (e.g. postgres://postgres@127.0.0.1:5432/test): created with a random name, migrated with
 * drizzle/pg, dropped after. Tests that use it skip (visibly) when the variable is not set.
 */
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import pg from 'pg';
import { inject } from 'vitest';
import { copySqliteToPostgres } from '../../src/db/pg/copy-from-sqlite.js';
import { migratePg, openPgDatabase, type PgConnection } from '../../src/db/pg/index.js';

export const pgAdminUrl = process.env.SEGQL_TEST_DATABASE_URL;

export interface PgTestDatabase {
  /** The new database's URL, for other processes. */
  url: string;
  conn: PgConnection;
  drop(): Promise<void>;
}

/** Runs one statement on the admin database (CREATE / DROP DATABASE). */
export async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: pgAdminUrl });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** The URL of database `name` on the server of SEGQL_TEST_DATABASE_URL. */
export function databaseUrl(name: string): string {
  if (!pgAdminUrl) throw new Error('SEGQL_TEST_DATABASE_URL is not set');
  const u = new URL(pgAdminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function freshPgDatabase(label = 'test'): Promise<PgTestDatabase> {
  if (!pgAdminUrl) throw new Error('SEGQL_TEST_DATABASE_URL is not set');
  const name = `segql_${label.replace(/\W/g, '_')}_${randomBytes(5).toString('hex')}`;
  // A copy of the run's migrated template (test/global-setup.ts) when there is one, else migrated here.
  const template = inject('pgTemplate');
  await admin(template ? `CREATE DATABASE ${name} TEMPLATE ${template}` : `CREATE DATABASE ${name}`);
  const url = databaseUrl(name);
  const conn = openPgDatabase(url);
  if (!template) await migratePg(conn);
  return {
    url,
    conn,
    async drop() {
      await conn.close();
      await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** A fresh migrated database holding a copy of the SQLite store `source`. */
export async function pgCopyOf(source: Database.Database, label: string): Promise<PgTestDatabase> {
  const db = await freshPgDatabase(label);
  const client = await db.conn.pool.connect();
  try {
    await copySqliteToPostgres(source, client);
  } finally {
    client.release();
  }
  return db;
}
