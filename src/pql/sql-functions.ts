import type Database from 'better-sqlite3';

/** Registers the SQLite functions compiled PQL calls (filled in by the SQL compiler work). */
export function registerPqlFunctions(_sqlite: Database.Database): void {}
