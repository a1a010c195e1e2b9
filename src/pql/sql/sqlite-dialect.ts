/**
 * SQLite (better-sqlite3, JSONB blobs): the SQL this compiler was first written for. What SQL
 * has no exact equivalent for calls the functions of sql-functions.ts, which run the JS
 * engine's own runtime code, so the subtle parts literally cannot differ.
 */
import type { Dialect, JsonRows } from './dialect.js';
import { jsonPath, param, raw, type Sql, sql } from './fragment.js';

function joinComma(parts: readonly Sql[]): Sql {
  if (parts.length === 0) return raw('');
  return parts.slice(1).reduce((acc, p) => sql`${acc}, ${p}`, parts[0]!);
}

export const SQLITE: Dialect = {
  name: 'sqlite',
  trueSql: '1',
  falseSql: '0',
  orFalse: (x) => sql`coalesce(${x}, 0)`,
  orTrue: (x) => sql`coalesce(${x}, 1)`,
  // `+EXISTS` keeps SQLite from rewriting nested EXISTS into joins, which SQLite 3.53 gets
  // wrong when another table lands between the two levels (e.g. `SELECT count(*) FROM events
  // e1 WHERE EXISTS (SELECT 1 FROM events e2 WHERE EXISTS (SELECT 1 FROM
  // jsonb_each(e2.payload, '$.items')))` counts 0 where a row of e2 has items but the first
  // does not); values.ts existsPredicate leaves a single-table one at the top unprotected.
  exists: (sub) => sql`+EXISTS (${sub})`,
  readJson: (doc, path) => sql`json_extract(${doc}, ${param(jsonPath(path))})`,
  // Documents are written by JS, so an integer beyond 2^53 is stored as the digits of its
  // shortest form (2^62 as 4611686018427388000), a different 64-bit INTEGER than the double
  // JS reads back. Comparing and computing in doubles, as JS does, needs `+ 0.0`.
  number: (read) => sql`(${read} + 0.0)`,
  readElement: (alias) => raw(`${alias}.value`),
  // No index of SQLite's answers containment: the exact test alone is cheaper.
  contains: () => undefined,
  // json_extract() = ? is already one read of the path.
  jsonEquals: () => undefined,
  // json_extract() returns a value of any type, which then equals no constant of another.
  otherTypePresent: () => undefined,
  jsonType: (doc, path) => sql`json_type(${doc}, ${param(jsonPath(path))})`,
  arrayRows(doc, path, alias): JsonRows {
    const p = param(jsonPath(path));
    return {
      from: sql`jsonb_each(${doc}, ${p}) AS ${alias}`,
      present: sql`json_type(${doc}, ${p}) <> 'null'`,
      length: sql`coalesce(json_array_length(${doc}, ${p}), 0)`,
    };
  },
  literalRows(array, alias) {
    const json = 'json' in array ? param(array.json) : sql`json_array(${joinComma(array.items)})`;
    return sql`json_each(${json}) AS ${raw(alias)}`;
  },
  mapGet: (doc, path, key, j) =>
    sql`(SELECT ${raw(j)}.value FROM jsonb_each(${doc}, ${param(jsonPath(path))}) AS ${raw(j)} WHERE ${raw(j)}.key = ${key})`,
  mapRows(doc, path, column, j) {
    const p = param(jsonPath(path));
    const isObject = sql`json_type(${doc}, ${p}) = 'object'`;
    const select = sql`SELECT ${raw(`${j}.${column}`)} AS value, ${raw(`${j}.id`)} AS rk FROM jsonb_each(${doc}, ${p}) AS ${raw(j)} WHERE ${isObject}`;
    return { select, isObject };
  },
  scanHint: ' NOT INDEXED',
  // NOT INDEXED already decides how SQLite reads the table.
  fencesSubQueries: false,
  derived: (sub) => sql`(${sub})`,
  ordered: (x) => x,
  lower: (x) => sql`pql_lower(${x})`,
  upper: (x) => sql`pql_upper(${x})`,
  asciiLower: (x) => sql`lower(${x})`,
  likeFoldsAscii: true,
  length: (x) => sql`pql_length(${x})`,
  position: (x, y) => sql`instr(${x}, ${y})`,
  endsWith: (x, y) => sql`pql_ends_with(${x}, ${y})`,
  endsWithCostly: true,
  like: (x, pattern) => sql`pql_like(${x}, ${param(pattern)})`,
  regexMatches: (x, pattern) => sql`pql_re_match(${x}, ${param(pattern)})`,
  regexGroup: (x, pattern, n) => sql`pql_re_group(${x}, ${param(pattern)}, ${n})`,
  // `+ 0.0` makes it double arithmetic, as in JS (SQLite would add 64-bit integers exactly);
  // pql_num turns an overflow to ±Infinity into missing. Division by zero is already NULL.
  arithmetic: (op, x, y) => sql`pql_num((${x} + 0.0) ${op} ${y})`,
  // mod() is fmod: the sign of the dividend, like JS `%`; by zero it is NULL.
  modulo: (x, y) => sql`mod(${x}, ${y})`,
  negate: (x) => sql`pql_num(- ${x})`,
  finite: (x) => sql`pql_num(${x})`,
  toMs: (x) => sql`pql_ms(${x})`,
  toIso: (x) => sql`pql_iso(${x})`,
  datePart: (part, ms) => sql`${part === 'year' ? 'pql_year' : part === 'month' ? 'pql_month' : 'pql_day'}(${ms})`,
  age: (t, now) => sql`pql_age(${t}, ${now})`,
  occurs: (t, spec, ref, to, now) => sql`pql_occurs(${t}, ${spec}, ${ref}, ${to}, ${now})`,
  // total() in the items' order is cheaper as the per-profile probe the index feeds in that order.
  readDecimal: () => undefined,
  sumFunction: (fn) => (fn === 'sum' ? 'total' : 'avg'),
  orderedSums: false,
  // Booleans are bound as 1 and 0, SQLite's and JSON's representation of true and false.
  render: (s) => ({ sql: s.text, params: s.params.map((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : v)) }),
};
