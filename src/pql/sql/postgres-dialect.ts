/**
 * PostgreSQL over `jsonb` documents (the same tables and columns as SQLite: `profiles.attributes`
 * and `events.payload` as jsonb, `events.ts` integer epoch ms). Only built-in SQL: nothing
 * needs to be installed in the database beyond the ICU collations of a standard build and
 * the PQL functions of SegQL's own migrations (sums, remainder, calendar arithmetic, products).
 *
 * Where the meaning of the JS engine differs from PostgreSQL's own:
 * - JSON reads check the JSON type before casting (a string where a number is expected is
 *   missing, as in JS, not a cast error); a JSON null in an array is SQL NULL, as SQLite reads it.
 * - float8 arithmetic raises an error on overflow and underflow where JS gives ±Infinity
 *   (missing in PQL) or 0: where it could, an operation is a call of pql_fadd, pql_fmul or
 *   pql_fdiv (0003_pql_sums.sql, 0011_pql_products.sql), which give JS's result.
 * - text order is code-point order (`COLLATE "C"`), and lower/upper are full Unicode case
 *   mappings (ICU root, as JS toLowerCase/toUpperCase), whatever the database's locale.
 * - regexes are translated to ARE (postgres-regex.ts) or rejected.
 * - sum and average add as SQLite's total() does (integers exactly, then compensated doubles, in
 *   the items' order), which the JS engine reproduces bit for bit: through the aggregates
 *   pql_total / pql_avg that the PostgreSQL migrations create, given the order in the call.
 * - `%` is fmod() of the doubles, computed exactly in numeric by pql_fmod (same migrations).
 * - `age(t)` as a value is pql_age, and an `occurs` window on a per-row time in calendar units
 *   pql_occurs (same migrations), the JS engine's calendar arithmetic.
 * Rejected (BackendUnsupported): `keys()` / `values()` (jsonb does not keep the order keys were
 * written in).
 */
import type { PqlType } from '../check/types.js';
import type { ArithmeticOp } from '../language/ast.js';
import { type ArithmeticConstant, BackendUnsupported, type Dialect, type JsonRows } from './dialect.js';
import { param, raw, type Sql, sql } from './fragment.js';
import { translateRegex } from './postgres-regex.js';

/**
 * `jsonb` at `path` of `doc`, one `->` per step: a text key finds a member of an object only,
 * so an array or a scalar on the way gives NULL, as the JS evaluator finds nothing there
 * (`#>` would index an array with a key like "0"), and each step is one cheap call where `#>`
 * takes its path array apart again on every row.
 */
function at(doc: Sql, path: readonly string[]): Sql {
  return path.reduce((value, key) => sql`(${value} -> ${param(key)})`, doc);
}

/**
 * Whether the text `->>` gives for a JSON value other than a string can never be `s`: not a
 * number (which starts with a digit or "-"), true, false, an object or an array.
 */
function onlyStringText(s: string): boolean {
  return s !== 'true' && s !== 'false' && !/^[-0-9[{]/.test(s);
}

/** A jsonb value as the SQL value of a PQL scalar type: NULL unless it has the matching JSON type. */
function typed(value: Sql, type: PqlType): Sql {
  switch (type.kind) {
    case 'string':
    case 'datetime':
      return sql`CASE WHEN jsonb_typeof(${value}) = 'string' THEN ${value} #>> '{}' END`;
    case 'number':
      return sql`CASE WHEN jsonb_typeof(${value}) = 'number' THEN CAST(${value} AS float8) END`;
    case 'boolean':
      return sql`CASE WHEN jsonb_typeof(${value}) = 'boolean' THEN CAST(${value} AS boolean) END`;
    default:
      throw new BackendUnsupported(`reading a value of type ${type.kind} as a single value`);
  }
}

/**
 * The value at `path` of `doc` as `type`, as `typed` reads it; a string or number is taken
 * as text by the last step (`->>`), which is one call fewer than reading the value and
 * converting it (the same text and the same double: float8 of a jsonb number converts its
 * decimal text too).
 */
function readTyped(doc: Sql, path: readonly string[], type: PqlType): Sql {
  const last = path[path.length - 1];
  if (last === undefined || (type.kind !== 'string' && type.kind !== 'datetime' && type.kind !== 'number')) {
    return typed(at(doc, path), type);
  }
  const text = sql`(${at(doc, path.slice(0, -1))} ->> ${param(last)})`;
  if (type.kind === 'number') {
    return sql`CASE WHEN jsonb_typeof(${at(doc, path)}) = 'number' THEN CAST(${text} AS float8) END`;
  }
  return sql`CASE WHEN jsonb_typeof(${at(doc, path)}) = 'string' THEN ${text} END`;
}

/** Elements of a jsonb array (anything else: none) as rows (value, key), JSON null as SQL NULL. */
function elements(array: Sql, alias: string): Sql {
  return sql`LATERAL (SELECT NULLIF(x.value, 'null'::jsonb) AS value, x.ordinality AS key FROM jsonb_array_elements(${array}) WITH ORDINALITY AS x) AS ${raw(alias)}`;
}

function onlyArray(value: Sql): Sql {
  return sql`CASE WHEN jsonb_typeof(${value}) = 'array' THEN ${value} END`;
}

const NUL_TEXT = 'a string with the character U+0000, which PostgreSQL text cannot hold';

/** PQL `like` (`\` escapes any character, a trailing `\` is itself) as a LIKE pattern with ESCAPE '\'. */
export function likePattern(pattern: string): string {
  const chars = Array.from(pattern);
  let out = '';
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '\\') {
      const next = chars[i + 1];
      if (next === undefined) out += '\\\\';
      else {
        out += next === '%' || next === '_' || next === '\\' ? `\\${next}` : next;
        i++;
      }
    } else out += c;
  }
  return out;
}

function castOf(value: unknown): string {
  if (typeof value === 'string') return '::text';
  if (typeof value === 'boolean') return '::boolean';
  if (typeof value === 'number') return Number.isSafeInteger(value) ? '::bigint' : '::float8';
  if (Array.isArray(value)) return '::text[]';
  return '';
}

/**
 * Operands at most this long, with no sub-select, are written more than once: in a test that
 * picks plain float8 where it is exact, and in the call that runs otherwise. A read of a document
 * number is about 130 characters. Longer ones (an operation on such reads, say) are passed once,
 * so a chain's SQL grows with its length, not with a power of it.
 */
const REPEATABLE_LENGTH = 400;

function repeatable(x: Sql): boolean {
  return x.text.length <= REPEATABLE_LENGTH && !x.text.includes('SELECT');
}

/**
 * Doubles of at most this magnitude (below 2^1023, as pql_fadd tests in 0003_pql_sums.sql) sum
 * to at most the largest double: their float8 sum or difference never raises.
 */
const ADD_SAFE = '8.988465674311e307';
/** Doubles within these magnitudes have a product and a quotient from 1e-290 to 1e290 (as pql_fmul tests). */
const BAND_LO = '1e-145';
const BAND_HI = '1e145';

/**
 * `x op y` on numbers as JS computes it (runtime arithmetic: doubles, a non-finite result and
 * division by zero missing), as one flat expression in which a long operand appears once, so a
 * chain of hundreds of terms is planned in milliseconds. Each operation is a call of the
 * migrations' functions, which give JS's result where float8 would raise an error: pql_fadd
 * (0003_pql_sums.sql; ±Infinity, made missing here; `x - y` is `x + (-y)` exactly in IEEE
 * arithmetic), pql_fmul and pql_fdiv (0011_pql_products.sql). For short operands (`repeatable`)
 * a test first picks plain float8 where it is exact, with no call: both magnitudes small enough,
 * or a constant operand's `safeRange`. (The guard was once a sub-select binding the operands,
 * which PostgreSQL pulled up, copying each operand into every mention: a chain of n operations
 * was planned as about 5^n, eight terms took seconds, and a few more exhausted the server's
 * memory.)
 */
function arithmeticOf(op: Exclude<ArithmeticOp, '%'>, x: Sql, y: Sql, constant?: ArithmeticConstant): Sql {
  const a = sql`CAST(${x} AS float8)`;
  const b = sql`CAST(${y} AS float8)`;
  let call: Sql;
  let exact: Sql;
  if (op === '+' || op === '-') {
    call = sql`nullif(nullif(pql_fadd(${a}, ${op === '+' ? b : sql`(- ${b})`}), 'Infinity'::float8), '-Infinity'::float8)`;
    exact = sql`abs(${a}) <= ${raw(ADD_SAFE)} AND abs(${b}) <= ${raw(ADD_SAFE)}`;
  } else {
    call = sql`${raw(op === '*' ? 'pql_fmul' : 'pql_fdiv')}(${a}, ${b})`;
    const fast = constant === undefined ? undefined : safeRange(op, constant);
    if (fast) {
      const v = constant!.left ? y : x;
      exact = sql`abs(${v}) <= ${param(fast.hi)}${fast.lo > 0 ? sql` AND (${v} = 0 OR abs(${v}) >= ${param(fast.lo)})` : sql``}`;
    } else {
      const band = sql`abs(${a}) BETWEEN ${raw(BAND_LO)} AND ${raw(BAND_HI)} AND abs(${b}) BETWEEN ${raw(BAND_LO)} AND ${raw(BAND_HI)}`;
      // A zero factor, or a zero dividend of a non-zero divisor, gives 0 whatever the other.
      exact = op === '*' ? sql`(${band} OR ${a} = 0 OR ${b} = 0)` : sql`(${band} OR (${a} = 0 AND ${b} <> 0))`;
    }
  }
  if (!repeatable(x) || !repeatable(y)) return call;
  return sql`CASE WHEN ${exact} THEN ${a} ${op} ${b} ELSE ${call} END`;
}

/**
 * For `x op c` (or `c op x`) with a constant c: a range of |x| (x = 0 or lo <= |x| <= hi)
 * where the float8 operation can neither overflow nor round a non-zero result to 0, with a
 * margin: there the plain operation is the value, with no call per row. Undefined when there is
 * no such range worth it.
 */
function safeRange(op: '*' | '/', constant: ArithmeticConstant): { lo: number; hi: number } | undefined {
  const c = Math.abs(constant.value);
  if (!Number.isFinite(c)) return undefined;
  switch (op) {
    // Scaling by at least 1 cannot round a non-zero x to 0: no lower bound then.
    case '*':
      if (c < 1e-290 || c > 1e290) return undefined;
      return { lo: c >= 1 ? 0 : (1e-290 / c) * (1 + 1e-12), hi: (Number.MAX_VALUE / c) * (1 - 1e-12) };
    case '/':
      if (constant.left || c < 1e-290 || c > 1e290) return undefined;
      return {
        lo: c <= 1 ? 0 : 1e-290 * c * (1 + 1e-12),
        hi: Math.min(Number.MAX_VALUE, Number.MAX_VALUE * c) * (1 - 1e-12),
      };
  }
}

export const POSTGRES: Dialect = {
  name: 'postgres',
  trueSql: 'true',
  falseSql: 'false',
  orFalse: (x) => sql`coalesce(${x}, false)`,
  orTrue: (x) => sql`coalesce(${x}, true)`,
  exists: (sub) => sql`EXISTS (${sub})`,
  readJson: (doc, path, type) => readTyped(doc, path, type),
  number: (read) => read,
  readElement: (alias, type) => typed(raw(`${alias}.value`), type),
  // `@>` is what the GIN index on profiles.attributes (jsonb_path_ops) answers.
  // On the whole document, the test the GIN index on profiles.attributes (jsonb_path_ops)
  // answers. Elsewhere on the value at the path: the planner costs that above the scan's
  // equalities with constants (event_type = …), which then rule rows out first; a test on the
  // whole payload would run on every event of every type.
  contains(doc, path, json, indexed) {
    if (!indexed) return sql`${at(doc, path)} @> CAST(${param(json)} AS jsonb)`;
    const whole = path.reduceRight((inner, key) => `{${JSON.stringify(key)}: ${inner}}`, json);
    return sql`${doc} @> CAST(${param(whole)} AS jsonb)`;
  },
  jsonEquals(doc, path, values) {
    const last = path[path.length - 1];
    if (last === undefined) return undefined;
    const oneOf = (items: Sql[]) => (items.length === 1 ? sql` = ${items[0]!}` : sql` IN (${joinComma(items)})`);
    if (values.every((v) => typeof v === 'string' && onlyStringText(v))) {
      return sql`(${at(doc, path.slice(0, -1))} ->> ${param(last)})${oneOf(values.map(param))}`;
    }
    return sql`${at(doc, path)}${oneOf(values.map((v) => sql`CAST(${param(JSON.stringify(v))} AS jsonb)`))}`;
  },
  otherTypePresent(doc, path, type) {
    const json =
      type.kind === 'string'
        ? 'string'
        : type.kind === 'number'
          ? 'number'
          : type.kind === 'boolean'
            ? 'boolean'
            : undefined;
    if (json === undefined || path.length === 0) return undefined;
    return sql`coalesce(jsonb_typeof(${at(doc, path)}) NOT IN ('null', ${raw(`'${json}'`)}), false)`;
  },
  jsonType: (doc, path) => sql`jsonb_typeof(${at(doc, path)})`,
  arrayRows(doc, path, alias): JsonRows {
    const value = at(doc, path);
    return {
      from: elements(onlyArray(value), alias),
      present: sql`jsonb_typeof(${value}) <> 'null'`,
      length: sql`coalesce(jsonb_array_length(${onlyArray(value)}), 0)`,
    };
  },
  literalRows(array, alias) {
    if (
      'json' in array &&
      (JSON.parse(array.json) as unknown[]).some((v) => typeof v === 'string' && v.includes('\0'))
    ) {
      throw new BackendUnsupported(NUL_TEXT);
    }
    const items =
      'json' in array ? sql`CAST(${param(array.json)} AS jsonb)` : sql`jsonb_build_array(${joinComma(array.items)})`;
    return elements(items, alias);
  },
  mapGet(doc, path, key, j, type) {
    const value = at(doc, path);
    const object = sql`CASE WHEN jsonb_typeof(${value}) = 'object' THEN ${value} END`;
    return sql`(SELECT ${typed(raw(`${j}.value`), type)} FROM jsonb_each(${object}) AS ${raw(j)} WHERE ${raw(j)}.key = ${key})`;
  },
  mapRows() {
    throw new BackendUnsupported(
      'keys() and values(): jsonb keeps object keys in its own order (shortest first), not the order they were written in',
    );
  },
  scanHint: '',
  // PostgreSQL costs a filter's sub-plan for every row of the table, not only for the rows the
  // cheap conditions leave, so with one in the filter it read a whole event type through its
  // index row by row (6.7 s for 666 k purchases at 1 M profiles) instead of scanning (1.9 s).
  fencesSubQueries: true,
  derived: (sub) => sql`(${sub}) AS q`,
  ordered: (x) => sql`(${x} COLLATE "C")`,
  lower: (x) => sql`lower(${x} COLLATE "und-x-icu")`,
  upper: (x) => sql`upper(${x} COLLATE "und-x-icu")`,
  // Under the C collation lower() maps A-Z only, as SQLite's lower() (strings.ts asciiFoldable).
  asciiLower: (x) => sql`lower(${x} COLLATE "C")`,
  likeFoldsAscii: false,
  length: (x) => sql`char_length(${x})`,
  position: (x, y) => sql`strpos(${x}, ${y})`,
  endsWith: (x, y) => sql`(right(${x}, char_length(${y})) = ${y})`,
  // right() is native: a substring test first would only read the value twice.
  endsWithCostly: false,
  like: (x, pattern) => sql`${x} LIKE ${param(likePattern(pattern))} ESCAPE '\\'`,
  regexMatches(x, pattern) {
    const re = translateRegex(pattern);
    if ('unsupported' in re) throw new BackendUnsupported(re.unsupported);
    return sql`${x} ~ ${param(re.pattern)}`;
  },
  regexGroup(x, pattern, n) {
    const re = translateRegex(pattern);
    if ('unsupported' in re) throw new BackendUnsupported(re.unsupported);
    if (!re.groupSafe) {
      throw new BackendUnsupported(
        `regexGroup with the regex ${JSON.stringify(pattern)}: PostgreSQL picks the longest match where RE2 picks the first`,
      );
    }
    // Group 0 is the whole match: one more group around the pattern, after its flags.
    const flags = re.pattern.startsWith('(?i)') ? '(?i)' : '';
    const whole = `${flags}(${re.pattern.slice(flags.length)})`;
    const k = sql`CAST(${n} AS float8)`;
    return sql`CASE WHEN ${k} = trunc(${k}) AND ${k} BETWEEN 0 AND ${raw(String(re.groups))} THEN (regexp_match(${x}, ${param(whole)}))[CAST(${k} AS integer) + 1] END`;
  },
  arithmetic: (op, x, y, constant) => arithmeticOf(op, x, y, constant),
  // fmod() of the two doubles, exact, by zero missing: created by the PostgreSQL migrations (0004_pql_remainder.sql).
  modulo: (x, y) => sql`pql_fmod(CAST(${x} AS float8), CAST(${y} AS float8))`,
  negate: (x) => sql`(- ${x})`,
  // float8 arithmetic here never yields ±Infinity (see arithmetic) and sums are rejected.
  finite: (x) => x,
  toMs: (x) =>
    sql`CASE WHEN ${x} ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$' AND left(${x}, 4) <> '0000' THEN CAST(extract(epoch FROM CAST(${x} AS timestamptz)) * 1000 AS bigint) END`,
  toIso: (x) =>
    sql`(SELECT CASE WHEN m BETWEEN -62135596800000 AND 253402300799999 THEN to_char(to_timestamp(floor(m / 1000)) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || '.' || lpad(CAST(m - floor(m / 1000) * 1000 AS text), 3, '0') || 'Z' END FROM (SELECT CAST(${x} AS numeric) AS m) AS q)`,
  datePart: (part, ms) =>
    sql`CAST(extract(${raw(part)} FROM to_timestamp(floor(CAST(${ms} AS numeric) / 1000)) AT TIME ZONE 'UTC') AS integer)`,
  // Whole calendar years as the JS engine counts them: created by the PostgreSQL migrations (0005_pql_age.sql).
  age: (t, now) => sql`pql_age(CAST(${t} AS float8), CAST(${now} AS float8))`,
  // The JS engine's window and test, created by the PostgreSQL migrations (0006_pql_occurs.sql).
  occurs: (t, spec, ref, to, now) =>
    sql`pql_occurs(CAST(${t} AS float8), CAST(${spec} AS jsonb), CAST(${ref} AS float8), CAST(${to} AS float8), CAST(${now} AS float8))`,
  // jsonb keeps a number as the numeric it was written as: its decimal digits, exactly.
  readDecimal(doc, path) {
    const value = at(doc, path);
    return sql`CASE WHEN jsonb_typeof(${value}) = 'number' THEN CAST(${value} AS numeric) END`;
  },
  // SQLite's total() step for step, created by the PostgreSQL migrations (drizzle/pg/0003_pql_sums.sql).
  sumFunction: (fn) => (fn === 'sum' ? 'pql_total' : 'pql_avg'),
  orderedSums: true,
  render(s) {
    const params: unknown[] = [];
    const text = s.text.replace(/\?/g, () => {
      const value = s.params[params.length];
      if (typeof value === 'string' && value.includes('\0')) {
        throw new BackendUnsupported(NUL_TEXT);
      }
      params.push(value);
      return `$${params.length}${castOf(value)}`;
    });
    if (params.length !== s.params.length) throw new Error('PQL to SQL: parameters and placeholders disagree');
    return { sql: text, params };
  },
};

function joinComma(parts: readonly Sql[]): Sql {
  if (parts.length === 0) return raw('');
  return parts.slice(1).reduce((acc, p) => sql`${acc}, ${p}`, parts[0]!);
}
