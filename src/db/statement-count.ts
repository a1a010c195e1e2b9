/**
 * `segql_sql_statements_total`: SQL statements this thread has run. SQLite's are counted where
 * better-sqlite3 runs them (index.ts patches its Statement prototype); PostgreSQL's where the
 * statements by name run (pg/index.ts), so the figure means the same on both databases: the
 * domain's statements, not a cluster node's lease and claim traffic.
 */
let statementCount = 0;

export function countStatement(): void {
  statementCount++;
}

/** SQL statements executed by this thread so far (all connections). */
export function sqlStatementsTotal(): number {
  return statementCount;
}
