/**
 * String predicates, `like` and the string methods in SQL. SQL's own operators are used where
 * they are exact: `=`, `<>`, and instr() (byte lengths, so right for empty text and text with
 * NUL characters, where substr() and length() stop early). The rest runs the runtime's code
 * through sql-functions.ts: Unicode lower/upper, RE2, endsWith, the general `like`.
 */
import type { ExpressionNode, LikeNode, MethodCallNode } from '../language/ast.js';
import { codePointLength, lowerText, upperText } from '../runtime/index.js';
import { STRING_PREDICATES } from '../runtime/strings.js';
import type { CompileContext, Env } from './context.js';
import { dialect, falseSql } from './dialect.js';
import { param, type Sql, sql } from './fragment.js';
import {
  conditionSql,
  constantPredicate,
  literal,
  NUMBER_TYPE,
  predicate,
  type ScalarValue,
  STRING_TYPE,
  scalarOf,
  valueSql,
} from './values.js';

const STRING_PREDICATE_NAMES: ReadonlySet<string> = new Set(STRING_PREDICATES);

export function literalString(node: ExpressionNode | undefined): string {
  if (node?.kind === 'Literal' && typeof node.value === 'string') return node.value;
  throw new Error('PQL to SQL: expected a string literal');
}

/** `s.startsWith(…)`, `s.matches(…)`, `s.length()`, … */
export function compileStringMethod(ctx: CompileContext, node: MethodCallNode, env: Env): ScalarValue {
  const receiver = ctx.scalar(node.object, env);
  const { name } = node;
  if (STRING_PREDICATE_NAMES.has(name)) {
    const arg = ctx.scalar(node.args[0]!, env);
    const cs = node.args[1] === undefined ? undefined : ctx.scalar(node.args[1], env);
    if (cs === undefined || cs.constant === true) return stringPredicate(name, receiver, arg);
    const insensitive = caseInsensitive(name, receiver, arg);
    if (cs.constant === false) return insensitive;
    // A computed flag: only false switches to case-insensitive (missing keeps the default, true).
    const sensitive = stringPredicate(name, receiver, arg);
    return predicate(
      sql`CASE WHEN ${valueSql(cs)} = ${falseSql()} THEN ${conditionSql(insensitive)} ELSE ${conditionSql(sensitive)} END`,
      true,
    );
  }
  const s = valueSql(receiver);
  switch (name) {
    case 'matches': {
      const pattern = literalString(node.args[0]);
      const shape = regexShape(pattern);
      // A literal pattern is a substring test SQLite does natively; anything else runs RE2 per row.
      if (shape) return stringPredicate(shape.test, receiver, literal(shape.literal, STRING_TYPE));
      return predicate(dialect().regexMatches(s, pattern), true);
    }
    case 'regexGroup':
      return scalarOf(
        dialect().regexGroup(s, literalString(node.args[0]), valueSql(ctx.scalar(node.args[1]!, env))),
        STRING_TYPE,
      );
    case 'length':
      if (typeof receiver.constant === 'string') return literal(codePointLength(receiver.constant), NUMBER_TYPE);
      return scalarOf(dialect().length(s), NUMBER_TYPE);
    case 'lower':
      return lowered(receiver);
    case 'upper':
      if (typeof receiver.constant === 'string') return literal(upperText(receiver.constant), STRING_TYPE);
      return scalarOf(dialect().upper(s), STRING_TYPE);
  }
  throw new Error(`PQL to SQL: unknown method ${name}()`);
}

/** RE2 metacharacters; any other character, or one of these escaped, stands for itself. */
const REGEX_META = new Set(Array.from('.^$*+?()[]{}|\\'));
const ASCII_PUNCTUATION = /^[!-/:-@[-`{-~]$/;

/**
 * A regex that is literal text, optionally anchored (`^` at the start, `$` at the end: RE2
 * without flags, so the start and end of the text), as the string test it amounts to:
 * `7@example\.com$` is endsWith("7@example.com"). Undefined for anything else.
 */
function regexShape(
  pattern: string,
): { test: 'contains' | 'startsWith' | 'endsWith' | 'equals'; literal: string } | undefined {
  const chars = Array.from(pattern);
  let i = 0;
  const start = chars[0] === '^';
  if (start) i++;
  let end = false;
  let text = '';
  for (; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '\\') {
      const next = chars[i + 1];
      if (next === undefined || !ASCII_PUNCTUATION.test(next)) return undefined;
      text += next;
      i++;
    } else if (c === '$' && i === chars.length - 1) {
      end = true;
    } else if (REGEX_META.has(c)) {
      return undefined;
    } else {
      text += c;
    }
  }
  const test = start ? (end ? 'equals' : 'startsWith') : end ? 'endsWith' : 'contains';
  return { test, literal: text };
}

/** Unicode lower-casing (runtime.lowerText), folded when constant. */
function lowered(v: ScalarValue): ScalarValue {
  if (typeof v.constant === 'string') return literal(lowerText(v.constant), STRING_TYPE);
  if (v.constant === null) return v;
  return scalarOf(dialect().lower(valueSql(v)), STRING_TYPE);
}

/**
 * Whether comparing against this lower-cased constant may use SQLite's ASCII-only lower()
 * instead of Unicode lower-casing: it is ASCII without `i` and `k`. Only ASCII letters lower-
 * case to ASCII letters, apart from U+0130 (İ → i̇) and U+212A (Kelvin sign → k) — checked
 * over every code point in to-sql.test.ts — so for such a needle every match in the one
 * lower-casing is a match in the other.
 */
function asciiFoldable(lowerNeedle: string): boolean {
  return /^[\x00-\x7f]*$/.test(lowerNeedle) && !/[ik]/.test(lowerNeedle);
}

/** `a.name(b, false)`: both sides lower-cased. */
function caseInsensitive(name: string, a: ScalarValue, b: ScalarValue): ScalarValue {
  const lowerA = lowered(a);
  const lowerB = lowered(b);
  const needle = lowerB.constant;
  if (
    (name === 'startsWith' || name === 'doesNotStartWith') &&
    dialect().likeFoldsAscii &&
    typeof needle === 'string' &&
    needle !== '' &&
    asciiFoldable(needle) &&
    !needle.includes('\0') &&
    a.constant === undefined
  ) {
    // LIKE folds ASCII case as lower() does and reads the text only up to a NUL, which cannot
    // change whether it starts with a needle that has none: no lower-cased copy per row.
    const prefix = sql`${valueSql(a)} LIKE ${param(`${needle.replace(/[\\%_]/g, (c) => `\\${c}`)}%`)} ESCAPE '\\'`;
    return name === 'startsWith' ? predicate(prefix, a.nullable) : predicate(sql`NOT (${prefix})`, true);
  }
  const fast = (x: ScalarValue, constant: ScalarValue): ScalarValue => {
    const ascii =
      typeof constant.constant === 'string' && asciiFoldable(constant.constant) && x.constant === undefined
        ? dialect().asciiLower(valueSql(x))
        : undefined;
    return ascii ? scalarOf(ascii, STRING_TYPE) : lowered(x);
  };
  return stringPredicate(name, fast(a, lowerB), fast(b, lowerA));
}

/**
 * `a.name(b)` case-sensitively. Each positive form is NULL when a or b is missing, so the
 * negative forms are `NOT` of it: "present and not …".
 */
function stringPredicate(name: string, a: ScalarValue, b: ScalarValue): ScalarValue {
  if (a.constant === null || b.constant === null) return constantPredicate(false);
  const nullable = a.nullable || b.nullable;
  const x = valueSql(a);
  const y = valueSql(b);
  const d = dialect();
  const positive = (kind: string): Sql => {
    switch (kind) {
      case 'startsWith':
        // The first occurrence is at 1 exactly when a starts with b.
        return sql`${d.position(x, y)} = 1`;
      case 'endsWith':
        // A suffix is also a substring: native instr() (exact at any byte) rules out most rows
        // before the per-row JS call.
        if (d.endsWithCostly && typeof b.constant === 'string' && b.constant !== '') {
          return sql`(${d.position(x, y)} > 0 AND ${d.endsWith(x, y)})`;
        }
        return d.endsWith(x, y);
      default:
        return sql`${d.position(x, y)} > 0`;
    }
  };
  switch (name) {
    case 'equals':
      return predicate(sql`${x} = ${y}`, nullable);
    case 'notEqualTo':
      return predicate(sql`${x} <> ${y}`, nullable);
    case 'startsWith':
    case 'endsWith':
    case 'contains':
      return predicate(positive(name), nullable || name === 'endsWith');
    default: {
      const base = name === 'doesNotStartWith' ? 'startsWith' : name === 'doesNotEndWith' ? 'endsWith' : 'contains';
      return predicate(sql`NOT (${positive(base)})`, true);
    }
  }
}

/**
 * A `like` pattern whose only wildcards are a leading and/or trailing `%` is equality, a
 * prefix, a suffix or containment of its literal text (escapes as in runtime.likeMatches:
 * `\` makes the next character literal, a trailing `\` is itself); anything else runs
 * runtime.likeMatches per row.
 */
function likeShape(pattern: string): { literal: string; leading: boolean; trailing: boolean } | undefined {
  const chars = Array.from(pattern);
  let text = '';
  let leading = false;
  let trailing = false;
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '\\' && i + 1 < chars.length) {
      if (trailing) return undefined;
      text += chars[++i];
    } else if (c === '%') {
      if (text === '' && !trailing) leading = true;
      else trailing = true;
    } else if (c === '_') {
      return undefined;
    } else {
      if (trailing) return undefined;
      text += c;
    }
  }
  return { literal: text, leading, trailing };
}

export function compileLike(ctx: CompileContext, node: LikeNode, env: Env): ScalarValue {
  const v = ctx.scalar(node.value, env);
  if (v.constant === null) return constantPredicate(false);
  const x = valueSql(v);
  const shape = likeShape(node.pattern);
  const d = dialect();
  if (shape === undefined) return predicate(d.like(x, node.pattern), true);
  const text = param(shape.literal);
  if (shape.literal === '' && (shape.leading || shape.trailing)) return predicate(sql`${x} IS NOT NULL`, false);
  if (!shape.leading && !shape.trailing) return predicate(sql`${x} = ${text}`, v.nullable);
  if (shape.leading && shape.trailing) return predicate(sql`${d.position(x, text)} > 0`, v.nullable);
  if (shape.trailing) return predicate(sql`${d.position(x, text)} = 1`, v.nullable);
  // As endsWith: the suffix is a substring first (native instr), then the per-row JS call.
  if (!d.endsWithCostly) return predicate(d.endsWith(x, text), true);
  return predicate(sql`(${d.position(x, text)} > 0 AND ${d.endsWith(x, text)})`, true);
}
