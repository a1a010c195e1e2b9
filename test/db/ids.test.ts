/**
 * Ids are never handed out twice: a table whose `id` a client sees (a global id, a key id in the
 * CLI) must be AUTOINCREMENT in the migrated database, or SQLite gives the largest id again after
 * it is deleted. Read from the migrated database itself, so a table added later is covered.
 */
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';

/** Tables whose integer id never leaves the server except inside an opaque cursor. */
const CURSOR_ONLY = new Set(['membership_history', 'audience_size_history']);

describe('row ids', () => {
  it('are AUTOINCREMENT in every table with an integer id a client can see', () => {
    const conn = openDatabase(':memory:');
    try {
      const tables = conn.sqlite
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .all() as { name: string; sql: string }[];
      // Not ours to number: drizzle's migration journal and the shadow tables of FTS5 indexes.
      const virtual = tables.filter((t) => /^CREATE VIRTUAL TABLE/i.test(t.sql)).map((t) => `${t.name}_`);
      const internal = (name: string) => name.startsWith('__drizzle') || virtual.some((v) => name.startsWith(v));
      const withId = tables.filter(
        (t) =>
          !internal(t.name) &&
          !CURSOR_ONLY.has(t.name) &&
          (conn.sqlite.pragma(`table_info("${t.name}")`) as { name: string; pk: number }[]).some(
            (c) => c.name === 'id' && c.pk === 1,
          ),
      );
      expect(withId.map((t) => t.name)).toEqual(
        expect.arrayContaining(['audiences', 'segment_definitions', 'profiles', 'jobs', 'api_keys', 'sandboxes']),
      );
      expect(withId.filter((t) => !/\bAUTOINCREMENT\b/i.test(t.sql)).map((t) => t.name)).toEqual([]);
    } finally {
      conn.close();
    }
  });
});
