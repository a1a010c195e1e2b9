/**
 * The PostgreSQL side of storage (SEGQL_DATABASE_URL=postgres://…): a pool, Drizzle over it with
 * the pg schema, and the migrations of drizzle/pg. SQLite stays the default (src/db/index.ts).
 */
import { fileURLToPath } from 'node:url';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { ConnectionCache } from '../connection-cache.js';
import type { Statement, StatementRunner } from '../statement.js';
import { countStatement } from '../statement-count.js';
import type { Store, UnitClient, UnitLock } from '../store.js';
import { refuseInsideOpenUnit } from '../unit.js';
import * as schema from './schema.js';

// Resolved from this file, not the cwd, like SQLite's folder (docs/dependencies.md gotcha 13).
const migrationsFolder = fileURLToPath(new URL('../../../drizzle/pg', import.meta.url));

export type PgDb = NodePgDatabase<typeof schema> & { $client: pg.Pool };

export interface PgConnection extends Store {
  readonly dialect: 'postgres';
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

/**
 * Every SegQL session starts with JIT compilation off. PostgreSQL compiles a statement to machine
 * code when its estimated cost passes jit_above_cost, anew for each execution, and the PQL
 * compiler's statements pass it easily, most of all on tables not yet analysed (a new sandbox's),
 * whose sizes the planner guesses: 20–30 ms of compiling for a statement that runs in a few, and
 * for a segment job's range 0.8 s of compiling for a 0.5 s statement (bench/RESULTS.md). An
 * `options` parameter in the database URL (e.g. `?options=-c%20jit%3Don`) takes precedence.
 */
export function pgPoolConfig(url: string, max: number): pg.PoolConfig {
  return { connectionString: url, max, options: '-c jit=off' };
}

export function openPgDatabase(url: string, options: { max?: number } = {}): PgConnection {
  const pool = new pg.Pool(pgPoolConfig(url, options.max ?? 10));
  // An idle client losing its server (a restart) must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  const db = drizzle(pool, { schema }) as PgDb;
  const runner = pgStatementRunner(pool);
  const store: PgConnection = {
    ...runner,
    dialect: 'postgres',
    cache: new ConnectionCache(),
    units: { begin: (lock) => beginUnit(pool, lock) },
    plan: (texts) => planOn(pool, texts.postgres()),
    pool,
    db,
    close: () => pool.end(),
  };
  if (process.env.VITEST) {
    store.all = (statement, params) => {
      refuseInsideOpenUnit(store);
      return runner.all(statement, params);
    };
    store.get = (statement, params) => {
      refuseInsideOpenUnit(store);
      return runner.get(statement, params);
    };
    store.run = (statement, params) => {
      refuseInsideOpenUnit(store);
      return runner.run(statement, params);
    };
  }
  return store;
}

/**
 * The statements of the catalogue on one client (inside its transaction), as a Store: the
 * shared asynchronous reads a cluster job makes inside its own snapshot take one. A cache of its
 * own: nothing is kept across jobs. Its plans run on the client, under the caller's timeouts.
 */
export function clientStore(client: pg.ClientBase | pg.Pool): Store {
  return {
    ...pgStatementRunner(client),
    dialect: 'postgres',
    cache: new ConnectionCache(),
    async plan(texts) {
      const query = texts.postgres();
      await client.query(`EXPLAIN ${query.sql}`, [...query.params]);
    },
  };
}

/** How long PostgreSQL may take to plan a compiled definition before it is refused as too large. */
const PLAN_TIMEOUT_MS = 5_000;

/**
 * EXPLAIN (plan, not run) on a client of its own, in a transaction rolled back after: a compiled
 * definition PostgreSQL refuses, or takes longer than PLAN_TIMEOUT_MS to plan (a chain of
 * hundreds of terms nests a sub-select per operator), fails here rather than in every job.
 */
async function planOn(pool: pg.Pool, query: { sql: string; params: readonly unknown[] }): Promise<void> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('statement_timeout', $1, true)", [String(PLAN_TIMEOUT_MS)]);
    await client.query(`EXPLAIN ${query.sql}`, [...query.params]);
  } catch (err) {
    broken = true;
    throw err;
  } finally {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    client.release(broken);
  }
}

/**
 * An arbitrary key for the units' write lock ("SegQLunt" as bytes). Every unit of work on the
 * cluster takes it for its transaction, so units run one at a time across all nodes, as they
 * do on SQLite: a unit reads, decides and writes (a name still free, a parent folder there, a
 * version number next) without a rival unit slipping in between. Units are the API's writes,
 * short and few; ingestion and jobs write through their own transactions and never take it.
 */
const UNIT_LOCK = 0x5365_6751_4c75_6e74n.toString();

async function beginUnit(pool: pg.Pool, lock: UnitLock | undefined): Promise<UnitClient> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    if (lock) await client.query('SELECT pg_advisory_xact_lock($1, $2)', [lock[0], lock[1]]);
    else await client.query('SELECT pg_advisory_xact_lock($1)', [UNIT_LOCK]);
  } catch (err) {
    client.release(true);
    throw err;
  }
  return {
    ...pgStatementRunner(client),
    async exec(sql) {
      await client.query(sql);
    },
    release: (broken) => client.release(broken),
  };
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
export function pgStatementRunner(client: pg.Pool | pg.ClientBase): StatementRunner {
  return {
    async all<Row>(statement: Statement, params: readonly unknown[] = []) {
      countStatement();
      return (await client.query({ name: statement.name, text: statement.postgres, values: [...params] }))
        .rows as Row[];
    },
    async get<Row>(statement: Statement, params: readonly unknown[] = []) {
      countStatement();
      const { rows } = await client.query({ name: statement.name, text: statement.postgres, values: [...params] });
      return rows[0] as Row | undefined;
    },
    async run(statement: Statement, params: readonly unknown[] = []) {
      countStatement();
      const result = await client.query({ name: statement.name, text: statement.postgres, values: [...params] });
      return { changes: result.rowCount ?? 0 };
    },
  };
}
