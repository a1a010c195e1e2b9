import type { CompareNode, ExpressionNode, MethodCallNode } from '../language/ast.js';
import { type CheckContext, lookup, type Projection, type Scope } from './context.js';
import type { PqlType } from './types.js';

/**
 * `xEvent.metrics.commerce.abandons.value > 0`: a path through an array compared with a value
 * means "some item's value" (the documentation's reading of paths through arrays). It runs as
 * `xEvent.exists(metrics.commerce.abandons.value > 0)`, a form both engines already agree on;
 * the other operand must not depend on the item (a literal, a time word, a date), since inside
 * `exists` bare names would read the item.
 */
export function projectedComparison(
  ctx: CheckContext,
  node: CompareNode,
  projection: Projection,
  scope: Scope,
): PqlType {
  const path = projection.names.join('.');
  ctx.openProjections.delete(node.left);
  if (!independentOfItem(node.right)) {
    ctx.fail(
      `compare .${path} item by item with .exists(...): a path through an array can only be compared with a constant here`,
      node.right.loc,
    );
  }
  if (lookup(scope.env, projection.names[0]!)) {
    ctx.fail(
      `.${path} through an array: ${projection.names[0]} also names a variable here; use .exists(...)`,
      node.loc,
    );
  }
  const { loc } = node.left;
  let item: ExpressionNode = { kind: 'Identifier', name: projection.names[0]!, loc };
  for (const name of projection.names.slice(1)) item = { kind: 'Member', object: item, name, loc };
  const compare: CompareNode = { kind: 'Compare', op: node.op, left: item, right: node.right, loc: node.loc };
  const exists: MethodCallNode = {
    kind: 'MethodCall',
    object: projection.base,
    name: 'exists',
    args: [compare],
    loc: node.loc,
  };
  ctx.replacements.set(node, exists);
  return ctx.check(exists, scope);
}

function independentOfItem(node: ExpressionNode): boolean {
  switch (node.kind) {
    case 'Literal':
    case 'TimeWord':
      return true;
    case 'Negate':
      return independentOfItem(node.operand);
    case 'Call':
      return (node.name === 'date' || node.name === 'datetime') && node.args.every(independentOfItem);
    default:
      return false;
  }
}
