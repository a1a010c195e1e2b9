/**
 * The closed word and operator sets of PQL (docs/pql.md), each spelled once. The lexer's
 * keywords, the parser, the `pql/json` reader, the printer and both engines take them from
 * here, so a new time unit or aggregate is one edit and no copy can fall behind.
 *
 * Each set is a `const` array (its order is the order messages list the choices in), the
 * union type of its members, and a guard that narrows a string read from text or JSON.
 */

const member =
  <T extends string>(set: readonly T[]) =>
  (s: string): s is T =>
    (set as readonly string[]).includes(s);

/** Comparison operators; a comparison does not chain. */
export const COMPARE_OPS = ['=', '!=', '<', '<=', '>', '>='] as const;
export type CompareOp = (typeof COMPARE_OPS)[number];
export const isCompareOp = member(COMPARE_OPS);

/** Arithmetic operators: `+ -` at the additive level, `* / %` at the multiplicative one. */
export const ARITHMETIC_OPS = ['+', '-', '*', '/', '%'] as const;
export type ArithmeticOp = (typeof ARITHMETIC_OPS)[number];
export const isArithmeticOp = member(ARITHMETIC_OPS);

/** `now` is the evaluation instant; the others are the starts of UTC days around it. */
export const TIME_WORDS = ['now', 'today', 'yesterday', 'tomorrow'] as const;
export type TimeWord = (typeof TIME_WORDS)[number];
export const isTimeWord = member(TIME_WORDS);

/** Calendar units, singular; the text also accepts each with an `s`. */
export const TIME_UNITS = ['millisecond', 'second', 'minute', 'hour', 'day', 'week', 'month', 'year'] as const;
export type TimeUnit = (typeof TIME_UNITS)[number];
export const isTimeUnit = member(TIME_UNITS);

/** Aggregates of `sum E.x over E from … where …` (also methods of an array). */
export const AGGREGATE_FNS = ['sum', 'count', 'average', 'min', 'max'] as const;
export type AggregateFn = (typeof AGGREGATE_FNS)[number];
export const isAggregateFn = member(AGGREGATE_FNS);

/** Quantifiers over bindings: `exists E from … where …`, `forall E from … : …`. */
export const QUANTIFIERS = ['exists', 'forall'] as const;
export type Quantifier = (typeof QUANTIFIERS)[number];
export const isQuantifier = member(QUANTIFIERS);

/** Directions of a relative `occurs` window; `from` means `after`. */
export const OCCURS_DIRECTIONS = ['before', 'after', 'from'] as const;
export type OccursDirection = (typeof OCCURS_DIRECTIONS)[number];
export const isOccursDirection = member(OCCURS_DIRECTIONS);

/** Calendar periods around now: `this month`, `last week`, `next year`. */
export const PERIODS = ['this', 'last', 'next'] as const;
export type Period = (typeof PERIODS)[number];
export const isPeriod = member(PERIODS);

/** Keywords after a comparison's left operand, lower-case as keywords are compared (`notIn` is `notin`). */
export const COMPARISON_WORDS = ['in', 'notin', 'like', 'occurs'] as const;

/** Words that continue an operand (logical and comparison keywords), lower-case. */
export const OPERATOR_WORDS = ['and', 'or', 'not', ...COMPARISON_WORDS] as const;
export const isOperatorWord = member(OPERATOR_WORDS);
