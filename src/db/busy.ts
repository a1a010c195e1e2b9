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
import type { Connection } from './index.js';

/** Whether `error` is SQLite saying another connection holds the lock. */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT';
}

/** Runs `write` with no busy wait on `conn`, restoring the connection's timeout after it. */
export function withoutBusyWait<T>(conn: Connection, write: () => T): T {
  const timeout = conn.sqlite.pragma('busy_timeout', { simple: true }) as number;
  conn.sqlite.pragma('busy_timeout = 0');
  try {
    return write();
  } finally {
    conn.sqlite.pragma(`busy_timeout = ${timeout}`);
  }
}
