/**
 * The exact semantics both PQL engines share (docs/pql-semantics.md): the JS evaluator calls
 * these directly, the SQL compiler binds their results as parameters or registers them as
 * SQLite functions, so the subtle parts — calendar time, `occurs` windows, Unicode strings,
 * RE2 regexes, compensated sums — are one piece of code. All functions are pure and never
 * throw on data (except `toCanonicalIso` on an unrepresentable instant).
 */

export {
  codePointLength,
  compareCodePoints,
  compileRegex,
  isStringPredicate,
  isValidRegex,
  likeMatches,
  lowerText,
  regexGroup,
  regexMatches,
  type StringPredicateName,
  stringPredicate,
  upperText,
} from './strings.js';
export {
  addUnits,
  ageInYears,
  dayStart,
  getDayOfMonth,
  getMonth,
  getYear,
  isDayValuedRef,
  MS_PER_DAY,
  type OccursBounds,
  type OccursShape,
  occursBounds,
  occursHolds,
  occursMatches,
  occursShapeOf,
  parseDate,
  parseIsoDatetime,
  periodOf,
  periodStart,
  toCanonicalIso,
  toInstant,
} from './time.js';
export {
  arithmetic,
  compareOp,
  compareValues,
  isMissing,
  KbnAccumulator,
  kbnSum,
  negate,
  valueIn,
  valueNotIn,
  valuesEqual,
} from './values.js';
