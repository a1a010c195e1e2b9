/**
 * `segql_sql_statements_total`: SQL statements this thread has run. SQLite's are counted where
 * better-sqlite3 runs them (index.ts patches its Statement prototype); PostgreSQL's where the
 * statements by name run (pg/index.ts), so the figure means the same on both databases: the
 * domain's statements, not a cluster node's lease and claim traffic.
 */
let statementCount = 0;
/** Above 0 while `uncounted` runs its function. */
let paused = 0;

export function countStatement(): void {
  if (paused === 0) statementCount++;
}

/**
 * Runs `read` without counting its statements: the server's own instrumentation (reading the WAL
 * VFS's counts for /metrics), which is not the domain's work the figure stands for.
 */
export function uncounted<T>(read: () => T): T {
  paused++;
  try {
    return read();
  } finally {
    paused--;
  }
}

/** SQL statements executed by this thread so far (all connections). */
export function sqlStatementsTotal(): number {
  return statementCount;
}
