/**
 * SQLite functions that compiled PQL calls where SQL has no exact equivalent (Unicode case
 * mapping, RE2, `like` with PQL's escapes, calendar arithmetic, `occurs` windows with per-row
 * references). Each one is a thin adapter over `runtime.ts`, so the SQL engine and the JS
 * engine literally run the same code for the subtle parts. Registering is the only effect:
 * importing this module does nothing by itself.
 *
 * Conventions: SQL NULL in, NULL out (missing stays missing); predicates return 1 or 0;
 * datetimes arrive as epoch ms (the `events.ts` column, bound bounds) or as canonical ISO
 * text (document fields) and both are accepted wherever an instant is expected.
 */
import type Database from 'better-sqlite3';
import {
  ageInYears,
  codePointLength,
  getDayOfMonth,
  getMonth,
  getYear,
  likeMatches,
  lowerText,
  type OccursShape,
  occursMatches,
  regexGroup,
  regexMatches,
  stringPredicate,
  toCanonicalIso,
  toInstant,
  upperText,
} from '../runtime/index.js';

type SqlValue = number | bigint | string | Buffer | null;

/**
 * What `pql_occurs` needs besides the instants: the tail's shape and whether each reference
 * is day-valued. Serialised as JSON once per compiled query and bound as a parameter.
 */
export interface OccursSpec {
  shape: OccursShape;
  refDay: boolean;
  toDay: boolean;
}

const specCache = new Map<string, OccursSpec>();

function occursSpec(json: string): OccursSpec {
  let spec = specCache.get(json);
  if (spec === undefined) {
    spec = JSON.parse(json) as OccursSpec;
    // Specs come from compiled queries, so the set is small; the cap only guards a long-lived process.
    if (specCache.size > 1024) specCache.clear();
    specCache.set(json, spec);
  }
  return spec;
}

function instant(value: SqlValue): number | undefined {
  if (typeof value === 'bigint') return Number(value);
  return toInstant(value);
}

const bit = (b: boolean): number => (b ? 1 : 0);

/** A finite number, or null: SQLite would otherwise carry ±Infinity where PQL has missing. */
function finiteOrNull(value: SqlValue): SqlValue {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  return value;
}

/** The functions and their implementations, exported for tests that call them directly. */
export const PQL_SQL_FUNCTIONS: Readonly<Record<string, (...args: SqlValue[]) => SqlValue>> = {
  pql_like: (text, pattern) => (typeof text === 'string' ? bit(likeMatches(text, String(pattern))) : null),
  pql_re_match: (text, pattern) => (typeof text === 'string' ? bit(regexMatches(text, pattern)) : null),
  pql_re_group: (text, pattern, n) => regexGroup(text, pattern, typeof n === 'bigint' ? Number(n) : n) ?? null,
  pql_lower: (text) => (typeof text === 'string' ? lowerText(text) : null),
  pql_upper: (text) => (typeof text === 'string' ? upperText(text) : null),
  /** An instant (ISO text or ms) as epoch ms. */
  pql_ms: (value) => instant(value) ?? null,
  /** Epoch ms as the canonical stored ISO form (for comparing with document datetimes). */
  pql_iso: (value) => {
    const ms = instant(value);
    if (ms === undefined) return null;
    try {
      return toCanonicalIso(ms);
    } catch {
      return null;
    }
  },
  pql_year: (value) => {
    const ms = instant(value);
    return ms === undefined ? null : getYear(ms);
  },
  pql_month: (value) => {
    const ms = instant(value);
    return ms === undefined ? null : getMonth(ms);
  },
  pql_day: (value) => {
    const ms = instant(value);
    return ms === undefined ? null : getDayOfMonth(ms);
  },
  pql_age: (value, now) => {
    const ms = instant(value);
    const at = instant(now);
    return ms === undefined || at === undefined ? null : (ageInYears(ms, at) ?? null);
  },
  /**
   * `t occurs <tail>` with references known only per row (a path, a chain step's time):
   * `pql_occurs(t, specJson, ref, to, now)`.
   */
  pql_occurs: (t, specJson, ref, to, now) => {
    const spec = occursSpec(String(specJson));
    const at = instant(now);
    if (at === undefined) return 0;
    return bit(occursMatches(instant(t), spec.shape, instant(ref), spec.refDay, at, instant(to) ?? null, spec.toDay));
  },
  pql_num: finiteOrNull,
  pql_ends_with: (text, suffix) =>
    typeof text === 'string' && typeof suffix === 'string' ? bit(stringPredicate('endsWith', text, suffix)) : null,
  /** Code points; SQLite's length() stops at the first NUL character. */
  pql_length: (text) => (typeof text === 'string' ? codePointLength(text) : null),
};

/** Registers the PQL functions on a connection (db/index.ts does this for every connection). */
export function registerPqlFunctions(sqlite: Database.Database): void {
  for (const [name, fn] of Object.entries(PQL_SQL_FUNCTIONS)) {
    sqlite.function(name, { deterministic: true }, fn as (...args: unknown[]) => unknown);
  }
}
