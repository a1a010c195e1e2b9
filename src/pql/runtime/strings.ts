/**
 * String semantics shared by both engines (docs/pql-semantics.md "Strings"): code-point
 * order, Unicode case mapping, the string predicates, `like` and RE2 regexes. SQLite's own
 * `lower()`, `like` and collations are ASCII-only or byte-based in ways that differ, so the SQL
 * engine registers these functions instead.
 */
import { RE2JS } from 're2js';

/** A small least-recently-used map: compiled patterns are reused across rows and events. */
class LruCache<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly capacity: number) {}

  get(key: string): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }

  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
  }
}

// UTF-16 order differs from code-point order only where a surrogate (D800–DFFF) meets a unit in
// E000–FFFF; shifting surrogates above that block restores code-point order.
function fixUnit(c: number): number {
  if (c < 0xd800) return c;
  return c >= 0xe000 ? c - 0x800 : c + 0x2000;
}

/** -1, 0 or 1 by Unicode code point (= UTF-8 byte order, SQLite's BINARY collation). */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return fixUnit(x) < fixUnit(y) ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

/** Full Unicode lower-casing, locale-independent (`"İ"` → `"i̇"`, `"ı"` stays). */
export function lowerText(s: string): string {
  return s.toLowerCase();
}

/** Full Unicode upper-casing, locale-independent (`"ß"` → `"SS"`). */
export function upperText(s: string): string {
  return s.toUpperCase();
}

/** Length in code points; a lone surrogate counts as one (it is U+FFFD once stored as UTF-8). */
export function codePointLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

export const STRING_PREDICATES = [
  'equals',
  'notEqualTo',
  'startsWith',
  'endsWith',
  'contains',
  'doesNotStartWith',
  'doesNotEndWith',
  'doesNotContain',
] as const;
export type StringPredicateName = (typeof STRING_PREDICATES)[number];

export function isStringPredicate(name: string): name is StringPredicateName {
  return (STRING_PREDICATES as readonly string[]).includes(name);
}

/**
 * `receiver.name(arg, caseSensitive)`: false unless both operands are strings; the negative
 * forms mean "present and not …". `caseSensitive = false` compares after `lowerText`.
 */
export function stringPredicate(
  name: StringPredicateName,
  receiver: unknown,
  arg: unknown,
  caseSensitive = true,
): boolean {
  if (typeof receiver !== 'string' || typeof arg !== 'string') return false;
  const a = caseSensitive ? receiver : receiver.toLowerCase();
  const b = caseSensitive ? arg : arg.toLowerCase();
  switch (name) {
    case 'equals':
      return a === b;
    case 'notEqualTo':
      return a !== b;
    case 'startsWith':
      return a.startsWith(b);
    case 'endsWith':
      return a.endsWith(b);
    case 'contains':
      return a.includes(b);
    case 'doesNotStartWith':
      return !a.startsWith(b);
    case 'doesNotEndWith':
      return !a.endsWith(b);
    case 'doesNotContain':
      return !a.includes(b);
  }
}

// ---------------------------------------------------------------------------------------------
// like

const LIKE_ANY_ONE = -1;
const LIKE_ANY_RUN = -2;

/** A `like` pattern as code points, with `_` and `%` as the two negative markers. */
type LikeProgram = Int32Array;

function compileLike(pattern: string): LikeProgram {
  const out: number[] = [];
  const points = Array.from(pattern, (ch) => ch.codePointAt(0)!);
  for (let i = 0; i < points.length; i++) {
    const c = points[i]!;
    if (c === 0x5c && i + 1 < points.length) {
      out.push(points[++i]!);
    } else if (c === 0x25) {
      // Consecutive `%` are one run; this also keeps the matcher's star handling simple.
      if (out[out.length - 1] !== LIKE_ANY_RUN) out.push(LIKE_ANY_RUN);
    } else if (c === 0x5f) {
      out.push(LIKE_ANY_ONE);
    } else {
      out.push(c);
    }
  }
  return Int32Array.from(out);
}

const likeCache = new LruCache<LikeProgram>(256);

function likeProgram(pattern: string): LikeProgram {
  let program = likeCache.get(pattern);
  if (program === undefined) {
    program = compileLike(pattern);
    likeCache.set(pattern, program);
  }
  return program;
}

function hasSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) return true;
  }
  return false;
}

/**
 * `value like pattern`: whole-string, case-sensitive; `%` any run (also empty), `_` one code
 * point, `\` makes the next character literal (a trailing `\` is itself literal). Matching is
 * the two-pointer wildcard algorithm, O(|value| × |pattern|) at worst: no backtracking blow-up.
 */
export function likeMatches(value: unknown, pattern: string): boolean {
  if (typeof value !== 'string') return false;
  const p = likeProgram(pattern);
  // Code units are code points unless the value has surrogates; only then pay for the array.
  const points = hasSurrogate(value) ? Array.from(value, (ch) => ch.codePointAt(0)!) : null;
  const n = points === null ? value.length : points.length;
  let si = 0;
  let pi = 0;
  let starP = -1;
  let starS = 0;
  while (si < n) {
    const op = pi < p.length ? p[pi]! : 0;
    if (pi < p.length && op === LIKE_ANY_RUN) {
      starP = pi++;
      starS = si;
    } else if (pi < p.length && (op === LIKE_ANY_ONE || op === (points === null ? value.charCodeAt(si) : points[si]))) {
      pi++;
      si++;
    } else if (starP >= 0) {
      pi = starP + 1;
      si = ++starS;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === LIKE_ANY_RUN) pi++;
  return pi === p.length;
}

// ---------------------------------------------------------------------------------------------
// regular expressions (RE2 only: linear time whatever the pattern or the input)

const regexCache = new LruCache<RE2JS | null>(256);

/** The compiled RE2 pattern, or undefined when it does not compile (cached either way). */
export function compileRegex(pattern: string): RE2JS | undefined {
  let re = regexCache.get(pattern);
  if (re === undefined) {
    try {
      re = RE2JS.compile(pattern);
    } catch {
      re = null;
    }
    regexCache.set(pattern, re);
  }
  return re ?? undefined;
}

/** Whether `pattern` is valid RE2 syntax: the checker's test for `matches` / `regexGroup` literals. */
export function isValidRegex(pattern: string): boolean {
  return compileRegex(pattern) !== undefined;
}

/** `value.matches(pattern)`: a match anywhere in the string; false on a non-string or a bad pattern. */
export function regexMatches(value: unknown, pattern: unknown): boolean {
  if (typeof value !== 'string' || typeof pattern !== 'string') return false;
  const re = compileRegex(pattern);
  return re?.test(value) === true;
}

/**
 * `value.regexGroup(pattern, n)`: group n (0 = the whole match) of the first match;
 * undefined when there is no match, the group did not take part, or n is not a group.
 */
export function regexGroup(value: unknown, pattern: unknown, n: unknown): string | undefined {
  if (typeof value !== 'string' || typeof pattern !== 'string' || typeof n !== 'number') return undefined;
  const re = compileRegex(pattern);
  if (re === undefined || !Number.isInteger(n) || n < 0 || n > re.groupCount()) return undefined;
  const m = re.matcher(value);
  if (!m.find()) return undefined;
  return m.group(n) ?? undefined;
}
