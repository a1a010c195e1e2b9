import type Database from 'better-sqlite3';

/** The database file is damaged: serving it would answer wrongly and write onto the damage. */
export class DatabaseDamagedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseDamagedError';
  }
}

/** SQLITE_CORRUPT (and its extended codes) or SQLITE_NOTADB anywhere in an error's cause chain. */
export function isCorruption(err: unknown): boolean {
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    if (e instanceof DatabaseDamagedError) return true;
    if (typeof e.code === 'string' && (e.code.startsWith('SQLITE_CORRUPT') || e.code === 'SQLITE_NOTADB')) return true;
    e = e.cause as typeof e;
  }
  return false;
}

/**
 * `PRAGMA quick_check`: every page and record is read and checked, indexes only for their
 * shape (not against the table), so it costs a read of the whole file (the README gives the
 * cost at 1 M profiles) rather than integrity_check's much longer cross-check.
 */
export function quickCheck(sqlite: Database.Database, file: string): void {
  let rows: string[];
  try {
    rows = (sqlite.pragma('quick_check(20)') as { quick_check: string }[]).map((r) => r.quick_check);
  } catch (err) {
    if (isCorruption(err)) throw damaged(file, (err as Error).message, err);
    throw err;
  }
  if (rows.length === 1 && rows[0] === 'ok') return;
  // A row can hold several problems, one per line under a "*** in database main ***" heading:
  // the message names the first on one line (a log line, a CLI's one line on stderr).
  const problems = rows.flatMap((row) => row.split('\n')).filter((line) => line !== '' && !line.startsWith('***'));
  throw damaged(file, `${problems.length} problem(s), first: ${problems[0] ?? rows[0]}`);
}

export function damaged(file: string, detail: string, cause?: unknown): DatabaseDamagedError {
  return new DatabaseDamagedError(
    `The database ${file} is damaged (${detail}); restore it from a backup, or start with SEGQL_SKIP_INTEGRITY_CHECK=1 to read what is left`,
    { cause },
  );
}
