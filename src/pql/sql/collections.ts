/**
 * Arrays in SQL: filters, the array methods, quantifiers, `select` and aggregations. An array
 * is a row source (`events AS e3 WHERE e3.profile_id = p.id …`, `jsonb_each(doc, ?) AS j4`),
 * and every method is a correlated sub-query over it, so event conditions stay direct column
 * comparisons on the (profile_id, event_type, ts) index.
 */

import { isEntryMap } from '../check/collection-forms.js';
import type { PqlType } from '../check/types.js';
import type {
  AggregateFn,
  AggregateNode,
  ArrayLiteralNode,
  CallNode,
  ExpressionNode,
  FilterNode,
  LambdaNode,
  MethodCallNode,
  QuantifiedNode,
  SelectNode,
} from '../language/ast.js';
import { AGGREGATE_FNS, QUANTIFIERS } from '../language/vocabulary.js';
import {
  asIso,
  type CompileContext,
  documentOf,
  type Env,
  fieldValue,
  fromWhere,
  isoBound,
  itemValue,
  readScalar,
  typedRead,
  unifyDatetimes,
  withScope,
  withVar,
} from './context.js';
import { dialect, existsSql, notKnown, trueSql } from './dialect.js';
import { includesPrefilter, someItemContainment, someItemOf, withPrefilter, withSomeItem } from './equality.js';
import { param, raw, type Sql, sql } from './fragment.js';
import { hoistExists, hoistForall } from './hoist.js';
import {
  ANY_TYPE,
  asCondition,
  type CollectionValue,
  type CompiledValue,
  conditionSql,
  constantPredicate,
  type DocumentRead,
  existsPredicate,
  NUMBER_TYPE,
  type ObjectValue,
  predicate,
  type ScalarValue,
  valueSql,
} from './values.js';

const COLLECTION_METHODS = new Set<string>([
  ...AGGREGATE_FNS,
  'head',
  'topN',
  'bottomN',
  ...QUANTIFIERS,
  'includes',
  'intersects',
  'subsetOf',
  'supersetOf',
  'intersection',
  'distinct',
  'get',
  'keys',
  'values',
  'map',
]);

export function isCollectionMethod(name: string): boolean {
  return COLLECTION_METHODS.has(name);
}

function and(parts: readonly Sql[]): Sql {
  if (parts.length === 0) return trueSql();
  return parts.slice(1).reduce((acc, p) => sql`${acc} AND ${p}`, parts[0]!);
}

function scalar(s: Sql, type: PqlType, nullable = true): ScalarValue {
  return {
    kind: 'scalar',
    sql: s,
    type,
    nullable,
    predicate: false,
    rep: type.kind === 'datetime' ? 'iso' : undefined,
  };
}

/** The whole item of an array of scalars (`j.value`). */
function itemScalar(c: CollectionValue): ScalarValue {
  return readScalar(c.item, [], c.itemType);
}

/** `item = v` for an array of scalars, datetimes compared in one representation. */
export function itemEquals(c: CollectionValue, v: ScalarValue): Sql {
  let [a, b] = [itemScalar(c), v];
  if (a.type.kind === 'datetime' || b.type.kind === 'datetime') [a, b] = unifyDatetimes(a, b);
  return sql`${valueSql(a)} = ${valueSql(b)}`;
}

function sameItems(c: CollectionValue, d: CollectionValue): Sql {
  let [a, b] = [itemScalar(c), itemScalar(d)];
  if (a.type.kind === 'datetime' || b.type.kind === 'datetime') [a, b] = unifyDatetimes(a, b);
  return sql`${valueSql(a)} = ${valueSql(b)}`;
}

function presentAnd(...parts: (Sql | null)[]): Sql | null {
  const list = parts.filter((p): p is Sql => p !== null);
  if (list.length === 0) return null;
  return and(list.map((p) => dialect().orFalse(p)));
}

function withCondition(c: CollectionValue, cond: Sql): CollectionValue {
  const events = c.events && { alias: c.events.alias, conds: [...c.events.conds, cond] };
  return { ...c, where: [...c.where, cond], length: undefined, events };
}

/** `a[cond]`: the items of `a` for which `cond` holds, fields resolved against each item. */
export function compileFilter(ctx: CompileContext, node: FilterNode, env: Env): CollectionValue {
  const c = ctx.collection(node.object, env);
  const cond = asCondition(ctx.scalar(node.predicate, withScope(env, c.item)));
  const filtered = withCondition(c, conditionSql(cond));
  const some = someItemContainment(c, cond);
  return some ? { ...filtered, someItem: { ...some, from: filtered.from, where: filtered.where } } : filtered;
}

/** `[a, b, …]` as a row source: constants as one bound JSON text, otherwise `json_array(…)`. */
export function compileArrayLiteral(ctx: CompileContext, node: ArrayLiteralNode, env: Env): CollectionValue {
  const type = ctx.typeOf(node);
  const itemType = type.kind === 'array' ? type.of : ANY_TYPE;
  // Datetime items are kept as ISO text, the form document arrays have.
  const elements = node.elements.map((e) => ctx.scalar(e, env));
  const alias = ctx.alias('j');
  let from: Sql;
  if (elements.every((e) => e.constant !== undefined)) {
    const values = elements.map((e) =>
      e.type.kind === 'datetime' && typeof e.constant === 'number' ? isoBound(e.constant) : e.constant,
    );
    from = dialect().literalRows({ json: JSON.stringify(values) }, alias);
  } else {
    const items = elements.map((e) => valueSql(e.type.kind === 'datetime' ? asIso(e) : e));
    from = dialect().literalRows({ items }, alias);
  }
  return {
    kind: 'collection',
    type,
    itemType,
    from,
    where: [],
    item: { kind: 'json', alias },
    order: [raw(`${alias}.key`)],
    present: null,
    length: param(elements.length),
  };
}

function joinComma(parts: readonly Sql[]): Sql {
  if (parts.length === 0) return raw('');
  return parts.slice(1).reduce((acc, p) => sql`${acc}, ${p}`, parts[0]!);
}

function bindItems(ctx: CompileContext, bindings: QuantifiedNode['bindings'], env: Env) {
  let inner = env;
  const sources: CollectionValue[] = [];
  for (const b of bindings) {
    const c = ctx.collection(b.source, inner);
    sources.push(c);
    inner = withVar(inner, b.name, { kind: 'variable', value: () => itemValue(c.item, c.itemType) });
  }
  return { sources, inner };
}

/** `exists E from s, F from t where body` / `forall …`: one sub-query over the cross product. */
export function compileQuantified(ctx: CompileContext, node: QuantifiedNode, env: Env): ScalarValue {
  const { sources, inner } = bindItems(ctx, node.bindings, env);
  const body = asCondition(ctx.scalar(node.body, inner));
  const from = sources.map((s) => s.from).reduce((acc, f) => sql`${acc}, ${f}`);
  const where = sources.flatMap((s) => s.where);
  const single = sources.length === 1 ? sources[0] : undefined;
  if (node.quantifier === 'exists') {
    const correlated = existsPredicate(
      sql`SELECT 1 FROM ${from} WHERE ${and([...where, conditionSql(body)])}`,
      sources.length === 1,
    );
    return single ? hoistExists(ctx, single, conditionSql(body), correlated) : correlated;
  }
  const counter = body.nullable ? notKnown(body.sql) : sql`NOT (${body.sql})`;
  const correlated = predicate(
    sql`NOT ${existsSql(sql`SELECT 1 FROM ${from} WHERE ${and([...where, counter])}`)}`,
    false,
  );
  return single ? hoistForall(ctx, single, counter, correlated) : correlated;
}

/** `select E from src where body`: the items of src for which body holds, E naming the item. */
export function compileSelect(ctx: CompileContext, node: SelectNode, env: Env): CollectionValue {
  const { sources, inner } = bindItems(ctx, [node.binding], env);
  const c = sources[0]!;
  const body = asCondition(ctx.scalar(node.body, inner));
  return withCondition(c, conditionSql(body));
}

/** `sum E.x over E from src where body` (count/average/min/max). */
export function compileAggregate(ctx: CompileContext, node: AggregateNode, env: Env): ScalarValue {
  const { sources, inner } = bindItems(ctx, [node.binding], env);
  const c = sources[0]!;
  const body = asCondition(ctx.scalar(node.body, inner));
  const filtered = withCondition(c, conditionSql(body));
  const value = ctx.compile(node.value, inner);
  if (node.fn === 'count') {
    const present = presence(value);
    const counted = present === null ? filtered : withCondition(filtered, present);
    return {
      ...scalar(sql`(SELECT count(*) ${fromWhere(counted)})`, NUMBER_TYPE, false),
      origin: { eventAggregate: counted.events && { fn: 'count', source: counted, input: null } },
    };
  }
  if (value.kind !== 'scalar') throw new Error(`PQL to SQL: ${node.fn} needs numbers`);
  return aggregate(filtered, node.fn, value);
}

/** The condition that a value is present (null when it always is). */
function presence(v: CompiledValue): Sql | null {
  switch (v.kind) {
    case 'scalar':
      if (v.predicate || !v.nullable) return null;
      return sql`${v.sql} IS NOT NULL`;
    case 'object':
      if (v.path.length === 0 && !v.wrap) return null;
      if (v.path.length === 0) return v.present ?? null;
      {
        const t = dialect().jsonType(documentOf(v.item), v.path);
        return dialect().orFalse(sql`${v.wrap ? v.wrap(t) : t} <> 'null'`);
      }
    case 'collection':
      return v.present === null ? null : dialect().orFalse(v.present);
  }
}

/**
 * sum/average/min/max of a value per item. SQLite's total()/avg() are the KBN sums that
 * runtime.KbnAccumulator reproduces step for step, which is only the same number when the
 * values come in the same order: events are summed in (ts, id) order like the JS engine (the
 * index already delivers that order when the event type is fixed, so it costs no sort).
 */
function aggregate(c: CollectionValue, fn: Exclude<AggregateFn, 'count'>, v: ScalarValue): ScalarValue {
  const summed = fn === 'sum' || fn === 'average';
  const f = raw(summed ? dialect().sumFunction(fn) : fn);
  const type = fn === 'min' || fn === 'max' ? v.type : NUMBER_TYPE;
  // min/max of text (strings, ISO datetimes) in code-point order.
  const ordered = v.type.kind === 'string' || v.rep === 'iso' ? dialect().ordered(valueSql(v)) : valueSql(v);
  const input = summed ? sumInput(v) : ordered;
  let s: Sql;
  if (summed && dialect().orderedSums) {
    // The items' order goes into the call; the argument and the order keys become columns first,
    // so an argument reading only outer rows stays this aggregate, not the outer query's.
    const keys = c.order.map((o, i) => sql`${o} AS ${raw(`o${i}`)}`);
    const by = c.order.length === 0 ? sql`` : sql` ORDER BY ${raw(c.order.map((_, i) => `o${i}`).join(', '))}`;
    s = sql`(SELECT ${f}(v${by}) FROM ${dialect().derived(sql`SELECT ${joinComma([sql`${input} AS v`, ...keys])} ${fromWhere(c)}`)})`;
  } else if (c.item.kind === 'event' && summed) {
    s = sql`(SELECT ${f}(v) FROM ${dialect().derived(sql`SELECT ${input} AS v ${fromWhere(c)} ORDER BY ${joinComma(c.order)}`)})`;
  } else if (!readsItem(c, input)) {
    // An aggregate whose argument reads only outer rows (`xEvent.max(^.loyalty.points)`) would be
    // the outer query's aggregate in SQL: the argument becomes a column of the items first.
    s = sql`(SELECT ${f}(v) FROM ${dialect().derived(sql`SELECT ${input} AS v ${fromWhere(c)}`)})`;
  } else {
    s = sql`(SELECT ${f}(${input}) ${fromWhere(c)})`;
  }
  const decimal = summed && v.read && v.type.kind === 'number' ? readDecimal(v.read) : undefined;
  return {
    ...scalar(s, type, fn !== 'sum'),
    rep: v.rep,
    origin: { eventAggregate: c.events && { fn, source: c, input, ...(decimal ? { decimal } : {}) } },
  };
}

function readDecimal(read: DocumentRead): Sql | undefined {
  return dialect().readDecimal(documentOf(read.item), read.path);
}

/** Whether `value` reads the row of `c`'s items (compiler-made text: aliases are never in user text). */
function readsItem(c: CollectionValue, value: Sql): boolean {
  if (c.item.kind === 'profile') return true;
  return new RegExp(`\\b${c.item.alias}\\.`).test(value.text);
}

/**
 * What total()/avg() add up: the numbers as stored, since runtime.KbnAccumulator models
 * SQLite's sum over the stored JSON numbers (integers exact while they fit in 64 bits). A
 * computed number can be ±Infinity (an inner sum that overflowed), which KbnAccumulator skips
 * as it skips anything not a finite number; total() would add it, so it is made missing first.
 */
function sumInput(v: ScalarValue): Sql {
  return v.stored ?? (v.constant !== undefined ? valueSql(v) : dialect().finite(valueSql(v)));
}

function perItem(ctx: CompileContext, c: CollectionValue, arg: ExpressionNode | undefined, env: Env): ScalarValue {
  return arg === undefined ? itemScalar(c) : ctx.scalar(arg, withScope(env, c.item));
}

/** Columns that carry an item through a derived table, under the same names. */
function itemColumns(c: CollectionValue): Sql {
  const a = c.item.kind === 'profile' ? 'p' : c.item.alias;
  return c.item.kind === 'event'
    ? raw(`${a}.id AS id, ${a}.ts AS ts, ${a}.event_type AS event_type, ${a}.payload AS payload`)
    : raw(`${a}.key AS key, ${a}.value AS value`);
}

/**
 * The present values at `path` in the items of `c`, in `c`'s order: a derived table of
 * (value, rk) read like an array of scalars. Datetimes as ISO text, as documents hold them.
 */
export function projectedValues(
  ctx: CompileContext,
  c: CollectionValue,
  path: readonly string[],
  type: PqlType,
): CollectionValue {
  return presentValues(ctx, c, readScalar(c.item, path, type.kind === 'array' ? type.of : ANY_TYPE), type);
}

/** A value as a column of a derived table: datetimes as ISO text (as documents hold them), numbers as stored. */
function column(v: ScalarValue): Sql {
  const w = v.type.kind === 'datetime' ? asIso(v) : v;
  return w.stored ?? valueSql(w);
}

/**
 * The present values of `v`, a value per item of `c`, in `c`'s order: a derived table of
 * (value, rk) read like an array of scalars (`a.f.g`, `a.map(x => …)`).
 */
function presentValues(ctx: CompileContext, c: CollectionValue, v: ScalarValue, type: PqlType): CollectionValue {
  const itemType = type.kind === 'array' ? type.of : ANY_TYPE;
  const value = column(v);
  const d = ctx.alias('d');
  const select = sql`SELECT ${value} AS value, row_number() OVER (ORDER BY ${joinComma(c.order)}) AS rk ${fromWhere(c, [sql`${value} IS NOT NULL`])}`;
  const from = sql`(${select}) AS ${raw(d)}`;
  const where: Sql[] = [];
  return {
    kind: 'collection',
    type,
    itemType,
    from,
    where,
    item: { kind: 'json', alias: d, typed: true },
    order: [raw(`${d}.rk`)],
    present: c.present,
    eventValues: c.events && { events: c, value, distinct: false, from, where },
  };
}

/** The events and per-event value behind `c`, when `c` is still exactly those values (see CollectionValue). */
function eventValuesOf(c: CollectionValue): CollectionValue['eventValues'] {
  const v = c.eventValues;
  return v && v.from === c.from && v.where === c.where ? v : undefined;
}

function derived(ctx: CompileContext, c: CollectionValue, select: Sql): CollectionValue {
  const d = ctx.alias('d');
  return {
    ...c,
    from: sql`(${select}) AS ${raw(d)}`,
    where: [],
    item: c.item.kind === 'json' ? { kind: 'json', alias: d, typed: c.item.typed } : { kind: 'event', alias: d },
    order: [raw(`${d}.rk`)],
    length: undefined,
    events: undefined,
  };
}

export function compileCollectionMethod(ctx: CompileContext, node: MethodCallNode, env: Env): CompiledValue {
  const { name } = node;
  if (name === 'get' || name === 'keys' || name === 'values') return mapMethod(ctx, node, env);
  const c = ctx.collection(node.object, env);
  switch (name) {
    case 'count': {
      const values = eventValuesOf(c);
      const eventAggregate = c.events
        ? { fn: 'count' as const, source: c, input: null }
        : values?.distinct
          ? { fn: 'count' as const, source: values.events, input: values.value, distinct: true }
          : undefined;
      const someItem = someItemOf(c);
      return {
        ...scalar(c.length ?? sql`(SELECT count(*) ${fromWhere(c)})`, NUMBER_TYPE, false),
        origin: { eventAggregate },
        ...(someItem ? { someItem } : {}),
      };
    }
    case 'sum':
    case 'average':
    case 'min':
    case 'max':
      return aggregate(c, name, perItem(ctx, c, node.args[0], env));
    case 'exists':
    case 'forall': {
      const cond = asCondition(ctx.scalar(node.args[0]!, withScope(env, c.item)));
      if (name === 'exists') {
        const exact = existsPredicate(sql`SELECT 1 ${fromWhere(c, [conditionSql(cond)])}`, true);
        // Items of a filtered array that hold for cond too: the filter's containment only goes first.
        const filteredSome = someItemOf(c);
        const some = filteredSome ? { ...filteredSome, exact: false } : someItemContainment(c, cond);
        const correlated = withSomeItem(exact, some);
        return hoistExists(ctx, c, conditionSql(cond), correlated);
      }
      const counter = cond.nullable ? notKnown(cond.sql) : sql`NOT (${cond.sql})`;
      const correlated = predicate(sql`NOT ${existsSql(sql`SELECT 1 ${fromWhere(c, [counter])}`)}`, false);
      return hoistForall(ctx, c, counter, correlated);
    }
    case 'head': {
      const pick = (inner: Sql): Sql => sql`(SELECT ${inner} ${fromWhere(c)} ORDER BY ${joinComma(c.order)} LIMIT 1)`;
      const t = c.itemType;
      if (t.kind === 'object' || t.kind === 'map' || c.item.kind === 'event') {
        const head: ObjectValue = {
          kind: 'object',
          type: t,
          item: c.item,
          path: [],
          wrap: pick,
          // A JSON null as the first element is a missing head, like no element at all.
          present:
            c.item.kind === 'event'
              ? existsSql(sql`SELECT 1 ${fromWhere(c)}`)
              : dialect().orFalse(pick(sql`${raw((c.item as { alias: string }).alias)}.value IS NOT NULL`)),
        };
        return head;
      }
      const item = itemScalar(c);
      return {
        kind: 'scalar',
        sql: pick(valueSql(item)),
        type: item.type,
        nullable: true,
        predicate: false,
        rep: item.rep,
      };
    }
    case 'topN':
    case 'bottomN': {
      const key = perItem(ctx, c, node.args[0], env);
      const n = ctx.scalar(node.args[1]!, env).constant;
      const limit = typeof n === 'number' && n >= 0 ? Math.floor(n) : 0;
      const dir = raw(name === 'topN' ? 'DESC' : 'ASC');
      const k = valueSql(key);
      const byKey = key.type.kind === 'string' || key.rep === 'iso' ? dialect().ordered(k) : k;
      // Items without a key are left out; ties keep source order.
      const rank = sql`row_number() OVER (ORDER BY ${byKey} ${dir}, ${joinComma(c.order)})`;
      return derived(
        ctx,
        c,
        sql`SELECT ${itemColumns(c)}, ${rank} AS rk ${fromWhere(c, [sql`${k} IS NOT NULL`])} ORDER BY rk LIMIT ${param(limit)}`,
      );
    }
    case 'includes': {
      const v = ctx.scalar(node.args[0]!, env);
      if (v.constant === null) return constantPredicate(false);
      const exact = existsPredicate(sql`SELECT 1 ${fromWhere(c, [itemEquals(c, v)])}`, true);
      const whole = c.read && c.read.from === c.from && c.read.where === c.where ? c.read : undefined;
      return withPrefilter(exact, includesPrefilter(whole, v));
    }
    case 'intersects': {
      const b = ctx.collection(node.args[0]!, env);
      const inB = existsSql(sql`SELECT 1 ${fromWhere(b, [sameItems(b, c)])}`);
      return existsPredicate(sql`SELECT 1 ${fromWhere(c, [inB])}`, true);
    }
    case 'subsetOf':
    case 'supersetOf': {
      const b = ctx.collection(node.args[0]!, env);
      const [small, big] = name === 'subsetOf' ? [c, b] : [b, c];
      const inBig = existsSql(sql`SELECT 1 ${fromWhere(big, [sameItems(big, small)])}`);
      const missing = sql`NOT ${existsSql(sql`SELECT 1 ${fromWhere(small, [sql`${valueSql(itemScalar(small))} IS NOT NULL`, sql`NOT ${inBig}`])}`)}`;
      const present = presentAnd(c.present, b.present);
      return predicate(present === null ? missing : sql`(${present} AND ${missing})`, false);
    }
    case 'intersection': {
      const b = ctx.collection(node.args[0]!, env);
      const distinct = distinctItems(ctx, node, env, c);
      const inB = existsSql(sql`SELECT 1 ${fromWhere(b, [sameItems(b, c)])}`);
      return { ...distinct, where: [...distinct.where, inB], present: presentAnd(c.present, b.present) };
    }
    case 'distinct':
      return distinctItems(ctx, node, env, c);
    case 'map':
      // `a.map(x => value)`; a path is a projection by now, and a map of entries is read by mapMethod.
      return presentValues(ctx, c, perItem(ctx, c, node.args[0], env), ctx.typeOf(node));
  }
  throw new Error(`PQL to SQL: unknown array method ${name}()`);
}

/**
 * The first occurrence of each present value, in order. Objects are never equal to one
 * another (runtime.valuesEqual), so an array of objects only loses its nulls.
 */
function distinctItems(ctx: CompileContext, node: MethodCallNode, env: Env, c: CollectionValue): CollectionValue {
  if (c.item.kind === 'event') return c;
  const value = itemScalar(c);
  const where = [...c.where, sql`${valueSql(value)} IS NOT NULL`];
  if (c.itemType.kind !== 'object' && c.itemType.kind !== 'map') {
    // A second copy of the receiver (fresh aliases) to look for an earlier equal item.
    const earlier = ctx.collection(node.object, env);
    const before = sql`${earlier.order[0]!} < ${c.order[0]!}`;
    where.push(sql`NOT ${existsSql(sql`SELECT 1 ${fromWhere(earlier, [before, sameItems(earlier, c)])}`)}`);
  }
  const values = eventValuesOf(c);
  return {
    ...c,
    where,
    length: undefined,
    events: undefined,
    eventValues: values && { ...values, distinct: true, where },
  };
}

function mapMethod(ctx: CompileContext, node: MethodCallNode, env: Env): CompiledValue {
  if (isEntryMap(node.object)) return entryMapMethod(ctx, node, env);
  const m = ctx.compile(node.object, env);
  if (m.kind !== 'object') throw new Error(`PQL to SQL: ${node.name}() needs a map`);
  const type = ctx.typeOf(node);
  const docSql = m.wrap ? m.wrap(documentOf(m.item)) : documentOf(m.item);
  if (node.name === 'get') {
    const key = ctx.scalar(node.args[0]!, env);
    if (typeof key.constant === 'string') return fieldValue(ctx, m.item, [...m.path, key.constant], type, m.wrap);
    if (key.constant === null) return scalar(raw('NULL'), type);
    const j = ctx.alias('j');
    return scalar(dialect().mapGet(docSql, m.path, valueSql(key), j, type), type);
  }
  const j = ctx.alias('j');
  const column = node.name === 'keys' ? 'key' : 'value';
  const { select, isObject } = dialect().mapRows(docSql, m.path, column, j);
  return rankedRows(ctx, select, type, isObject, false);
}

/** The rows of a derived table with `value` and `rk` columns, as a collection in `rk` order. */
function rankedRows(
  ctx: CompileContext,
  select: Sql,
  type: PqlType,
  present: Sql | null,
  typed: boolean,
): CollectionValue {
  const d = ctx.alias('d');
  return {
    kind: 'collection',
    type,
    itemType: type.kind === 'array' ? type.of : ANY_TYPE,
    from: sql`(${select}) AS ${raw(d)}`,
    where: [],
    item: typed ? { kind: 'json', alias: d, typed: true } : { kind: 'json', alias: d },
    order: [raw(`${d}.rk`)],
    present,
  };
}

/**
 * `get` / `keys` / `values` of `a.map(x => mapEntry(key, value))`. The entries are a derived
 * table (k, v, rk) of the items with a key and a value, in `a`'s order; a key that repeats
 * takes its last entry's value and keeps its first place, as the JS engine's map does.
 */
function entryMapMethod(ctx: CompileContext, node: MethodCallNode, env: Env): CompiledValue {
  const mapNode = node.object as MethodCallNode;
  const lambda = mapNode.args[0] as LambdaNode;
  const [keyNode, valueNode] = (lambda.body as CallNode).args as [ExpressionNode, ExpressionNode];
  const mapType = ctx.typeOf(mapNode);
  const valueType = mapType.kind === 'map' ? mapType.of : ANY_TYPE;
  const c = ctx.collection(mapNode.object, env);
  const inner = withVar(withScope(env, c.item), lambda.param, { kind: 'item', item: c.item });
  const k = valueSql(ctx.scalar(keyNode, inner));
  const v = column(ctx.scalar(valueNode, inner));
  const rank = sql`row_number() OVER (ORDER BY ${joinComma(c.order)})`;
  const entries = sql`SELECT ${k} AS k, ${v} AS v, ${rank} AS rk ${fromWhere(c, [sql`${k} IS NOT NULL`, sql`${v} IS NOT NULL`])}`;
  const e = ctx.alias('d');
  const values = (select: Sql, type: PqlType): CollectionValue => rankedRows(ctx, select, type, c.present, true);
  const type = ctx.typeOf(node);
  switch (node.name) {
    case 'get': {
      const key = ctx.scalar(node.args[0]!, env);
      if (key.constant === null) return scalar(raw('NULL'), type);
      const last = sql`(SELECT ${raw(e)}.v FROM (${entries}) AS ${raw(e)} WHERE ${raw(e)}.k = ${valueSql(key)} ORDER BY ${raw(e)}.rk DESC LIMIT 1)`;
      return typedRead(last, valueType);
    }
    case 'keys':
      return values(
        sql`SELECT ${raw(e)}.k AS value, min(${raw(e)}.rk) AS rk FROM (${entries}) AS ${raw(e)} GROUP BY ${raw(e)}.k`,
        type,
      );
    default: {
      const w = ctx.alias('d');
      const ranked = sql`SELECT ${raw(e)}.v AS v, ${raw(e)}.rk AS rk, min(${raw(e)}.rk) OVER (PARTITION BY ${raw(e)}.k) AS fk, max(${raw(e)}.rk) OVER (PARTITION BY ${raw(e)}.k) AS lk FROM (${entries}) AS ${raw(e)}`;
      return values(
        sql`SELECT ${raw(w)}.v AS value, ${raw(w)}.fk AS rk FROM (${ranked}) AS ${raw(w)} WHERE ${raw(w)}.rk = ${raw(w)}.lk`,
        type,
      );
    }
  }
}
