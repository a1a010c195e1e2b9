/**
 * A fresh, migrated PostgreSQL database for one test file, on the server SEGQL_TEST_DATABASE_URL
 * names (e.g. postgres://postgres@127.0.0.1:5432/test): created with a random name, migrated with
 * drizzle/pg, dropped after. Tests that use it skip (visibly) when the variable is not set.
 *
 * Within a vitest run, `drop` does not wait for the DROP DATABASE: each forces a checkpoint,
 * 0.3–4 s on the shared 2-core machine, which the next test of the fork waited out (some 70 of
 * them per run, most for the e2e suite's servers on PostgreSQL). The names carry the run's id,
 * so the run's end drops whatever is left (`dropRunDatabases`, test/global-setup.ts).
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

/** Per label, how many databases this process asked for, and the next one, made ahead. */
const asked = new Map<string, number>();
const madeAhead = new Map<string, Promise<string>>();

async function createDatabase(label: string, template: string | undefined, run: string | undefined): Promise<string> {
  const name = `segql_${label.replace(/\W/g, '_')}_${run ? `${run}_` : ''}${randomBytes(5).toString('hex')}`;
  await admin(template ? `CREATE DATABASE ${name} TEMPLATE ${template}` : `CREATE DATABASE ${name}`);
  await admin(TEST_SETTINGS.map((setting) => `ALTER DATABASE ${name} SET ${setting}`).join('; '));
  return name;
}

/**
 * What every session on a test database starts with (the settings belong to the database, so each
 * copy of the template is given them again). Neither changes an answer, only how long it takes.
 * - JIT off: a test database's tables hold a few hundred rows, but a statement the PQL compiler
 *   writes can still be estimated above jit_above_cost (tables never analyzed are guessed at), and
 *   then PostgreSQL compiled it to machine code first, 20–30 ms a statement, far more than running it.
 * - synchronous_commit off: a commit does not wait for its WAL to reach the disk (1–1.7 ms each on
 *   the 2-core machine, 0.2–0.6 ms without), and the e2e suite on PostgreSQL commits at each write.
 *   It gives up only the last commits if the PostgreSQL server itself crashed; no test crashes it
 *   (the crash tests kill SegQL's processes).
 */
export const TEST_SETTINGS = ['jit = off', 'synchronous_commit = off'];

export async function freshPgDatabase(label = 'test'): Promise<PgTestDatabase> {
  if (!pgAdminUrl) throw new Error('SEGQL_TEST_DATABASE_URL is not set');
  // A copy of the run's migrated template (test/global-setup.ts) when there is one, else migrated here.
  const template = inject('pgTemplate');
  const run = inject('pgRun');
  const ahead = madeAhead.get(label);
  madeAhead.delete(label);
  const name = (await ahead?.catch(() => undefined)) ?? (await createDatabase(label, template, run));
  // A label asked for twice (the e2e harness's, once per server) is likely asked for again: the
  // next copy is made while this one is in use, so the next server does not wait its second or so.
  // One made for nothing is dropped at the run's end with the others.
  const times = (asked.get(label) ?? 0) + 1;
  asked.set(label, times);
  if (run && template && times >= 2) {
    const next = createDatabase(label, template, run);
    next.catch(() => {});
    madeAhead.set(label, next);
  }
  const url = databaseUrl(name);
  const conn = openPgDatabase(url);
  if (!template) await migratePg(conn);
  return {
    url,
    conn,
    async drop() {
      await conn.close();
      const dropped = admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      if (!run) return dropped;
      // A drop cut short by its process's end, or failed, is the run's end's (dropRunDatabases).
      dropped.catch(() => {});
    },
  };
}

/** Drops the run's template and every database made from it (a few at a time: their checkpoints coincide). */
export async function dropRunDatabases(run: string): Promise<void> {
  const c = new pg.Client({ connectionString: pgAdminUrl });
  await c.connect();
  let names: string[];
  try {
    const { rows } = await c.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname ~ ('^segql_.*_' || $1::text || '(_|$)')`,
      [run],
    );
    names = rows.map((r) => r.datname);
  } finally {
    await c.end();
  }
  const queue = [...names];
  const dropper = async () => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      await admin(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, dropper));
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
