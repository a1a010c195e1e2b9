import { bigint, jsonb, index as pgIndex, pgTable, text as pgText } from 'drizzle-orm/pg-core';
import { blob, index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { describe, expect, it } from 'vitest';
import * as pgSchema from '../../src/db/pg/schema.js';
import { schemaDrift } from '../../src/db/pg/schema-drift.js';
import * as sqliteSchema from '../../src/db/schema.js';

describe('the PostgreSQL schema against the SQLite one', () => {
  it('has every table, column, key and index of the SQLite schema', () => {
    expect(schemaDrift(sqliteSchema, pgSchema)).toEqual([]);
  });

  it('names each kind of departure', () => {
    const lite = {
      t: sqliteTable(
        't',
        {
          id: integer('id').primaryKey({ autoIncrement: true }),
          doc: blob('doc').notNull(),
          gone: text('gone'),
          flag: integer('flag', { mode: 'boolean' }).notNull(),
          n: integer('n').notNull().default(0),
        },
        (t) => [index('t_doc').on(t.doc), index('t_n').on(t.n)],
      ),
      only_lite: sqliteTable('only_lite', { id: integer('id').primaryKey() }),
    };
    const pg = {
      t: pgTable(
        't',
        {
          id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
          doc: jsonb('doc'),
          flag: pgText('flag').notNull(),
          n: bigint('n', { mode: 'number' }).notNull(),
          added: pgText('added'),
        },
        (t) => [pgIndex('t_doc').on(t.doc, t.n)],
      ),
      only_pg: pgTable('only_pg', { id: bigint('id', { mode: 'number' }).primaryKey() }),
    };
    expect(schemaDrift(lite, pg, {}).sort()).toEqual(
      [
        'table only_pg is only in PostgreSQL',
        'table only_lite is missing in PostgreSQL',
        't.doc is NOT NULL in SQLite only',
        't.gone is missing in PostgreSQL',
        't.flag is boolean in SQLite but text in PostgreSQL',
        't.n has a default in SQLite only',
        't.added is only in PostgreSQL',
        'index t_doc on t covers (doc) in SQLite but (doc, n) in PostgreSQL',
        'index t_n on t is missing in PostgreSQL',
      ].sort(),
    );
  });

  it('accepts a column only PostgreSQL has when it is listed', () => {
    const lite = { t: sqliteTable('t', { a: text('a') }) };
    const pg = { t: pgTable('t', { a: pgText('a'), v: pgText('v') }) };
    expect(schemaDrift(lite, pg, { t: ['v'] })).toEqual([]);
    expect(schemaDrift(lite, pg, {})).toEqual(['t.v is only in PostgreSQL']);
  });

  it('accepts an index only SQLite has when it is listed, and not once PostgreSQL has it', () => {
    const lite = { t: sqliteTable('t', { a: text('a') }, (t) => [index('t_a').on(t.a)]) };
    const without = { t: pgTable('t', { a: pgText('a') }) };
    const withIt = { t: pgTable('t', { a: pgText('a') }, (t) => [pgIndex('t_a').on(t.a)]) };
    expect(schemaDrift(lite, without, {}, { t: ['t_a'] })).toEqual([]);
    expect(schemaDrift(lite, without, {}, {})).toEqual(['index t_a on t is missing in PostgreSQL']);
    expect(schemaDrift(lite, withIt, {}, { t: ['t_a'] })).toEqual([
      "index t_a on t is listed as SQLite's only but PostgreSQL has it",
    ]);
  });
});
