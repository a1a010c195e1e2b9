/**
 * The documentation's collection forms that both engines run as forms they already agree on
 * (docs/pql-semantics.md, "Arrays and maps"), so each is defined once, here:
 *
 * - `a = b` / `a != b` on two arrays of values: set equality, `a.subsetOf(b) and b.subsetOf(a)`;
 * - `a.map(path)`: the projected values of `path` over the items, `a.path`;
 * - `a.groupBy(path).keys()`: `a.path.distinct()`; `a.groupBy(path).get("k")`: `a[path = "k"]`.
 *
 * A bare `a.groupBy(path)` (a map from each key to its items) is only a value to look at
 * (`evaluateProfile`), which the JS engine computes; anywhere else it must be read with
 * `keys()` or `get("k")`.
 */
import type {
  CompareNode,
  ExpressionNode,
  LiteralNode,
  LogicalNode,
  MethodCallNode,
  NotNode,
} from '../language/ast.js';
import { typeToString } from './catalog.js';
import { BOOLEAN, type CheckContext, itemScope, lookup, objectItems, type Scope, unify } from './context.js';
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

/** The one argument of `map`/`groupBy`, which must be a path of each item. */
function pathArgument(ctx: CheckContext, node: MethodCallNode, scope: Scope, example: string): string[] {
  const arg = node.args[0];
  const names = node.args.length === 1 && arg ? itemPath(arg, scope) : undefined;
  if (!names) {
    ctx.fail(
      `${node.name}() takes one argument, the path of a field of each item, e.g. ${example}`,
      arg?.loc ?? node.loc,
    );
  }
  return names;
}

/** `a.map(path)`: `a.path`, the present values of `path` over the items, in order. */
export function checkMap(ctx: CheckContext, node: MethodCallNode, scope: Scope): PqlType {
  const names = pathArgument(ctx, node, scope, 'orders.map(price)');
  const receiver = ctx.check(node.object, scope);
  objectItems(ctx, node.object, receiver, 'map()');
  const projection = pathOver(node.object, names, node.loc);
  ctx.replacements.set(node, projection);
  const type = ctx.check(projection, scope);
  const ref = ctx.refs.get(projection);
  if (ref) ctx.refs.set(node, ref);
  return type;
}

/** `a.groupBy(path)`: a map from each string value of `path` to the items that have it. */
export function checkGroupBy(ctx: CheckContext, node: MethodCallNode, scope: Scope): PqlType {
  const names = pathArgument(ctx, node, scope, 'orders.groupBy(storeId)');
  const receiver = ctx.check(node.object, scope);
  const item = objectItems(ctx, node.object, receiver, 'groupBy()');
  const key = ctx.check(node.args[0]!, itemScope(scope, item, ctx.refs.get(node.object)));
  if (key.kind !== 'string' && key.kind !== 'any') {
    ctx.fail(
      `groupBy() needs a string field of each item (the keys of a map are strings), but .${names.join('.')} is ${typeToString(key)}`,
      node.args[0]!.loc,
    );
  }
  return { kind: 'map', of: receiver.kind === 'array' ? receiver : { kind: 'array', of: { kind: 'any' } } };
}

/** `a.groupBy(path).keys()` / `.get("k")` / `.values()`: read through the grouping without building it. */
export function checkGroupedRead(ctx: CheckContext, node: MethodCallNode, scope: Scope): PqlType {
  const grouping = node.object as MethodCallNode;
  checkGroupBy(ctx, grouping, scope);
  const names = pathArgument(ctx, grouping, scope, 'orders.groupBy(storeId)');
  const { loc } = node;
  let replacement: ExpressionNode;
  if (node.name === 'keys' && node.args.length === 0) {
    replacement = {
      kind: 'MethodCall',
      object: pathOver(grouping.object, names, loc),
      name: 'distinct',
      args: [],
      loc,
    };
  } else if (node.name === 'get' && node.args.length === 1 && node.args[0]?.kind === 'Literal') {
    const key = node.args[0] as LiteralNode;
    if (typeof key.value !== 'string') ctx.fail('get() of a groupBy takes a string key', key.loc);
    const path = pathOver({ kind: 'Identifier', name: names[0]!, loc }, names.slice(1), loc);
    const predicate: CompareNode = { kind: 'Compare', op: '=', left: path, right: key, loc };
    replacement = { kind: 'Filter', object: grouping.object, predicate, loc };
  } else {
    return ctx.fail(
      `read a groupBy with .keys() or .get("key") (a string literal); ${node.name}() of it is not supported`,
      node.loc,
    );
  }
  ctx.replacements.set(node, replacement);
  return ctx.check(replacement, scope);
}
