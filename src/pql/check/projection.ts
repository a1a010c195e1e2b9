import type { CompareNode, ExpressionNode, InNode, LikeNode, MethodCallNode, OccursNode } from '../language/ast.js';
import { tailChildren } from '../language/visitor.js';
import { type CheckContext, lookup, type Projection, type Scope } from './context.js';
import type { PqlType } from './types.js';

/**
 * `xEvent.metrics.commerce.abandons.value > 0`: a path through an array compared with a value
 * means "some item's value" (the documentation's reading of paths through arrays). It runs as
 * `xEvent.exists(metrics.commerce.abandons.value > 0)`, a form both engines already agree on
 * (so do `occurs`, `in`/`notIn` and `like` on such a path); the other operands must not depend
 * on the item (literals, time words, dates), since inside `exists` bare names would read the item.
 */
export function projectedComparison(
  ctx: CheckContext,
  node: CompareNode,
  projection: Projection,
  scope: Scope,
): PqlType {
  return projectedPredicate(ctx, node, node.left, [node.right], (item) => ({ ...node, left: item }), projection, scope);
}

/** `occurs`, `in`/`notIn` or `like` whose subject is a path through an array; undefined when it is not. */
export function projectedSubject(
  ctx: CheckContext,
  node: OccursNode | InNode | LikeNode,
  scope: Scope,
): PqlType | undefined {
  const subject = node.kind === 'Occurs' ? node.subject : node.value;
  if (subject.kind !== 'Member') return undefined;
  ctx.check(subject, scope);
  const projection = ctx.projections.get(subject);
  if (!projection) return undefined;
  switch (node.kind) {
    case 'Occurs': {
      const refs = tailChildren(node.tail);
      return projectedPredicate(ctx, node, subject, refs, (item) => ({ ...node, subject: item }), projection, scope);
    }
    case 'In':
      return projectedPredicate(
        ctx,
        node,
        subject,
        [node.list],
        (item) => ({ ...node, value: item }),
        projection,
        scope,
      );
    case 'Like':
      return projectedPredicate(ctx, node, subject, [], (item) => ({ ...node, value: item }), projection, scope);
  }
}

function projectedPredicate(
  ctx: CheckContext,
  node: ExpressionNode,
  subject: ExpressionNode,
  others: ExpressionNode[],
  withItem: (item: ExpressionNode) => ExpressionNode,
  projection: Projection,
  scope: Scope,
): PqlType {
  const path = projection.names.join('.');
  ctx.openProjections.delete(subject);
  const dependent = others.find((other) => !independentOfItem(other));
  if (dependent) {
    ctx.fail(
      `test .${path} item by item with .exists(...): a path through an array can only be compared with a constant here`,
      dependent.loc,
    );
  }
  if (lookup(scope.env, projection.names[0]!)) {
    ctx.fail(
      `.${path} through an array: ${projection.names[0]} also names a variable here; use .exists(...)`,
      node.loc,
    );
  }
  const { loc } = subject;
  let item: ExpressionNode = { kind: 'Identifier', name: projection.names[0]!, loc };
  for (const name of projection.names.slice(1)) item = { kind: 'Member', object: item, name, loc };
  const exists: MethodCallNode = {
    kind: 'MethodCall',
    object: projection.base,
    name: 'exists',
    args: [withItem(item)],
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
    case 'ArrayLiteral':
      return node.elements.every(independentOfItem);
    case 'Call':
      return (node.name === 'date' || node.name === 'datetime') && node.args.every(independentOfItem);
    default:
      return false;
  }
}
