/**
 * What the parts of the SQL compiler share: the per-compilation state (aliases, `now`, node
 * types), the lexical environment, and how items, fields and arrays become SQL. Kept apart
 * from `to-sql.ts` so the collection, time and CHAIN compilers can live in their own files
 * without import cycles (they call back through `ctx.compile`).
 */

import type { CheckedExpression, PqlType } from '../check/types.js';
import type { ExpressionNode } from '../language/ast.js';
import { toCanonicalIso } from '../runtime/index.js';
import { dialect } from './dialect.js';
import { param, raw, Sql, sql } from './fragment.js';
import {
  ANY_TYPE,
  type CollectionValue,
  type CompiledValue,
  DATETIME_TYPE,
  type DatetimeRep,
  type ItemScope,
  PROFILE_ALIAS,
  type ScalarValue,
  valueSql,
} from './values.js';

/**
 * A name in scope: a `let` (re-compiled where used, so every use gets fresh aliases), a
 * quantifier variable, a lambda's item (read as the type of each use), a chain label.
 */
export type Binding =
  | { kind: 'let'; node: ExpressionNode; env: Env }
  | { kind: 'variable'; value: () => CompiledValue }
  | { kind: 'item'; item: ItemScope }
  | { kind: 'label'; time: ScalarValue };

export interface Env {
  /** Item scopes, outermost (the profile) first; the last is the current item. */
  readonly scopes: readonly ItemScope[];
  readonly vars: ReadonlyMap<string, Binding>;
}

export class CompileContext {
  private aliasCount = 0;

  constructor(
    readonly checked: CheckedExpression,
    readonly now: number,
    readonly compile: (node: ExpressionNode, env: Env) => CompiledValue,
    /** When known, event conditions may become uncorrelated sub-queries over this sandbox's events. */
    readonly sandboxId?: number,
    /** The profile ids the statement is limited to, when it is: every events scan gets the bound too. */
    readonly idRange?: IdRange,
  ) {}

  /** A fresh table alias, unique in the whole statement, so nested sub-queries never shadow one another. */
  alias(prefix: string): string {
    this.aliasCount++;
    return `${prefix}${this.aliasCount}`;
  }

  typeOf(node: ExpressionNode): PqlType {
    return this.checked.types.get(node) ?? ANY_TYPE;
  }

  /** Compiles `node` and requires a single value. */
  scalar(node: ExpressionNode, env: Env): ScalarValue {
    return toScalar(this.compile(node, env));
  }

  /** Compiles `node` and requires an array. */
  collection(node: ExpressionNode, env: Env): CollectionValue {
    const v = this.compile(node, env);
    if (v.kind !== 'collection') throw new Error(`PQL to SQL: expected an array at offset ${node.loc.offset}`);
    return v;
  }
}

export function withScope(env: Env, item: ItemScope): Env {
  return { scopes: [...env.scopes, item], vars: env.vars };
}

export function withVar(env: Env, name: string, binding: Binding): Env {
  const vars = new Map(env.vars);
  vars.set(name, binding);
  return { scopes: env.scopes, vars };
}

/** The JSONB document an item's fields are read from. */
export function documentOf(item: ItemScope): Sql {
  switch (item.kind) {
    case 'profile':
      return raw(`${PROFILE_ALIAS}.attributes`);
    case 'event':
      return raw(`${item.alias}.payload`);
    case 'json':
      return raw(`${item.alias}.value`);
  }
}

/** Reads a scalar at `path` below `item` (the event's `timestamp` and `eventType` are columns). */
export function readScalar(
  item: ItemScope,
  path: readonly string[],
  type: PqlType,
  wrap?: (s: Sql) => Sql,
): ScalarValue {
  let inner: Sql;
  let nullable = true;
  let rep: DatetimeRep | undefined = type.kind === 'datetime' ? 'iso' : undefined;
  if (item.kind === 'event' && path.length === 1 && path[0] === 'timestamp') {
    inner = raw(`${item.alias}.ts`);
    nullable = false;
    rep = 'ms';
  } else if (item.kind === 'event' && path.length === 1 && path[0] === 'eventType') {
    inner = raw(`${item.alias}.event_type`);
    nullable = false;
  } else if (item.kind === 'json' && path.length === 0) {
    inner = item.typed ? raw(`${item.alias}.value`) : dialect().readElement(item.alias, type);
  } else {
    inner = dialect().readJson(documentOf(item), path, type);
    if (!wrap) return { ...typedRead(inner, type, nullable, rep), read: { item, path } };
  }
  if (wrap) {
    inner = wrap(inner);
    nullable = true;
  }
  return typedRead(inner, type, nullable, rep);
}

/** A value read from a JSON document as its checked type. */
export function typedRead(inner: Sql, type: PqlType, nullable = true, rep?: DatetimeRep): ScalarValue {
  if (type.kind === 'number') {
    // Compared and computed as doubles, as JS does (sqlite-dialect.ts `number`); summed as stored.
    return { kind: 'scalar', sql: dialect().number(inner), type, nullable, predicate: false, stored: inner };
  }
  return {
    kind: 'scalar',
    sql: inner,
    type,
    nullable,
    predicate: false,
    rep: rep ?? (type.kind === 'datetime' ? 'iso' : undefined),
  };
}

/** A field of an item by its checked type: a scalar, an object not yet read, or an array. */
export function fieldValue(
  ctx: CompileContext,
  item: ItemScope,
  path: readonly string[],
  type: PqlType,
  wrap?: (s: Sql) => Sql,
): CompiledValue {
  if (type.kind === 'object' || type.kind === 'map') return { kind: 'object', type, item, path, wrap };
  if (type.kind === 'array') {
    if (wrap) return jsonArray(ctx, wrap(documentOf(item)), path, type);
    const array = jsonArray(ctx, documentOf(item), path, type);
    return { ...array, read: { item, path, from: array.from, where: array.where } };
  }
  return readScalar(item, path, type, wrap);
}

/** The elements of the JSON array at `path` of `doc` (none when it is absent or null). */
function jsonArray(ctx: CompileContext, doc: Sql, path: readonly string[], type: PqlType): CollectionValue {
  const alias = ctx.alias('j');
  const rows = dialect().arrayRows(doc, path, alias);
  return {
    kind: 'collection',
    type,
    itemType: type.kind === 'array' ? type.of : ANY_TYPE,
    from: rows.from,
    // A JSON null (or any non-container) at the path is one row with a NULL key: not an array.
    where: [raw(`${alias}.key IS NOT NULL`)],
    item: { kind: 'json', alias },
    order: [raw(`${alias}.key`)],
    present: rows.present,
    length: rows.length,
  };
}

/** The profile's events, in (timestamp, id) order. */
export function eventCollection(ctx: CompileContext, type: PqlType): CollectionValue {
  const alias = ctx.alias('e');
  // A condition of the events' own, so it also bounds the uncorrelated pass a hoisted condition becomes.
  const bound = ctx.idRange ? [idRangeSql(alias, 'profile_id', ctx.idRange)] : [];
  return {
    kind: 'collection',
    type,
    itemType: type.kind === 'array' ? type.of : ANY_TYPE,
    from: raw(`events AS ${alias}`),
    where: [raw(`${alias}.profile_id = ${PROFILE_ALIAS}.id`), ...bound],
    item: { kind: 'event', alias },
    order: [raw(`${alias}.ts`), raw(`${alias}.id`)],
    present: null,
    events: { alias, conds: bound },
  };
}

/** A closed range of profile ids. */
export interface IdRange {
  lo: number;
  hi: number;
}

/** `<alias>.<column> BETWEEN lo AND hi`, bound as parameters. */
export function idRangeSql(alias: string, column: string, range: IdRange): Sql {
  return new Sql(`${alias}.${column} BETWEEN ? AND ?`, [range.lo, range.hi]);
}

/** One whole item of a collection, as the value a quantifier variable or `head()` names. */
export function itemValue(item: ItemScope, itemType: PqlType): CompiledValue {
  if (item.kind === 'json' && itemType.kind !== 'object' && itemType.kind !== 'map' && itemType.kind !== 'any') {
    return readScalar(item, [], itemType);
  }
  return { kind: 'object', type: itemType, item, path: [] };
}

/** A single value; objects and arrays are only single values for `isNull` (handled by callers). */
export function toScalar(v: CompiledValue): ScalarValue {
  if (v.kind === 'scalar') return v;
  throw new Error(`PQL to SQL: expected a single value, found ${v.kind === 'object' ? 'an object' : 'an array'}`);
}

/** `FROM … WHERE …` of a collection with extra conditions. */
export function fromWhere(c: CollectionValue, extra: readonly Sql[] = []): Sql {
  const conds = [...c.where, ...extra];
  if (conds.length === 0) return sql`FROM ${c.from}`;
  return sql`FROM ${c.from} WHERE ${new Sql(
    conds.map((s) => s.text).join(' AND '),
    conds.flatMap((s) => s.params),
  )}`;
}

// ---------------------------------------------------------------------------------------------
// datetimes

const MIN_ISO_MS = -62167219200000; // 0000-01-01T00:00:00.000Z
const MAX_ISO_MS = 253402300799999; // 9999-12-31T23:59:59.999Z

/**
 * An instant as canonical ISO text for comparing with stored document datetimes (fixed-width,
 * so text order is time order). Outside years 0000–9999 a sentinel that sorts below ('') or
 * above ('~') every canonical string keeps the comparison right.
 */
export function isoBound(ms: number): string {
  if (ms < MIN_ISO_MS) return '';
  if (ms > MAX_ISO_MS) return '~';
  return toCanonicalIso(ms);
}

/** The value in epoch ms. */
export function asMs(v: ScalarValue): ScalarValue {
  if (v.rep !== 'iso') return v;
  if (typeof v.constant === 'number') return datetimeConstant(v.constant);
  return {
    kind: 'scalar',
    sql: dialect().toMs(valueSql(v)),
    type: v.type,
    nullable: true,
    predicate: false,
    rep: 'ms',
  };
}

/** The value as canonical ISO text. */
export function asIso(v: ScalarValue): ScalarValue {
  if (v.rep === 'iso') return v;
  if (typeof v.constant === 'number') {
    return {
      kind: 'scalar',
      sql: param(isoBound(v.constant)),
      type: v.type,
      nullable: false,
      predicate: false,
      rep: 'iso',
      constant: v.constant,
    };
  }
  return {
    kind: 'scalar',
    sql: dialect().toIso(valueSql(v)),
    type: v.type,
    nullable: true,
    predicate: false,
    rep: 'iso',
  };
}

/** Brings two datetimes to one representation: ISO text when either side is a document field. */
export function unifyDatetimes(a: ScalarValue, b: ScalarValue): [ScalarValue, ScalarValue] {
  if (a.rep === b.rep) return [a, b];
  if (a.rep === 'iso' && typeof b.constant === 'number') return [a, asIso(b)];
  if (b.rep === 'iso' && typeof a.constant === 'number') return [asIso(a), b];
  return [asMs(a), asMs(b)];
}

export function datetimeConstant(ms: number | undefined): ScalarValue {
  if (ms === undefined) {
    return {
      kind: 'scalar',
      sql: raw('NULL'),
      type: DATETIME_TYPE,
      nullable: true,
      predicate: false,
      rep: 'ms',
      constant: null,
    };
  }
  return {
    kind: 'scalar',
    sql: param(ms),
    type: DATETIME_TYPE,
    nullable: false,
    predicate: false,
    rep: 'ms',
    constant: ms,
  };
}
