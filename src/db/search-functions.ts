import type Database from 'better-sqlite3';

/**
 * SQL functions the search triggers (drizzle/0011) call, registered on every connection: a
 * connection without them could not write an audience, definition or schema field.
 * `segql_global_id` is the domain's encodeGlobalId (base64 of "<Type>:<id>"), repeated here
 * because src/db sits below the domain; test/domain/search-index.test.ts holds the two together.
 */
export function registerSearchFunctions(sqlite: Database.Database): void {
  sqlite.function('segql_global_id', { deterministic: true }, (type: unknown, id: unknown) =>
    type == null || id == null ? null : Buffer.from(`${type}:${id}`, 'utf8').toString('base64'),
  );
}
