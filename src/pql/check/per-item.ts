/**
 * Per-item arguments (`orders.sum(price)`, `xEvent.exists(eventType = "x")`, `a.filter(…)`,
 * `a.map(…)`): read once per item of the receiver, bare names being fields of the item.
 * Written as a lambda, `o => o.price * o.quantity`, the argument also names the item, which
 * is what makes a per-item argument possible over an array of values (`tags.map(t => t.lower())`),
 * whose items have no fields. The engines run a lambda as its body with the name bound to the
 * current item (docs/pql.md §5, "Lambdas").
 */
import type { ExpressionNode, LambdaNode } from '../language/ast.js';
import { ANY, bind, type CheckContext, itemScope, objectItems, type Scope } from './context.js';
import type { ObjectType, PqlType } from './types.js';

/** The items of an array of values: a bare name in a lambda over them is an unknown field. */
const NO_FIELDS: ObjectType = { kind: 'object', fields: {} };

/** The methods whose argument may be a lambda, for the message where one is not allowed. */
export const LAMBDA_METHODS = 'map, filter, exists, forall, sum, average, min, max, topN, bottomN or groupBy';

/** The element type of an array (`any` for anything else, which the callers have refused or allow). */
export function elementOf(t: PqlType): PqlType {
  return t.kind === 'array' ? t.of : ANY;
}

/**
 * The scope of a per-item argument `arg` over `receiver`: an array of objects for a plain
 * argument (whose bare names need fields), any array for a lambda.
 */
export function itemArgumentScope(
  ctx: CheckContext,
  scope: Scope,
  receiverNode: ExpressionNode,
  receiver: PqlType,
  arg: ExpressionNode | undefined,
  what: string,
): Scope {
  const ref = ctx.refs.get(receiverNode);
  if (arg?.kind !== 'Lambda') return itemScope(scope, objectItems(ctx, receiverNode, receiver, what), ref);
  if (receiver.kind !== 'array' && receiver.kind !== 'any') {
    ctx.fail(`${what} needs an array, but ${ctx.describe(receiverNode, receiver)} is not one`, receiverNode.loc);
  }
  const elem = elementOf(receiver);
  const item = elem.kind === 'object' ? elem : elem.kind === 'any' ? null : NO_FIELDS;
  return itemScope(scope, item, ref);
}

/**
 * Checks a per-item argument in its item scope `inner` (from itemArgumentScope) with `check`;
 * a lambda's body is checked with its name bound to the item (of type `elem`). Returns the
 * argument's type, which is its body's for a lambda.
 */
export function checkItemArgument(
  ctx: CheckContext,
  arg: ExpressionNode,
  inner: Scope,
  elem: PqlType,
  check: (node: ExpressionNode, scope: Scope) => PqlType,
): PqlType {
  if (arg.kind !== 'Lambda') return check(arg, inner);
  const env = bind(inner.env, arg.param, { kind: 'variable', type: elem, ref: inner.item.ref });
  const type = check(arg.body, { ...inner, env });
  ctx.types.set(arg, type);
  return type;
}

/** A lambda anywhere but as a per-item argument. */
export function misplacedLambda(ctx: CheckContext, node: LambdaNode): never {
  return ctx.fail(
    `a lambda (${node.param} => …) can only be the argument a method reads once per item: ${LAMBDA_METHODS}`,
    node.loc,
  );
}

/** `x => x.a.b`: the path `a.b` of each item; undefined when the body is anything else. */
export function lambdaPath(node: LambdaNode): string[] | undefined {
  const names: string[] = [];
  let at = node.body;
  while (at.kind === 'Member') {
    names.unshift(at.name);
    at = at.object;
  }
  return at.kind === 'Identifier' && at.name === node.param && names.length > 0 ? names : undefined;
}
