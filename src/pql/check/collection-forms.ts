/**
 * The documentation's collection forms (docs/pql-semantics.md, "Arrays and maps"). Most run as
 * forms both engines already agree on, so each is defined once, here:
 *
 * - `a = b` / `a != b` on two arrays of values: set equality, `a.subsetOf(b) and b.subsetOf(a)`;
 * - `a.map(path)` and `a.map(x => x.path)`: the projected values of `path` over the items, `a.path`;
 * - `a.groupBy(path).keys()`: `a.path.distinct()`; `a.groupBy(path).get("k")`: `a[path = "k"]`;
 * - `a.groupBy(path).values()`, the groups: `.count()` is the number of keys, and a lambda over
 *   each group runs over the keys with the group bound to `a[path = key]` (groupValues).
 *
 * Two are new forms of the engines: `a.map(x => value)` (the present values, in order) and the
 * map `a.map(x => mapEntry(key, value))`, read with `.get("k")`, `.keys()` or `.values()`.
 * A bare `a.groupBy(path)`, its `.values()` or a mapEntry map is only a value to look at
 * (`evaluateProfile`), which the JS engine computes; anywhere else it must be read.
 */
import type {
  CallNode,
  CompareNode,
  ExpressionNode,
  FilterNode,
  IdentifierNode,
  LambdaNode,
  LetNode,
  LiteralNode,
  LogicalNode,
  MethodCallNode,
  NotNode,
} from '../language/ast.js';
import { typeToString } from './catalog.js';
import { ANY, BOOLEAN, type CheckContext, lookup, objectItems, type Scope, unify } from './context.js';
import { checkItemArgument, elementOf, itemArgumentScope, lambdaPath } from './per-item.js';
import type { PqlType } from './types.js';

const composite = (t: PqlType) => t.kind === 'array' || t.kind === 'object' || t.kind === 'map';

/** `a = b` or `a != b` where both sides are arrays: equal as sets (order and repeats aside). */
export function arrayEquality(
  ctx: CheckContext,
  node: CompareNode,
  left: Extract<PqlType, { kind: 'array' }>,
  right: Extract<PqlType, { kind: 'array' }>,
  scope: Scope,
): PqlType {
  if (composite(left.of) || composite(right.of) || !unify(left.of, right.of)) {
    ctx.fail(
      `${node.op} compares two arrays of values of one type as sets, found ${ctx.describe(node.left, left)} ${node.op} ${ctx.describe(node.right, right)}`,
      node.loc,
    );
  }
  const { loc } = node;
  const subset = (a: ExpressionNode, b: ExpressionNode): MethodCallNode => ({
    kind: 'MethodCall',
    object: a,
    name: 'subsetOf',
    args: [b],
    loc,
  });
  const and = (l: ExpressionNode, r: ExpressionNode): LogicalNode => ({
    kind: 'Logical',
    op: 'and',
    left: l,
    right: r,
    loc,
  });
  const same = and(subset(node.left, node.right), subset(node.right, node.left));
  // `!=` needs both arrays, as every comparison with a missing value is false; `x.subsetOf(x)` is "x is present".
  const differ = (): ExpressionNode => {
    const not: NotNode = { kind: 'Not', operand: same, loc };
    return and(and(subset(node.left, node.left), subset(node.right, node.right)), not);
  };
  const replacement = node.op === '=' ? same : differ();
  ctx.replacements.set(node, replacement);
  ctx.check(replacement, scope);
  return BOOLEAN;
}

/** The names of a path relative to each item (`order.price`), or undefined when `node` is not one. */
function itemPath(node: ExpressionNode, scope: Scope): string[] | undefined {
  if (node.kind === 'Identifier') return lookup(scope.env, node.name) ? undefined : [node.name];
  if (node.kind !== 'Member') return undefined;
  const head = itemPath(node.object, scope);
  return head && [...head, node.name];
}

function pathOver(base: ExpressionNode, names: string[], loc: ExpressionNode['loc']): ExpressionNode {
  let node = base;
  for (const name of names) node = { kind: 'Member', object: node, name, loc };
  return node;
}

/** The one argument of `groupBy`, which must be a path of each item (`storeId`, or `o => o.storeId`). */
function pathArgument(ctx: CheckContext, node: MethodCallNode, scope: Scope, example: string): string[] {
  const arg = node.args[0];
  const names =
    node.args.length === 1 && arg ? (arg.kind === 'Lambda' ? lambdaPath(arg) : itemPath(arg, scope)) : undefined;
  if (!names) {
    ctx.fail(
      `${node.name}() takes one argument, the path of a field of each item, e.g. ${example}`,
      arg?.loc ?? node.loc,
    );
  }
  return names;
}

/** Whether `node` is `a.map(x => mapEntry(key, value))`, a map built from the items. */
export function isEntryMap(node: ExpressionNode): boolean {
  const arg = node.kind === 'MethodCall' && node.name === 'map' && node.args.length === 1 ? node.args[0] : undefined;
  return arg?.kind === 'Lambda' && arg.body.kind === 'Call' && arg.body.name === 'mapEntry';
}

/** Whether `node` is `a.groupBy(path).values()`, the groups. */
export function isGroupValues(node: ExpressionNode): boolean {
  return (
    node.kind === 'MethodCall' &&
    node.name === 'values' &&
    node.args.length === 0 &&
    node.object.kind === 'MethodCall' &&
    node.object.name === 'groupBy'
  );
}

/**
 * `a.map(path)` / `a.map(x => x.path)`: `a.path`, the present values of `path` over the items,
 * in order. `a.map(x => value)` (or a per-item expression `a.map(price * quantity)`): the
 * present values of `value` for each item, in order. `a.map(x => mapEntry(key, value))`: a map
 * (mapEntry), which is only a value where `readable` (the receiver of get/keys/values) or at the top.
 */
export function checkMap(ctx: CheckContext, node: MethodCallNode, scope: Scope, readable = false): PqlType {
  const arg = node.args[0];
  if (node.args.length !== 1 || !arg) {
    ctx.fail(
      `map() takes one argument: the path of a field of each item (orders.map(price)) or a lambda (orders.map(o => o.price * o.quantity))`,
      node.loc,
    );
  }
  const names = arg.kind === 'Lambda' ? lambdaPath(arg) : itemPath(arg, scope);
  const receiver = ctx.check(node.object, scope);
  if (names) {
    objectItems(ctx, node.object, receiver, 'map()');
    const projection = pathOver(node.object, names, node.loc);
    ctx.replacements.set(node, projection);
    const type = ctx.check(projection, scope);
    const ref = ctx.refs.get(projection);
    if (ref) ctx.refs.set(node, ref);
    return type;
  }
  const inner = itemArgumentScope(ctx, scope, node.object, receiver, arg, 'map()');
  if (isEntryMap(node)) {
    if (!readable && node !== ctx.root) {
      ctx.fail('a map built with mapEntry is read with .get("key"), .keys() or .values()', node.loc);
    }
    const entry = (arg as LambdaNode).body as CallNode;
    return checkItemArgument(ctx, arg, inner, elementOf(receiver), (_body, s) => checkEntry(ctx, entry, s));
  }
  const value = arg.kind === 'Lambda' ? arg.body : arg;
  const type = checkItemArgument(ctx, arg, inner, elementOf(receiver), (n, s) => ctx.check(n, s));
  if (composite(type)) {
    ctx.fail(
      `map() makes an array of single values, but ${ctx.describe(value, type)} is not one; to build a map, write map(x => mapEntry(key, value))`,
      value.loc,
    );
  }
  return { kind: 'array', of: type.kind === 'null' ? ANY : type };
}

const AGGREGATES_OF_VALUES = new Set(['sum', 'average', 'min', 'max']);

/**
 * `a.map(v).sum()` (average, min, max) as `a.sum(v)`: the same values in the same order, in
 * the form the SQL engine already optimises (no table of values in between; over the events,
 * possibly one grouped pass). Undefined when `node` is not one.
 */
export function aggregateOfMap(node: MethodCallNode): MethodCallNode | undefined {
  const map = node.object;
  if (!AGGREGATES_OF_VALUES.has(node.name) || node.args.length > 0) return undefined;
  if (map.kind !== 'MethodCall' || map.name !== 'map' || map.args.length !== 1 || isEntryMap(map)) return undefined;
  return { kind: 'MethodCall', object: map.object, name: node.name, args: map.args, loc: node.loc };
}

/** `mapEntry(key, value)` as a map lambda's body: a string key and a single value. */
function checkEntry(ctx: CheckContext, node: CallNode, scope: Scope): PqlType {
  if (node.args.length !== 2) {
    ctx.fail(`mapEntry() takes 2 arguments, the key and the value of an entry, got ${node.args.length}`, node.loc);
  }
  const [keyNode, valueNode] = node.args as [ExpressionNode, ExpressionNode];
  const key = ctx.check(keyNode, scope);
  if (key.kind !== 'string' && key.kind !== 'any') {
    ctx.fail(
      `the key of mapEntry() must be a string (the keys of a map are strings), found ${ctx.describe(keyNode, key)}`,
      keyNode.loc,
    );
  }
  const value = ctx.check(valueNode, scope);
  if (composite(value)) {
    ctx.fail(
      `the value of mapEntry() must be a single value (string, number, boolean or datetime), found ${ctx.describe(valueNode, value)}`,
      valueNode.loc,
    );
  }
  const type: PqlType = { kind: 'map', of: value.kind === 'null' ? ANY : value };
  ctx.types.set(node, type);
  return type;
}

/** `a.groupBy(path)`: a map from each string value of `path` to the items that have it. */
export function checkGroupBy(ctx: CheckContext, node: MethodCallNode, scope: Scope): PqlType {
  const names = pathArgument(ctx, node, scope, 'orders.groupBy(storeId)');
  const receiver = ctx.check(node.object, scope);
  const item = objectItems(ctx, node.object, receiver, 'groupBy()');
  const arg = node.args[0]!;
  const inner = itemArgumentScope(ctx, scope, node.object, receiver, arg, 'groupBy()');
  const key = checkItemArgument(ctx, arg, inner, item ?? ANY, (n, s) => ctx.check(n, s));
  if (key.kind !== 'string' && key.kind !== 'any') {
    ctx.fail(
      `groupBy() needs a string field of each item (the keys of a map are strings), but .${names.join('.')} is ${typeToString(key)}`,
      arg.loc,
    );
  }
  const type: PqlType = {
    kind: 'map',
    of: receiver.kind === 'array' ? receiver : { kind: 'array', of: { kind: 'any' } },
  };
  ctx.types.set(node, type);
  return type;
}

const GROUP_VALUES_READS =
  'the groups of a groupBy (.values()) are read with .count() or with a lambda over each group: .map(g => g.count()), .exists(g => …), .forall(g => …), .sum(g => …), .average(g => …), .min(g => …) or .max(g => …)';
const GROUP_VALUE_METHODS = new Set(['map', 'exists', 'forall', 'sum', 'average', 'min', 'max']);

const GROUP_READS = 'read a groupBy with .keys(), .get("key") (a string literal) or .values()';

/** `a.groupBy(path).keys()` / `.get("k")`: read through the grouping without building it; `.values()` at the top. */
export function checkGroupedRead(ctx: CheckContext, node: MethodCallNode, scope: Scope): PqlType {
  const grouping = node.object as MethodCallNode;
  const mapType = checkGroupBy(ctx, grouping, scope);
  const names = pathArgument(ctx, grouping, scope, 'orders.groupBy(storeId)');
  const { loc } = node;
  let replacement: ExpressionNode;
  if (node.name === 'keys' && node.args.length === 0) {
    replacement = distinctValues(grouping.object, names, loc);
  } else if (node.name === 'get' && node.args.length === 1 && node.args[0]?.kind === 'Literal') {
    const key = node.args[0] as LiteralNode;
    if (typeof key.value !== 'string') ctx.fail('get() of a groupBy takes a string key', key.loc);
    replacement = group(grouping.object, names, key, loc);
  } else if (isGroupValues(node)) {
    // The groups themselves are a value to look at, which the JS engine builds.
    if (node !== ctx.root) ctx.fail(GROUP_VALUES_READS, node.loc);
    return { kind: 'array', of: mapType.kind === 'map' ? mapType.of : ANY };
  } else {
    return ctx.fail(`${GROUP_READS}; ${node.name}() of it is not supported`, node.loc);
  }
  ctx.replacements.set(node, replacement);
  return ctx.check(replacement, scope);
}

/** Names no PQL text can write (a name cannot hold a line break), for the variables of a rewrite. */
const GROUPS = '\ngroups';
const KEY = '\nkey';

/**
 * `a.groupBy(p).values().count()`: `a.p.distinct().count()`, one group per key.
 * `a.groupBy(p).values().m(g => body)`: `let G = (a) in (G.p.distinct().m(k => let g = (G[p = k]) in (body)))`,
 * the lambda run over the keys, in order of first appearance, with the group of each bound to
 * its name; `a` is computed once, where it was written.
 */
export function checkGroupValues(ctx: CheckContext, node: MethodCallNode, scope: Scope): PqlType {
  const values = node.object as MethodCallNode;
  const grouping = values.object as MethodCallNode;
  checkGroupBy(ctx, grouping, scope);
  const names = pathArgument(ctx, grouping, scope, 'orders.groupBy(storeId)');
  const { loc } = node;
  const lambda = node.args[0];
  let replacement: ExpressionNode;
  if (node.name === 'count' && node.args.length === 0) {
    replacement = {
      kind: 'MethodCall',
      object: distinctValues(grouping.object, names, loc),
      name: 'count',
      args: [],
      loc,
    };
  } else if (GROUP_VALUE_METHODS.has(node.name) && node.args.length === 1 && lambda?.kind === 'Lambda') {
    const groups: IdentifierNode = { kind: 'Identifier', name: GROUPS, loc };
    const key: IdentifierNode = { kind: 'Identifier', name: KEY, loc };
    const bound: LetNode = {
      kind: 'Let',
      name: lambda.param,
      value: group(groups, names, key, loc),
      body: lambda.body,
      loc,
    };
    const perKey: LambdaNode = { kind: 'Lambda', param: KEY, body: bound, loc: lambda.loc };
    const overKeys: MethodCallNode = {
      kind: 'MethodCall',
      object: distinctValues(groups, names, loc),
      name: node.name,
      args: [perKey],
      loc,
    };
    replacement = { kind: 'Let', name: GROUPS, value: grouping.object, body: overKeys, loc };
  } else {
    return ctx.fail(GROUP_VALUES_READS, node.loc);
  }
  ctx.replacements.set(node, replacement);
  return ctx.check(replacement, scope);
}

/** `a.groupBy(path).values()` as its keys, `a.path.distinct()`, checked: as many as there are groups. */
export function groupKeys(ctx: CheckContext, values: MethodCallNode, scope: Scope): ExpressionNode {
  const grouping = values.object as MethodCallNode;
  const keys = distinctValues(
    grouping.object,
    pathArgument(ctx, grouping, scope, 'orders.groupBy(storeId)'),
    values.loc,
  );
  ctx.check(keys, scope);
  return keys;
}

/** `base.path.distinct()`: the keys of a grouping, in order of first appearance. */
function distinctValues(base: ExpressionNode, names: string[], loc: ExpressionNode['loc']): MethodCallNode {
  return { kind: 'MethodCall', object: pathOver(base, names, loc), name: 'distinct', args: [], loc };
}

/** `base[path = key]`: the group of one key. */
function group(base: ExpressionNode, names: string[], key: ExpressionNode, loc: ExpressionNode['loc']): FilterNode {
  const path = pathOver({ kind: 'Identifier', name: names[0]!, loc }, names.slice(1), loc);
  const predicate: CompareNode = { kind: 'Compare', op: '=', left: path, right: key, loc };
  return { kind: 'Filter', object: base, predicate, loc };
}
