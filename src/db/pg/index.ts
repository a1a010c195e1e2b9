/**
 * The PostgreSQL side of storage (SEGQL_DATABASE_URL=postgres://…): a pool, Drizzle over it with
 * the pg schema, and the migrations of drizzle/pg. SQLite stays the default (src/db/index.ts).
 */
import { fileURLToPath } from 'node:url';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import type { Statement, StatementRunner } from '../statement.js';
import * as schema from './schema.js';

// Resolved from this file, not the cwd, like SQLite's folder (docs/dependencies.md gotcha 13).
const migrationsFolder = fileURLToPath(new URL('../../../drizzle/pg', import.meta.url));

export type PgDb = NodePgDatabase<typeof schema> & { $client: pg.Pool };

export interface PgConnection {
  pool: pg.Pool;
  db: PgDb;
  close(): Promise<void>;
}

/** True for a URL that selects PostgreSQL (postgres:// or postgresql://). */
export function isPostgresUrl(url: string | undefined): url is string {
  return url !== undefined && /^postgres(ql)?:\/\//i.test(url);
}

/**
 * int8 and numeric come back from `pg` as strings by default (they may pass 2^53). SegQL's
 * bigint columns hold epoch milliseconds, ids and counts, all far below that, so they are
 * parsed as numbers; this applies to `count(*)` too, which is int8.
 */
const INT8_OID = 20;
pg.types.setTypeParser(INT8_OID, (value) => Number(value));

export function openPgDatabase(url: string, options: { max?: number } = {}): PgConnection {
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10 });
  // An idle client losing its server (a restart) must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  const db = drizzle(pool, { schema }) as PgDb;
  return { pool, db, close: () => pool.end() };
}

/**
 * Applies pending drizzle/pg migrations. Drizzle runs them in one transaction and records them
 * in drizzle.__drizzle_migrations; a second node migrating at the same moment waits on an
 * advisory lock, so each migration is applied once.
 */
export async function migratePg(conn: PgConnection): Promise<void> {
  const client = await conn.pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await migrate(drizzle(client, { schema }), { migrationsFolder });
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}

/** An arbitrary key for pg_advisory_lock, the same on every node ("SegQLmig" as bytes). */
const MIGRATION_LOCK = 0x5365_6751_4c6d_6967n.toString();

export { schema };

/**
 * The PostgreSQL side of statements by name (../statement.ts): each statement a named prepared
 * statement of the client that runs it, parsed and planned once per connection.
 */
export function pgStatementRunner(client: pg.Pool | pg.PoolClient): StatementRunner {
  return {
    async all<Row>(statement: Statement, params: readonly unknown[] = []) {
      return (await client.query({ name: statement.name, text: statement.postgres, values: [...params] }))
        .rows as Row[];
    },
    async get<Row>(statement: Statement, params: readonly unknown[] = []) {
      const { rows } = await client.query({ name: statement.name, text: statement.postgres, values: [...params] });
      return rows[0] as Row | undefined;
    },
    async run(statement: Statement, params: readonly unknown[] = []) {
      const result = await client.query({ name: statement.name, text: statement.postgres, values: [...params] });
      return { changes: result.rowCount ?? 0 };
    },
  };
}
