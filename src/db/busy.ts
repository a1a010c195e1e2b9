/**
 * Writes on the main thread that must not wait for SQLite's write lock. The connection's busy
 * timeout (5 s) makes a statement that finds the lock taken — a job's worker thread writing its
 * results in one transaction — spin inside SQLite, and on the main thread that holds the event
 * loop, and every request and subscriber with it, for as long as the other transaction lasts.
 * A write run through `withoutBusyWait` fails at once with SQLITE_BUSY instead, so its caller
 * can drop it (a progress report) or try again on a timer (an ingest) without blocking anyone.
 * This process's own worker threads are waited for through the write gate (write-gate.ts); what
 * is left for this fallback is a lock held by another process.
 */
import type Database from 'better-sqlite3';
import type { Connection } from './index.js';

/** Whether `error` is SQLite saying another connection holds the lock. */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT';
}

/** The busy-timeout pragmas of a connection, prepared once: a pragma() call prepares its statement each time. */
interface TimeoutStatements {
  read: Database.Statement;
  /** By timeout in ms: pragmas take no bound parameters. */
  set: Map<number, Database.Statement>;
}

const prepared = new WeakMap<Database.Database, TimeoutStatements>();

function timeoutStatements(sqlite: Database.Database): TimeoutStatements {
  let s = prepared.get(sqlite);
  if (s === undefined) {
    s = { read: sqlite.prepare('PRAGMA busy_timeout').pluck(), set: new Map() };
    prepared.set(sqlite, s);
  }
  return s;
}

function setBusyTimeout(sqlite: Database.Database, s: TimeoutStatements, ms: number): void {
  let statement = s.set.get(ms);
  if (statement === undefined) {
    statement = sqlite.prepare(`PRAGMA busy_timeout = ${Math.trunc(ms)}`);
    s.set.set(ms, statement);
  }
  statement.get();
}

/** Runs `write` with no busy wait on `conn`, restoring the connection's timeout after it. */
export function withoutBusyWait<T>(conn: Connection, write: () => T): T {
  const s = timeoutStatements(conn.sqlite);
  const timeout = s.read.get() as number;
  setBusyTimeout(conn.sqlite, s, 0);
  try {
    return write();
  } finally {
    setBusyTimeout(conn.sqlite, s, timeout);
  }
}
