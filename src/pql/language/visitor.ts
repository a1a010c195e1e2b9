import type { ExpressionNode, OccursTail } from './ast.js';

/** The expressions inside an `occurs` tail (the reference times), in source order. */
export function tailChildren(tail: OccursTail): ExpressionNode[] {
  switch (tail.form) {
    case 'relative':
    case 'beforeAfter':
    case 'on':
      return [tail.ref];
    case 'between':
      return [tail.from, tail.to];
    case 'period':
      return [];
  }
}

/**
 * The direct sub-expressions of `node`, in source order. Bindings, chain steps and `occurs`
 * tails are not expressions themselves: their expressions (binding sources, `WHAT` conditions,
 * tail references) are listed in their place.
 */
export function children(node: ExpressionNode): ExpressionNode[] {
  switch (node.kind) {
    case 'Literal':
    case 'TimeWord':
    case 'Identifier':
    case 'XEvent':
    case 'Parameter':
    case 'ParentField':
      return [];
    case 'ArrayLiteral':
      return node.elements;
    case 'Member':
      return [node.object];
    case 'MethodCall':
      return [node.object, ...node.args];
    case 'Filter':
      return [node.object, node.predicate];
    case 'Call':
      return node.args;
    case 'Logical':
    case 'Compare':
    case 'Arithmetic':
      return [node.left, node.right];
    case 'Not':
    case 'Negate':
      return [node.operand];
    case 'In':
      return [node.value, node.list];
    case 'Like':
      return [node.value];
    case 'Occurs':
      return [node.subject, ...tailChildren(node.tail)];
    case 'Quantified':
      return [...node.bindings.map((binding) => binding.source), node.body];
    case 'Select':
      return [node.binding.source, node.body];
    case 'Aggregate':
      return [node.value, node.binding.source, node.body];
    case 'Let':
      return [node.value, node.body];
    case 'Lambda':
      return [node.body];
    case 'Chain':
      return [
        node.source,
        ...node.steps.flatMap((step) => [
          step.what,
          ...(step.where ? [step.where] : []),
          ...(step.when ? tailChildren(step.when) : []),
        ]),
      ];
  }
}

/**
 * Visits `node` and every sub-expression in pre-order (a node before its children, children
 * in source order). Returning `false` from `visit` skips that node's children. Iterative, so
 * the depth of the tree does not matter.
 */
export function walk(
  node: ExpressionNode,
  visit: (node: ExpressionNode, parent: ExpressionNode | null) => unknown,
): void {
  const stack: [ExpressionNode, ExpressionNode | null][] = [[node, null]];
  for (let entry = stack.pop(); entry; entry = stack.pop()) {
    const [current, parent] = entry;
    if (visit(current, parent) === false) continue;
    const kids = children(current);
    for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i]!, current]);
  }
}
