import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { type BetterSQLite3Database, drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { registerPqlFunctions } from '../pql/index.js';
import { ConnectionCache } from './connection-cache.js';
import { DatabaseDamagedError, damaged, isCorruption, quickCheck } from './integrity.js';
import * as schema from './schema.js';
import { registerSearchFunctions } from './search-functions.js';
import { sqliteStatementRunner } from './statement.js';
import { countStatement } from './statement-count.js';
import type { Store } from './store.js';
import { installWalCoalescing } from './wal-coalesce.js';
import { WriteGate } from './write-gate.js';

export type Sqlite = Database.Database;
type Db = BetterSQLite3Database<typeof schema> & { $client: Sqlite };

export interface Connection extends Store {
  readonly dialect: 'sqlite';
  /** Never set: units run on the one connection, in turns (unit.ts). */
  readonly units?: undefined;
  sqlite: Sqlite;
  db: Db;
  /**
   * The process's writers of this file take turns through it (write-gate.ts): the main thread
   * opens one, and job worker threads open theirs on its `buffer`.
   */
  writeGate: WriteGate;
  close(): void;
}

// Resolved from this file, not the cwd, so tests, the CLI and a built dist/ all find it (docs/dependencies.md gotcha 13).
const migrationsFolder = fileURLToPath(new URL('../../drizzle', import.meta.url));

let statementCounterInstalled = false;

export { sqlStatementsTotal } from './statement-count.js';

/**
 * Counts every statement execution by patching better-sqlite3's Statement prototype once:
 * a counter increment per call, no proxies, so hot loops pay almost nothing.
 */
function installStatementCounter(sqlite: Sqlite): void {
  if (statementCounterInstalled) return;
  statementCounterInstalled = true;
  const proto = Object.getPrototypeOf(sqlite.prepare('select 1')) as Record<string, unknown>;
  for (const method of ['run', 'get', 'all', 'iterate'] as const) {
    const original = proto[method] as (...args: unknown[]) => unknown;
    proto[method] = function (this: unknown, ...args: unknown[]) {
      countStatement();
      return original.apply(this, args);
    };
  }
  const dbProto = Object.getPrototypeOf(sqlite) as Record<string, unknown>;
  const exec = dbProto.exec as (...args: unknown[]) => unknown;
  dbProto.exec = function (this: unknown, ...args: unknown[]) {
    countStatement();
    return exec.apply(this, args);
  };
}

interface OpenOptions {
  /** Apply pending migrations (default true). Read-only worker connections pass false. */
  migrate?: boolean;
  readonly?: boolean;
  /** Run `PRAGMA quick_check` first and refuse a damaged file (DatabaseDamagedError). */
  integrityCheck?: boolean;
  /** The buffer of another connection's write gate, to take turns with it (a worker thread's connection). */
  writeGate?: SharedArrayBuffer;
  /** Page cache in KiB (default 256 MiB, for the scans of segment jobs); see WRITER_CACHE_KIB. */
  cacheKib?: number;
}

/**
 * The page cache of a connection that commits many small transactions (the ingest thread's).
 * Reads outside a write come from the memory map, so such a cache holds what writes touched and
 * only grows. And every commit may scan it whole: when a b-tree split reorders its pages, SQLite
 * parks one under the page number of the 1 GiB lock byte, and on a file below 1 GiB the commit's
 * cache truncation then walks every cached page to drop pages past the end (pcache1 keeps only a
 * high-water page number). At 256 MiB that walk grows to tens of thousands of pages a commit;
 * 8 MiB holds a group's dirty pages and the b-trees' inner pages several times over.
 */
export const WRITER_CACHE_KIB = 8192;

/**
 * Opens the SQLite file (or `:memory:`) with the pragmas SegQL relies on: WAL so readers never
 * block the writer, NORMAL sync (durable at checkpoints, safe against process crashes), a
 * large page cache and memory-mapped I/O for the scans of segment jobs.
 */
export function openDatabase(file: string, options: OpenOptions = {}): Connection {
  if (file !== ':memory:') {
    mkdirSync(dirname(file), { recursive: true });
    installWalCoalescing();
  }
  const sqlite = new Database(file, { readonly: options.readonly ?? false });
  let db: Db;
  try {
    installStatementCounter(sqlite);
    if (!options.readonly) {
      sqlite.pragma('journal_mode = WAL');
      sqlite.pragma('synchronous = NORMAL');
    }
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma(`cache_size = -${options.cacheKib ?? 262_144}`);
    sqlite.pragma('mmap_size = 1073741824');
    sqlite.pragma('temp_store = MEMORY');
    // Before migrating: a migration must not write onto damaged pages.
    if (options.integrityCheck) quickCheck(sqlite, file);
    registerPqlFunctions(sqlite);
    registerSearchFunctions(sqlite);
    db = drizzle(sqlite, { schema }) as Db;
    if (options.migrate !== false && !options.readonly) migrate(db, { migrationsFolder });
  } catch (err) {
    sqlite.close();
    if (isCorruption(err) && !(err instanceof DatabaseDamagedError)) throw damaged(file, (err as Error).message, err);
    throw err;
  }
  return {
    ...sqliteStatementRunner(sqlite),
    dialect: 'sqlite',
    // Preparing is SQLite's whole check: it refuses what it cannot run (depth, terms) right there.
    async plan(texts) {
      sqlite.prepare(texts.sqlite().sql);
    },
    sqlite,
    db,
    cache: new ConnectionCache(),
    writeGate: new WriteGate(options.writeGate),
    close() {
      if (sqlite.open) sqlite.close();
    },
  };
}

export { schema };
