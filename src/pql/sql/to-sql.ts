/**
 * The SQL engine (docs/pql.md §8): turns a checked PQL expression into one SQLite statement over
 * `profiles AS p` (attributes as JSONB), `events` (real `ts` / `event_type` columns, JSONB
 * payload) and `memberships`, with every user value and JSON path a bound parameter.
 *
 * Semantics follow docs/pql-semantics.md exactly, and the differential property test holds
 * this engine to the JS evaluator on generated expressions and profiles:
 * - two-valued logic: a comparison with a missing operand is SQL NULL, which acts as false
 *   under AND/OR/WHERE; it is flattened with coalesce wherever it is negated or used as a
 *   value, and at the top, so the predicate is always exactly 1 or 0;
 * - event conditions are correlated sub-queries whose `event_type` and `ts` tests are plain
 *   column comparisons against bound values, so they run on the (profile_id, event_type, ts)
 *   index; `occurs` windows are computed once here with runtime.ts and bound;
 * - what SQL cannot do exactly (Unicode case mapping, RE2, like escapes, calendar arithmetic
 *   against per-row references) calls the functions of sql-functions.ts, i.e. runtime.ts.
 *
 * The parts: to-sql-context.ts (scopes, fields, arrays), to-sql-collections.ts (array methods,
 * quantifiers, aggregates), to-sql-time.ts (`occurs`, dates), to-sql-chain.ts (CHAIN).
 */

import { segmentPayloadField } from '../check/segment-payload.js';
import { type CheckedExpression, CURRENT_MEMBER_STATUSES, type PqlType } from '../check/types.js';
import type {
  ArithmeticNode,
  CallNode,
  CompareNode,
  ExpressionNode,
  InNode,
  LogicalNode,
  MemberNode,
  MethodCallNode,
  TimeWord,
} from '../language/ast.js';
import { PqlError } from '../language/errors.js';
import {
  arithmetic,
  compareOp,
  dayStart,
  getDayOfMonth,
  getMonth,
  getYear,
  MS_PER_DAY,
  negate,
  parseDate,
  parseIsoDatetime,
} from '../runtime/index.js';
import { compileChain } from './chain.js';
import {
  compileAggregate,
  compileArrayLiteral,
  compileCollectionMethod,
  compileFilter,
  compileQuantified,
  compileSelect,
  isCollectionMethod,
  itemEquals,
  projectedValues,
} from './collections.js';
import {
  asMs,
  CompileContext,
  datetimeConstant,
  documentOf,
  type Env,
  eventCollection,
  fieldValue,
  fromWhere,
  type IdRange,
  idRangeSql,
  itemValue,
  typedRead,
  unifyDatetimes,
  withVar,
} from './context.js';
import {
  BackendUnsupported,
  type Dialect,
  type DialectName,
  dialect,
  existsSql,
  falseSql,
  withDialect,
} from './dialect.js';
import { documentEquality, impliedBy, withSomeItem } from './equality.js';
import { joinSql, param, raw, SQL_COMPARE, Sql, sameExpression, sql } from './fragment.js';
import { hoistAggregateComparison } from './hoist.js';
import { POSTGRES } from './postgres-dialect.js';
import { andSets, drivingIds, notSets, orSets } from './sets.js';
import { SQLITE } from './sqlite-dialect.js';
import { compileLike, compileStringMethod, literalString } from './strings.js';
import { compareAge, compileDatetimeMethod, compileOccurs, mergeRanges } from './time.js';
import {
  asCondition,
  type CollectionValue,
  type CompiledValue,
  conditionSql,
  constantPredicate,
  type EventAggregate,
  exactConditionSql,
  existsPredicate,
  literal,
  NUMBER_TYPE,
  notSql,
  PROFILE_ALIAS,
  predicate,
  type ScalarValue,
  STRING_TYPE,
  scalarOf,
  valueSql,
} from './values.js';

export interface SqlStatement {
  sql: string;
  params: unknown[];
}

export interface CompilePredicateOptions {
  /** The evaluation instant (epoch ms): `now`, `today`, and every `occurs` window derive from it. */
  now: number;
  /**
   * The sandbox the profiles belong to. With it, event conditions that read only the event
   * become one uncorrelated pass over the sandbox's events (to-sql-hoist.ts).
   */
  sandboxId?: number;
  /** The database the SQL is for (default SQLite); PostgreSQL reads jsonb documents and binds `$n` parameters. */
  dialect?: DialectName;
}

const DIALECTS: Readonly<Record<DialectName, Dialect>> = { sqlite: SQLITE, postgres: POSTGRES };

/** Compiles under the requested dialect; a construct it cannot express is a PqlError at the whole expression when no node claimed it. */
function inDialect<T>(checked: CheckedExpression, name: DialectName | undefined, compile: () => T): T {
  try {
    return withDialect(DIALECTS[name ?? 'sqlite'], compile);
  } catch (e) {
    if (e instanceof BackendUnsupported) throw unsupported(checked, checked.ast, e, name ?? 'sqlite');
    throw e;
  }
}

function unsupported(
  checked: CheckedExpression,
  node: ExpressionNode,
  e: BackendUnsupported,
  name: DialectName = dialect().name,
): PqlError {
  return new PqlError(
    'PQL_TYPE_ERROR',
    `Not supported on ${name === 'postgres' ? 'PostgreSQL' : 'SQLite'}: ${e.message}. Rewrite this part of the expression or run it on SQLite.`,
    checked.source,
    node.loc,
  );
}

export interface CompileToSqlOptions extends CompilePredicateOptions {
  sandboxId: number;
}

/**
 * The definition as a boolean SQL expression over `profiles AS p`, exactly 1 or 0 (never
 * NULL), so it can be negated, combined or selected as a column.
 */
export function compilePredicate(checked: CheckedExpression, options: CompilePredicateOptions): SqlStatement {
  return inDialect(checked, options.dialect, () =>
    dialect().render(exactConditionSql(asCondition(compileRoot(checked, options.now, options.sandboxId)))),
  );
}

/** A condition of the caller's own on `p.id` (a page bound, a progress tick): compiler-made text, never user text. */
export interface IdCondition {
  sql: string;
  params: readonly unknown[];
}

export interface CompileIdQueryOptions extends CompileToSqlOptions {
  /** Conditions on `p.id` to add, ahead of the definition's own. */
  where?: readonly IdCondition[];
  /**
   * Only the profiles with ids in [lo, hi] (a job's range). Every scan of events is bounded to
   * them too, not only the profile row: the planner carries `p.id = e.profile_id` across a join
   * but not a range, so it would otherwise build a hash over the whole sandbox's events of a
   * type for each range (in 12 ranges of 100 k profiles, the two CHAIN definitions of the
   * bench ran 2–5 × slower than in one statement over all profiles).
   */
  idRange?: IdRange;
}

/** compileToSql's statement, and where it starts. */
export interface IdQuery extends SqlStatement {
  /**
   * Set when the statement starts from the current members of the audiences the definition
   * names (no profile or event scan): its cost is bounded by their sizes, times one probe per
   * member for each of `filters` conditions.
   */
  startsFromAudiences?: { filters: number };
}

/**
 * The qualifying profiles of one sandbox, each once: `SELECT p.id AS id FROM … WHERE …`.
 * A definition that is a set over memberships and grouped events (to-sql-sets.ts) starts
 * from those ids and reads no profile row; any other scans the sandbox's profiles
 * (`profiles AS p WHERE p.sandbox_id = ? AND (<condition>)`, the sandbox id the first
 * parameter).
 */
export function compileToSql(checked: CheckedExpression, options: CompileIdQueryOptions): IdQuery {
  return inDialect(checked, options.dialect, () => idQuery(checked, options));
}

function idQuery(checked: CheckedExpression, options: CompileIdQueryOptions): IdQuery {
  const value = asCondition(compileRoot(checked, options.now, options.sandboxId, options.idRange));
  const extra = (options.where ?? []).map((c) => new Sql(`(${c.sql})`, c.params));
  if (options.idRange) extra.push(idRangeSql(PROFILE_ALIAS, 'id', options.idRange));
  const driven = typeof value.constant === 'boolean' ? undefined : drivingIds(value, options.sandboxId);
  if (!driven) {
    const s = sql`SELECT ${PROFILE_ALIAS}.id AS id FROM profiles AS ${PROFILE_ALIAS} WHERE ${PROFILE_ALIAS}.sandbox_id = ${param(options.sandboxId)}${clause('AND', [...extra, value.plans?.topLevel ?? value.sql])}`;
    return dialect().render(s);
  }
  const s = sql`SELECT ${PROFILE_ALIAS}.id AS id FROM (${driven.ids}) AS ${PROFILE_ALIAS}${clause('WHERE', [...extra, ...driven.filters])}`;
  // Compiler-made text: the tables a set reads are named in it.
  const audiencesOnly = !/\bFROM (events|profiles)\b/.test(driven.ids.text);
  return {
    ...dialect().render(s),
    ...(audiencesOnly ? { startsFromAudiences: { filters: driven.filters.length } } : {}),
  };
}

/** `('REALIZED', 'EXISTING')`: constants of the language, so written into the text like a keyword. */
const CURRENT_STATUSES_SQL = raw(`(${CURRENT_MEMBER_STATUSES.map((s) => `'${s}'`).join(', ')})`);

/** ` WHERE (a) AND (b)` or ` AND (a) AND (b)`; nothing without conditions. */
function clause(keyword: 'WHERE' | 'AND', conds: readonly Sql[]): Sql {
  if (conds.length === 0) return raw('');
  return sql` ${keyword} ${joinSql(
    conds.map((c) => sql`(${c})`),
    ' AND ',
  )}`;
}

function compileRoot(checked: CheckedExpression, now: number, sandboxId?: number, idRange?: IdRange): ScalarValue {
  const ctx: CompileContext = new CompileContext(
    checked,
    now,
    (node, env) => dispatch(ctx, node, env),
    sandboxId,
    idRange,
  );
  return ctx.scalar(checked.ast, { scopes: [{ kind: 'profile' }], vars: new Map() });
}

function dispatch(ctx: CompileContext, node: ExpressionNode, env: Env): CompiledValue {
  try {
    return dispatchNode(ctx, node, env);
  } catch (e) {
    // The innermost node being compiled is the one the user has to change.
    if (e instanceof BackendUnsupported) throw unsupported(ctx.checked, node, e);
    throw e;
  }
}

function dispatchNode(ctx: CompileContext, node: ExpressionNode, env: Env): CompiledValue {
  switch (node.kind) {
    case 'Literal':
      return literal(node.value, ctx.typeOf(node));
    case 'TimeWord':
      return timeWord(ctx, node.word);
    case 'ArrayLiteral':
      return compileArrayLiteral(ctx, node, env);
    case 'Identifier': {
      const binding = env.vars.get(node.name);
      if (binding?.kind === 'let') return ctx.compile(binding.node, binding.env);
      if (binding?.kind === 'variable') return binding.value();
      if (binding?.kind === 'item') return itemValue(binding.item, ctx.typeOf(node));
      if (binding?.kind === 'label') return binding.time;
      return fieldValue(ctx, env.scopes[env.scopes.length - 1]!, [node.name], ctx.typeOf(node));
    }
    case 'XEvent':
      return eventCollection(ctx, ctx.typeOf(node));
    case 'Parameter':
      return { kind: 'object', type: ctx.typeOf(node), item: env.scopes[0]!, path: [] };
    case 'ParentField': {
      const item = env.scopes[env.scopes.length - 1 - node.depth];
      if (!item) throw new Error(`PQL to SQL: ^ reaches past the profile at offset ${node.loc.offset}`);
      return fieldValue(ctx, item, [node.name], ctx.typeOf(node));
    }
    case 'Member': {
      const payload = segmentPayloadField(node);
      if (payload) return payloadField(ctx, payload.ref, payload.field, ctx.typeOf(node));
      if (ctx.typeOf(node.object).kind === 'array') return projection(ctx, node, env);
      const object = ctx.compile(node.object, env);
      if (object.kind !== 'object') throw new Error(`PQL to SQL: .${node.name} on a non-object`);
      return fieldValue(ctx, object.item, [...object.path, node.name], ctx.typeOf(node), object.wrap);
    }
    case 'MethodCall':
      return methodCall(ctx, node, env);
    case 'Filter':
      return compileFilter(ctx, node, env);
    case 'Call':
      return call(ctx, node, env);
    case 'Logical':
      return logical(ctx, node, env);
    case 'Not':
      return notValue(asCondition(ctx.scalar(node.operand, env)));
    case 'Compare':
      return compare(ctx, node, env);
    case 'Arithmetic':
      return arithmeticValue(ctx, node, env);
    case 'Negate': {
      const v = ctx.scalar(node.operand, env);
      if (v.constant !== undefined) return literal(negate(v.constant) ?? null, NUMBER_TYPE);
      // runtime.negate makes a non-finite operand missing, and a sum can overflow to ±Infinity.
      // A new value: nothing of the operand's (an event aggregate, an age) describes it any more.
      return {
        kind: 'scalar',
        sql: dialect().negate(valueSql(v)),
        type: NUMBER_TYPE,
        nullable: true,
        predicate: false,
      };
    }
    case 'In':
      return inList(ctx, node, env);
    case 'Like':
      return compileLike(ctx, node, env);
    case 'Occurs':
      return compileOccurs(ctx, ctx.scalar(node.subject, env), node.tail, env);
    case 'Quantified':
      return compileQuantified(ctx, node, env);
    case 'Select':
      return compileSelect(ctx, node, env);
    case 'Aggregate':
      return compileAggregate(ctx, node, env);
    case 'Let':
      return ctx.compile(node.body, withVar(env, node.name, { kind: 'let', node: node.value, env }));
    case 'Chain':
      return compileChain(ctx, node, env);
    case 'Lambda': {
      // A per-item argument naming its item, compiled where the item is the current scope.
      const item = env.scopes[env.scopes.length - 1]!;
      return ctx.compile(node.body, withVar(env, node.param, { kind: 'item', item }));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// values

/** `a.f.g` through an array of objects: the present values of f.g over a's items. */
function projection(ctx: CompileContext, node: MemberNode, env: Env): CollectionValue {
  const names = [node.name];
  let base: ExpressionNode = node.object;
  while (base.kind === 'Member' && ctx.typeOf(base.object).kind === 'array') {
    names.unshift(base.name);
    base = base.object;
  }
  return projectedValues(ctx, ctx.collection(base, env), names, ctx.typeOf(node));
}

function timeWord(ctx: CompileContext, word: TimeWord): ScalarValue {
  const today = dayStart(ctx.now);
  switch (word) {
    case 'now':
      return datetimeConstant(ctx.now);
    case 'today':
      return datetimeConstant(today);
    case 'yesterday':
      return datetimeConstant(today - MS_PER_DAY);
    case 'tomorrow':
      return datetimeConstant(today + MS_PER_DAY);
  }
}

function notValue(v: ScalarValue): ScalarValue {
  if (typeof v.constant === 'boolean') return constantPredicate(!v.constant);
  return { ...predicate(notSql(v), false), plans: { idSets: notSets(v) } };
}

function logical(ctx: CompileContext, node: LogicalNode, env: Env): ScalarValue {
  const left = asCondition(ctx.scalar(node.left, env));
  const right = asCondition(ctx.scalar(node.right, env));
  const and = node.op === 'and';
  for (const [a, b] of [
    [left, right],
    [right, left],
  ] as const) {
    if (typeof a.constant === 'boolean') return a.constant === and ? b : constantPredicate(!and);
  }
  if (and) {
    const range = mergeRanges(left, right);
    if (range) return range;
  }
  // The id sets (to-sql-sets.ts) are another form of the same condition, whatever its SQL.
  const merged = mergeComparisons(left, right, and);
  if (merged) return { ...merged, plans: and ? andSets(left, right) : { idSets: orSets(left, right) } };
  const op = and ? 'AND' : 'OR';
  const implies = impliedBy(left, right, and);
  const value = {
    ...predicate(sql`(${conditionSql(left)} ${op} ${conditionSql(right)})`, left.nullable || right.nullable),
    ...(implies ? { implies } : {}),
  };
  if (!and) return { ...value, plans: { idSets: orSets(left, right) } };
  const sets = andSets(left, right);
  const [lt, rt] = [left.plans?.topLevel, right.plans?.topLevel];
  if (lt === undefined && rt === undefined) return { ...value, plans: sets };
  // Conjuncts stay conjuncts: SQLite splits nested ANDs into WHERE terms.
  return { ...value, plans: { ...sets, topLevel: sql`(${lt ?? left.sql} AND ${rt ?? right.sql})` } };
}

/**
 * `count() op k` when it only asks whether there is a matching event (`>= 1`, `> 0`, `!= 0`,
 * or `= 0`, `< 1`): EXISTS, which stops at the first match where count(*) reads them all.
 */
function countAsExists(agg: EventAggregate, op: CompareNode['op'], k: number): ScalarValue | undefined {
  if (agg.fn !== 'count' || agg.distinct) return undefined;
  const monotone = op !== '=' && op !== '!=';
  if (!monotone && k !== 0) return undefined;
  const none = compareOp(op, 0, k);
  const some = compareOp(op, 1, k);
  if (none === some || (monotone && some !== compareOp(op, Number.MAX_SAFE_INTEGER, k))) return undefined;
  const exists = existsPredicate(sql`SELECT 1 ${fromWhere(agg.source)}`, true);
  return some ? exists : predicate(sql`NOT ${existsSql(sql`SELECT 1 ${fromWhere(agg.source)}`)}`, false);
}

/**
 * Two comparisons of the same computed value with constants (`let S = … in (S > 50 and S < 500)`):
 * one sub-query computing the value once (SQLite does not reuse a sub-query's result, and S
 * may be a sum over the profile's events). Undefined when they are not that.
 */
function mergeComparisons(a: ScalarValue, b: ScalarValue, and: boolean): ScalarValue | undefined {
  const ca = a.shape?.compared;
  const cb = b.shape?.compared;
  if (!ca || !cb || !sameExpression(ca.subject, cb.subject)) return undefined;
  // Only worth it when the value is itself a query; a column or JSON read is cheap to repeat.
  if (!ca.subject.text.startsWith('(SELECT ')) return undefined;
  const test = sql`(s ${ca.op} ${ca.bound}) ${and ? 'AND' : 'OR'} (s ${cb.op} ${cb.bound})`;
  return predicate(
    sql`(SELECT ${test} FROM ${dialect().derived(sql`SELECT ${ca.subject} AS s`)})`,
    a.nullable || b.nullable,
  );
}

/** Remembers `left op right` when one side is a constant number, for mergeComparisons. */
function withComparison(v: ScalarValue, op: CompareNode['op'], left: ScalarValue, right: ScalarValue): ScalarValue {
  if (v.constant !== undefined) return v;
  if (typeof right.constant === 'number' && left.constant === undefined && left.type.kind === 'number') {
    return { ...v, shape: { compared: { subject: valueSql(left), op: SQL_COMPARE[op], bound: valueSql(right) } } };
  }
  if (typeof left.constant === 'number' && right.constant === undefined && right.type.kind === 'number') {
    const compared = { subject: valueSql(right), op: SQL_COMPARE[FLIPPED[op]], bound: valueSql(left) };
    return { ...v, shape: { compared } };
  }
  return v;
}

/** `a op b`; false when either side is missing (SQL NULL) or the null literal. */
function compareScalars(op: CompareNode['op'], left: ScalarValue, right: ScalarValue): ScalarValue {
  if (left.constant === null || right.constant === null || left.type.kind === 'null' || right.type.kind === 'null') {
    return constantPredicate(false);
  }
  let [a, b] = [left, right];
  if (a.type.kind === 'datetime' || b.type.kind === 'datetime') [a, b] = unifyDatetimes(a, b);
  // Text (strings, ISO datetimes) in code-point order; equality needs no collation.
  const text = a.type.kind === 'string' || a.rep === 'iso';
  const order = text && op !== '=' && op !== '!=' ? dialect().ordered : (s: Sql) => s;
  const exact = predicate(
    sql`${order(valueSql(a))} ${SQL_COMPARE[op]} ${order(valueSql(b))}`,
    a.nullable || b.nullable,
  );
  if (op !== '=') return exact;
  return documentEquality(exact, a, [b]) ?? documentEquality(exact, b, [a]) ?? exact;
}

const FLIPPED: Record<CompareNode['op'], CompareNode['op']> = {
  '=': '=',
  '!=': '!=',
  '<': '>',
  '<=': '>=',
  '>': '<',
  '>=': '<=',
};

/**
 * An operand of a comparison. `age(t)` is compiled here rather than through dispatch so that a
 * dialect without per-row age (PostgreSQL) still compiles `age(t) op k`, which becomes a range
 * on t; anything else it is compared with needs the age itself.
 */
function comparand(ctx: CompileContext, node: ExpressionNode, env: Env): ScalarValue & { ageError?: Error } {
  if (node.kind !== 'Call' || node.name !== 'age') return ctx.scalar(node, env);
  const t = ctx.scalar(node.args[0]!, env);
  if (t.constant === null) return literal(null, NUMBER_TYPE);
  try {
    return ageValue(ctx, t);
  } catch (e) {
    if (!(e instanceof BackendUnsupported)) throw e;
    return { ...scalarOf(raw('NULL'), NUMBER_TYPE), origin: { ageOf: t }, ageError: unsupported(ctx.checked, node, e) };
  }
}

function ageValue(ctx: CompileContext, t: ScalarValue): ScalarValue {
  // In epoch ms, the one form every dialect's age() takes.
  return { ...scalarOf(dialect().age(valueSql(asMs(t)), param(ctx.now)), NUMBER_TYPE), origin: { ageOf: t } };
}

function compare(ctx: CompileContext, node: CompareNode, env: Env): ScalarValue {
  const left = comparand(ctx, node.left, env);
  const right = comparand(ctx, node.right, env);
  const [lo, ro] = [left.origin, right.origin];
  if (lo?.ageOf && typeof right.constant === 'number') return compareAge(node.op, lo.ageOf, right.constant, ctx.now);
  if (ro?.ageOf && typeof left.constant === 'number') {
    return compareAge(FLIPPED[node.op], ro.ageOf, left.constant, ctx.now);
  }
  if (left.ageError) throw left.ageError;
  if (right.ageError) throw right.ageError;
  let exact = withComparison(compareScalars(node.op, left, right), node.op, left, right);
  // A count compared so that it must be 1 or more: the items being some implies a containment,
  // which is the whole test when the comparison is just that (`> 0`, `>= 1`, `!= 0`).
  const k = right.constant;
  if (left.someItem && typeof k === 'number' && !compareOp(node.op, 0, k)) {
    const justSome = (node.op === '>' && k < 1) || (node.op === '>=' && k <= 1) || (node.op === '!=' && k === 0);
    exact = withSomeItem(exact, justSome ? left.someItem : { ...left.someItem, exact: false });
  }
  if (lo?.eventAggregate && typeof right.constant === 'number') {
    const correlated = countAsExists(lo.eventAggregate, node.op, right.constant) ?? exact;
    return hoistAggregateComparison(ctx, lo.eventAggregate, node.op, right.constant, correlated);
  }
  if (ro?.eventAggregate && typeof left.constant === 'number') {
    const correlated = countAsExists(ro.eventAggregate, FLIPPED[node.op], left.constant) ?? exact;
    return hoistAggregateComparison(ctx, ro.eventAggregate, FLIPPED[node.op], left.constant, correlated);
  }
  return exact;
}

function arithmeticValue(ctx: CompileContext, node: ArithmeticNode, env: Env): ScalarValue {
  const a = ctx.scalar(node.left, env);
  const b = ctx.scalar(node.right, env);
  const type = ctx.typeOf(node).kind === 'string' ? STRING_TYPE : NUMBER_TYPE;
  if (a.constant !== undefined && b.constant !== undefined) {
    return literal(arithmetic(node.op, a.constant, b.constant) ?? null, type);
  }
  if (a.constant === null || b.constant === null) return literal(null, type);
  const x = valueSql(a);
  const y = valueSql(b);
  let s: Sql;
  if (type.kind === 'string') {
    s = sql`(${x} || ${y})`;
  } else if (node.op === '%') {
    s = dialect().modulo(x, y);
  } else {
    const constant =
      typeof b.constant === 'number'
        ? { value: b.constant, left: false }
        : typeof a.constant === 'number'
          ? { value: a.constant, left: true }
          : undefined;
    s = dialect().arithmetic(node.op, x, y, constant);
  }
  return { kind: 'scalar', sql: s, type, nullable: true, predicate: false };
}

function inList(ctx: CompileContext, node: InNode, env: Env): ScalarValue {
  const value = ctx.scalar(node.value, env);
  if (value.constant === null || value.type.kind === 'null') return constantPredicate(false);
  if (node.list.kind === 'ArrayLiteral') {
    const elements = node.list.elements.map((e) => ctx.scalar(e, env)).filter((e) => e.constant !== null);
    let v = value;
    let items = elements;
    if (value.type.kind === 'datetime') {
      const allConstant = elements.every((e) => typeof e.constant === 'number');
      if (value.rep === 'iso' && allConstant) items = elements.map((e) => unifyDatetimes(value, e)[1]);
      else {
        v = asMs(value);
        items = elements.map(asMs);
      }
    }
    const list = items.map(valueSql);
    const listSql = sql`(${joinParts(list)})`;
    if (!node.negated) {
      if (items.length === 0) return constantPredicate(false);
      const exact = predicate(sql`${valueSql(v)} IN ${listSql}`, true);
      return documentEquality(exact, v, items) ?? exact;
    }
    // Missing elements are ignored, so a NULL must never reach NOT IN (it would make it unknown).
    const fixed = items.filter((e) => !e.nullable);
    const optional = items.filter((e) => e.nullable);
    const parts: Sql[] = [
      fixed.length > 0
        ? sql`${valueSql(v)} NOT IN (${joinParts(fixed.map(valueSql))})`
        : sql`${valueSql(v)} IS NOT NULL`,
      ...optional.map((e) => dialect().orTrue(sql`${valueSql(v)} <> ${valueSql(e)}`)),
    ];
    const notIn = predicate(sql`(${joinParts(parts, ' AND ')})`, v.nullable);
    // A value of another JSON type equals no constant of the field's type: present, so notIn holds.
    const read = v.read;
    const sameType = items.every((e) => e.constant !== undefined && e.type.kind === v.type.kind);
    const other = read && sameType ? dialect().otherTypePresent(documentOf(read.item), read.path, v.type) : undefined;
    return other ? predicate(sql`(${notIn.sql} OR ${other})`, v.nullable) : notIn;
  }
  const list = ctx.collection(node.list, env);
  const sub = sql`SELECT 1 ${fromWhere(list, [itemEquals(list, value)])}`;
  if (!node.negated) return existsPredicate(sub, true);
  const conds: Sql[] = [];
  if (value.nullable) conds.push(sql`${valueSql(value)} IS NOT NULL`);
  if (list.present) conds.push(dialect().orFalse(list.present));
  conds.push(sql`NOT ${existsSql(sub)}`);
  return predicate(sql`(${joinParts(conds, ' AND ')})`, false);
}

function joinParts(parts: readonly Sql[], separator = ', '): Sql {
  let out = sql``;
  parts.forEach((p, i) => {
    out = i === 0 ? p : sql`${out}${raw(separator)}${p}`;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// methods and functions

function methodCall(ctx: CompileContext, node: MethodCallNode, env: Env): CompiledValue {
  const { name } = node;
  if (name === 'isNull' || name === 'isNotNull') return nullTest(ctx, node, env, name === 'isNull');
  if (isCollectionMethod(name)) return compileCollectionMethod(ctx, node, env);
  if (name === 'getYear' || name === 'getMonth' || name === 'getDayOfMonth') {
    return compileDatetimeMethod(name, ctx.scalar(node.object, env));
  }
  return compileStringMethod(ctx, node, env);
}

function nullTest(ctx: CompileContext, node: MethodCallNode, env: Env, isNull: boolean): ScalarValue {
  const v = ctx.compile(node.object, env);
  let missing: Sql;
  switch (v.kind) {
    case 'scalar':
      // A condition is never missing (false is a value).
      if (v.predicate) return constantPredicate(!isNull);
      if (!v.nullable) return constantPredicate(!isNull);
      missing = sql`${v.sql} IS NULL`;
      break;
    case 'object':
      if (v.path.length === 0 && !v.wrap) return constantPredicate(!isNull);
      if (v.path.length === 0) missing = sql`NOT ${v.present ?? falseSql()}`;
      else {
        const type = dialect().jsonType(documentOf(v.item), v.path);
        missing = dialect().orTrue(sql`${v.wrap ? v.wrap(type) : type} = 'null'`);
      }
      break;
    case 'collection':
      if (v.present === null) return constantPredicate(!isNull);
      missing = sql`NOT ${dialect().orFalse(v.present)}`;
      break;
  }
  return predicate(isNull ? missing : sql`NOT (${missing})`, false);
}

function call(ctx: CompileContext, node: CallNode, env: Env): CompiledValue {
  switch (node.name) {
    case 'date': {
      const args = node.args.map((a) => ctx.scalar(a, env).constant);
      if (args.length === 1) {
        const text = args[0];
        return datetimeConstant(typeof text === 'string' && text.length === 10 ? parseIsoDatetime(text) : undefined);
      }
      const [y, m, d] = args;
      return datetimeConstant(
        typeof y === 'number' && typeof m === 'number' && typeof d === 'number' ? parseDate(y, m, d) : undefined,
      );
    }
    case 'datetime': {
      const text = ctx.scalar(node.args[0]!, env).constant;
      return datetimeConstant(typeof text === 'string' ? parseIsoDatetime(text) : undefined);
    }
    case 'inSegment': {
      const ref = literalString(node.args[0]);
      const id = ctx.checked.audiences.get(ref);
      if (id === undefined) return constantPredicate(false);
      const m = ctx.alias('m');
      const current = sql`${m}.audience_id = ${param(id)} AND ${m}.status IN ${CURRENT_STATUSES_SQL}`;
      // Profile by profile (no sandbox given: a sample, a single profile), a probe of the primary key.
      if (ctx.sandboxId === undefined) {
        return predicate(
          existsSql(sql`SELECT 1 FROM memberships AS ${m} WHERE ${current} AND ${m}.profile_id = ${PROFILE_ALIAS}.id`),
          false,
        );
      }
      // Over the sandbox: uncorrelated, so SQLite reads the audience's members once (audience_id,
      // status index) instead of probing memberships once per profile; `+` as in to-sql-hoist.ts.
      const members = sql`SELECT ${m}.profile_id AS id FROM memberships AS ${m} WHERE ${current}`;
      return { ...predicate(sql`+${PROFILE_ALIAS}.id IN (${members})`, false), plans: { idSets: { ids: members } } };
    }
    case 'if':
      return ifValue(ctx, node, env);
    case 'age': {
      const t = ctx.scalar(node.args[0]!, env);
      if (t.constant === null) return literal(null, NUMBER_TYPE);
      return ageValue(ctx, t);
    }
    case 'currentYear':
      return literal(getYear(ctx.now), NUMBER_TYPE);
    case 'currentMonth':
      return literal(getMonth(ctx.now), NUMBER_TYPE);
    case 'currentDayOfMonth':
      return literal(getDayOfMonth(ctx.now), NUMBER_TYPE);
  }
  throw new Error(`PQL to SQL: unknown function ${node.name}()`);
}

/**
 * `inSegment("…").payload.<field>`: the field of the profile's row, read from its current
 * membership (a primary-key probe); NULL, i.e. missing, when it is not a current member.
 */
function payloadField(ctx: CompileContext, ref: string, field: string, type: PqlType): ScalarValue {
  const id = ctx.checked.audiences.get(ref);
  if (id === undefined) return literal(null, type);
  const m = ctx.alias('m');
  const row = sql`SELECT ${dialect().readJson(sql`${m}.payload`, [field], type)} FROM memberships AS ${m} WHERE ${m}.audience_id = ${param(id)} AND ${m}.profile_id = ${PROFILE_ALIAS}.id AND ${m}.status IN ${CURRENT_STATUSES_SQL}`;
  return typedRead(sql`(${row})`, type);
}

function ifValue(ctx: CompileContext, node: CallNode, env: Env): ScalarValue {
  const cond = asCondition(ctx.scalar(node.args[0]!, env));
  let a = ctx.scalar(node.args[1]!, env);
  let b = ctx.scalar(node.args[2]!, env);
  if (typeof cond.constant === 'boolean') return cond.constant ? a : b;
  const type = ctx.typeOf(node);
  if (a.type.kind === 'datetime' || b.type.kind === 'datetime') {
    // One representation for both branches; NULL (the null literal) fits either.
    if (a.constant === null) a = { ...a, rep: b.rep };
    else if (b.constant === null) b = { ...b, rep: a.rep };
    else [a, b] = unifyDatetimes(a, b);
  }
  return {
    kind: 'scalar',
    sql: sql`CASE WHEN ${conditionSql(cond)} THEN ${valueSql(a)} ELSE ${valueSql(b)} END`,
    type,
    nullable: a.nullable || b.nullable,
    predicate: false,
    rep: a.rep ?? b.rep,
  };
}
