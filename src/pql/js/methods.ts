/**
 * The JS engine's methods (`a.count()`, `s.startsWith(…)`, `m.get(…)`, …) and functions
 * (`date`, `if`, `inSegment`, …), compiled to closures over the shared runtime.
 */

import { isEntryMap } from '../check/collection-forms.js';
import type { AggregateFn, CallNode, ExpressionNode, FilterNode, MethodCallNode } from '../language/ast.js';
import { AGGREGATE_FNS, QUANTIFIERS } from '../language/vocabulary.js';
import {
  ageInYears,
  codePointLength,
  compareValues,
  compileRegex,
  getDayOfMonth,
  getMonth,
  getYear,
  isMissing,
  isStringPredicate,
  KbnAccumulator,
  lowerText,
  parseDate,
  parseIsoDatetime,
  regexGroup,
  regexMatches,
  type StringPredicateName,
  stringPredicate,
  toInstant,
  upperText,
  valuesEqual,
} from '../runtime/index.js';
import type { Compiler, Ctx, Fn, Scope } from './context.js';
import { BuiltMap, entriesMap, groupItems, MapEntry } from './maps.js';

const MISSING: Fn = () => undefined;

/** The values of `items`, or of the per-item argument evaluated with each item as current item. */
function perItemValues(ctx: Ctx, items: readonly unknown[], arg: Fn | undefined, depth: number): unknown[] {
  if (arg === undefined) return items as unknown[];
  const out: unknown[] = [];
  const scope = ctx.scope;
  for (const item of items) {
    scope[depth] = item;
    out.push(arg(ctx));
  }
  return out;
}

// Orderable values for min/max/topN: numbers below strings, as SQLite orders mixed columns.
function rankCompare(a: unknown, b: unknown): number {
  const ta = typeof a === 'number' ? 0 : 1;
  const tb = typeof b === 'number' ? 0 : 1;
  return ta !== tb ? ta - tb : compareValues(a, b)!;
}

function isOrderable(v: unknown): v is number | string {
  return (typeof v === 'number' && !Number.isNaN(v)) || typeof v === 'string';
}

/** min (sign -1) / max (sign 1) of the orderable values; missing when there are none. */
function extreme(values: Iterable<unknown>, sign: 1 | -1): number | string | undefined {
  let best: number | string | undefined;
  for (const v of values) {
    if (isOrderable(v) && (best === undefined || sign * rankCompare(v, best) > 0)) best = v;
  }
  return best;
}

/** The aggregate of `values` for `sum`/`average`/`min`/`max` (count is handled by callers). */
export function aggregateValues(fn: Exclude<AggregateFn, 'count'>, values: Iterable<unknown>): unknown {
  if (fn === 'min' || fn === 'max') return extreme(values, fn === 'max' ? 1 : -1);
  const acc = new KbnAccumulator();
  for (const v of values) if (typeof v === 'number') acc.add(v);
  return fn === 'sum' ? acc.result() : acc.average();
}

function topN(items: readonly unknown[], keys: readonly unknown[], n: unknown, sign: 1 | -1): unknown[] | undefined {
  if (typeof n !== 'number' || !(n >= 0)) return undefined;
  const ranked: number[] = [];
  for (let i = 0; i < items.length; i++) if (isOrderable(keys[i])) ranked.push(i);
  // Array.prototype.sort is stable: ties stay in source order.
  ranked.sort((i, j) => sign * rankCompare(keys[j], keys[i]));
  return ranked.slice(0, Math.floor(n)).map((i) => items[i]);
}

function present(list: readonly unknown[]): unknown[] {
  return list.filter((v) => !isMissing(v));
}

function contains(list: readonly unknown[], v: unknown): boolean {
  for (const item of list) if (valuesEqual(item, v)) return true;
  return false;
}

function distinct(list: readonly unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const v of list) if (!isMissing(v) && !contains(out, v)) out.push(v);
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function arrayMethod(name: string, a: unknown[], b: unknown): unknown {
  switch (name) {
    case 'includes':
      return !isMissing(b) && contains(a, b);
    case 'distinct':
      return distinct(a);
    case 'head':
      return a.length > 0 && a[0] !== null ? a[0] : undefined;
  }
  if (!Array.isArray(b)) return name === 'intersection' ? undefined : false;
  switch (name) {
    case 'intersects':
      return a.some((v) => !isMissing(v) && contains(b, v));
    case 'subsetOf':
      return present(a).every((v) => contains(b, v));
    case 'supersetOf':
      return present(b).every((v) => contains(a, v));
    case 'intersection':
      return distinct(a).filter((v) => contains(b, v));
  }
  return undefined;
}

function mapMethod(name: string, m: Record<string, unknown>, key: unknown): unknown {
  if (m instanceof BuiltMap) {
    switch (name) {
      case 'get':
        return typeof key === 'string' ? m.entries.get(key) : undefined;
      case 'keys':
        return [...m.entries.keys()];
      case 'values':
        return [...m.entries.values()];
    }
  }
  switch (name) {
    case 'get': {
      if (typeof key !== 'string' || !Object.hasOwn(m, key)) return undefined;
      const v = m[key];
      return v === null ? undefined : v;
    }
    case 'keys':
      return Object.keys(m);
    case 'values':
      return Object.values(m);
  }
  return undefined;
}

function stringMethod(name: string, s: string, args: unknown[]): unknown {
  if (isStringPredicate(name))
    return stringPredicate(name, s, args[0], args[1] === undefined ? true : args[1] === true);
  switch (name) {
    case 'regexGroup':
      return regexGroup(s, args[0], args[1]);
    case 'length':
      return codePointLength(s);
    case 'lower':
      return lowerText(s);
    case 'upper':
      return upperText(s);
  }
  return undefined;
}

function datetimeMethod(name: string, t: number): unknown {
  switch (name) {
    case 'getYear':
      return getYear(t);
    case 'getMonth':
      return getMonth(t);
    case 'getDayOfMonth':
      return getDayOfMonth(t);
  }
  return undefined;
}

const PER_ITEM_METHODS = new Set<string>([...AGGREGATE_FNS, 'topN', 'bottomN', ...QUANTIFIERS, 'groupBy', 'map']);
const STRING_METHODS = new Set(['regexGroup', 'length', 'lower', 'upper']);
const DATETIME_METHODS = new Set(['getYear', 'getMonth', 'getDayOfMonth']);

/** `object.name(args)`. */
export function compileMethodCall(c: Compiler, node: MethodCallNode, scope: Scope): Fn {
  const { name } = node;
  // Traced (explain), the filter is compiled as a node of its own so its matches can be shown.
  if (name === 'count' && node.args.length === 0 && node.object.kind === 'Filter' && c.trace === undefined) {
    return compileFilterCount(c, node.object, scope);
  }
  const receiver = c.compile(node.object, scope);
  if (name === 'isNull') return (ctx) => isMissing(receiver(ctx));
  if (name === 'isNotNull') return (ctx) => !isMissing(receiver(ctx));

  if (PER_ITEM_METHODS.has(name)) {
    const inner = c.itemScope(scope);
    const depth = inner.depth;
    // The per-item argument is the first (topN's second, n, is evaluated in the outer scope).
    const perItem = node.args[0] === undefined ? undefined : c.compile(node.args[0], inner);
    switch (name) {
      case 'count':
        if (perItem === undefined) {
          return (ctx) => {
            const a = receiver(ctx);
            return Array.isArray(a) ? a.length : 0;
          };
        }
        return (ctx) => {
          const a = receiver(ctx);
          return Array.isArray(a) ? perItemValues(ctx, a, perItem, depth).filter((v) => !isMissing(v)).length : 0;
        };
      case 'sum':
      case 'average':
      case 'min':
      case 'max':
        return (ctx) => {
          const a = receiver(ctx);
          if (!Array.isArray(a)) return name === 'sum' ? 0 : undefined;
          return aggregateValues(name, perItemValues(ctx, a, perItem, depth));
        };
      case 'topN':
      case 'bottomN': {
        const n = node.args[1] === undefined ? MISSING : c.compile(node.args[1], scope);
        const sign = name === 'topN' ? 1 : -1;
        return (ctx) => {
          const a = receiver(ctx);
          if (!Array.isArray(a) || perItem === undefined) return undefined;
          return topN(a, perItemValues(ctx, a, perItem, depth), n(ctx), sign);
        };
      }
      case 'map': {
        // `a.map(x => value)` (a path is a projection by now), or a map of `mapEntry`s.
        const build = isEntryMap(node) ? entriesMap : present;
        return (ctx) => {
          const a = receiver(ctx);
          if (!Array.isArray(a) || perItem === undefined) return undefined;
          return build(perItemValues(ctx, a, perItem, depth));
        };
      }
      case 'groupBy':
        // Only a whole value expression (or its values()) gets here: the checker rewrites keys() and get() of it.
        return (ctx) => {
          const a = receiver(ctx);
          if (!Array.isArray(a) || perItem === undefined) return undefined;
          return groupItems(a, perItemValues(ctx, a, perItem, depth));
        };
      case 'exists':
      case 'forall': {
        const cond = perItem ?? MISSING;
        const wanted = name === 'exists';
        return (ctx) => {
          const a = receiver(ctx);
          if (!Array.isArray(a)) return !wanted;
          const s = ctx.scope;
          for (const item of a) {
            s[depth] = item;
            if ((cond(ctx) === true) === wanted) return wanted;
          }
          return !wanted;
        };
      }
    }
  }

  if (isStringPredicate(name)) return compileStringPredicate(c, node, name, receiver, scope);
  const args = node.args.map((arg) => c.compile(arg, scope));
  const arg0 = args[0] ?? MISSING;
  if (name === 'matches') {
    const pattern = constantValue(node.args[0]);
    if (typeof pattern === 'string') {
      // The checker requires a literal pattern: compile it once, not per event.
      const re = compileRegex(pattern);
      return (ctx) => {
        const s = receiver(ctx);
        return typeof s === 'string' && re !== undefined && re.test(s);
      };
    }
    return (ctx) => regexMatches(receiver(ctx), arg0(ctx));
  }
  if (STRING_METHODS.has(name)) {
    return (ctx) => {
      const s = receiver(ctx);
      return typeof s === 'string'
        ? stringMethod(
            name,
            s,
            args.map((a) => a(ctx)),
          )
        : undefined;
    };
  }
  if (DATETIME_METHODS.has(name)) {
    return (ctx) => {
      const t = toInstant(receiver(ctx));
      return t === undefined ? undefined : datetimeMethod(name, t);
    };
  }
  if (name === 'get' || name === 'keys' || name === 'values') {
    return (ctx) => {
      const m = receiver(ctx);
      return isPlainObject(m) ? mapMethod(name, m, arg0(ctx)) : undefined;
    };
  }
  return (ctx) => {
    const a = receiver(ctx);
    if (Array.isArray(a)) return arrayMethod(name, a, arg0(ctx));
    return name === 'includes' || name === 'intersects' || name === 'subsetOf' || name === 'supersetOf'
      ? false
      : undefined;
  };
}

/** `xEvent[cond].count()`, the commonest event condition, counted without building the array. */
function compileFilterCount(c: Compiler, filter: FilterNode, scope: Scope): Fn {
  const items = c.compile(filter.object, scope);
  const inner = c.itemScope(scope);
  const predicate = c.compile(filter.predicate, inner);
  const depth = inner.depth;
  return (ctx) => {
    const a = items(ctx);
    if (!Array.isArray(a)) return 0;
    const s = ctx.scope;
    let n = 0;
    for (const item of a) {
      s[depth] = item;
      if (predicate(ctx) === true) n++;
    }
    return n;
  };
}

/** `s.startsWith(text[, caseSensitive])` and friends; a literal text is lower-cased once. */
function compileStringPredicate(
  c: Compiler,
  node: MethodCallNode,
  name: StringPredicateName,
  receiver: Fn,
  scope: Scope,
): Fn {
  const [textNode, caseNode] = node.args;
  const text = textNode === undefined ? MISSING : c.compile(textNode, scope);
  const caseSensitive = caseNode === undefined ? () => true : c.compile(caseNode, scope);
  const literal = constantValue(textNode);
  const fixedCase = caseNode === undefined ? true : constantValue(caseNode);
  if (typeof literal === 'string' && typeof fixedCase === 'boolean') {
    // Lower-casing the receiver and the literal is what stringPredicate does; only the literal is hoisted.
    const arg = fixedCase ? literal : lowerText(literal);
    return (ctx) => {
      const s = receiver(ctx);
      return typeof s === 'string' && stringPredicate(name, fixedCase ? s : lowerText(s), arg, true);
    };
  }
  return (ctx) => stringPredicate(name, receiver(ctx), text(ctx), caseSensitive(ctx) !== false);
}

const NOT_CONSTANT: unique symbol = Symbol('notConstant');

/** The value of a literal argument (folded at compile time), or NOT_CONSTANT. */
function constantValue(node: ExpressionNode | undefined): unknown {
  if (node === undefined) return undefined;
  if (node.kind === 'Literal') return node.value ?? undefined;
  if (node.kind === 'Negate' && node.operand.kind === 'Literal' && typeof node.operand.value === 'number') {
    return -node.operand.value;
  }
  return NOT_CONSTANT;
}

/** `date("YYYY-MM-DD")` takes exactly that form; `date(y, m, d)` integers naming a real day. */
function dateOf(args: unknown[]): number | undefined {
  if (args.length === 1) {
    const text = args[0];
    return typeof text === 'string' && text.length === 10 ? parseIsoDatetime(text) : undefined;
  }
  const [y, m, d] = args;
  return typeof y === 'number' && typeof m === 'number' && typeof d === 'number' ? parseDate(y, m, d) : undefined;
}

function datetimeOf(text: unknown): number | undefined {
  return typeof text === 'string' ? parseIsoDatetime(text) : undefined;
}

/** `name(args)`. */
export function compileCall(c: Compiler, node: CallNode, scope: Scope): Fn {
  const { name } = node;
  if (name === 'date' || name === 'datetime') {
    const evalArgs = name === 'date' ? dateOf : (a: unknown[]) => datetimeOf(a[0]);
    const constants = node.args.map(constantValue);
    if (!constants.includes(NOT_CONSTANT)) {
      const value = evalArgs(constants);
      return () => value;
    }
    const args = node.args.map((a) => c.compile(a, scope));
    return (ctx) => evalArgs(args.map((a) => a(ctx)));
  }
  if (name === 'inSegment') {
    const ref = constantValue(node.args[0]);
    if (typeof ref === 'string') {
      const id = c.audienceId(ref);
      return id === undefined ? () => false : (ctx) => ctx.profile.memberships.has(id);
    }
    const arg = node.args[0] === undefined ? MISSING : c.compile(node.args[0], scope);
    return (ctx) => {
      const v = arg(ctx);
      const id = typeof v === 'string' ? c.audienceId(v) : undefined;
      return id !== undefined && ctx.profile.memberships.has(id);
    };
  }
  const args = node.args.map((a) => c.compile(a, scope));
  switch (name) {
    case 'if': {
      const [cond = MISSING, then = MISSING, otherwise = MISSING] = args;
      return (ctx) => (cond(ctx) === true ? then(ctx) : otherwise(ctx));
    }
    case 'age': {
      const t = args[0] ?? MISSING;
      return (ctx) => {
        const ms = toInstant(t(ctx));
        return ms === undefined ? undefined : ageInYears(ms, ctx.now);
      };
    }
    case 'currentYear':
      return (ctx) => getYear(ctx.now);
    case 'currentMonth':
      return (ctx) => getMonth(ctx.now);
    case 'currentDayOfMonth':
      return (ctx) => getDayOfMonth(ctx.now);
    case 'mapEntry': {
      // Only as the body of a map lambda (the checker sees to it), whose map collects these.
      const [key = MISSING, value = MISSING] = args;
      return (ctx) => new MapEntry(key(ctx), value(ctx));
    }
  }
  return MISSING;
}
