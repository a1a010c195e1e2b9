/**
 * Audiences a profile must be a current member of for an expression to hold: those named by an
 * `inSegment` that is one of the expression's top-level conjuncts. A dry run evaluates a
 * dependent only on the simulated members of such an audience, since no one else can qualify.
 */
import type { ExpressionNode } from '../language/ast.js';
import type { CheckedExpression } from './types.js';

export function requiredAudiences(checked: CheckedExpression): number[] {
  const out = new Set<number>();
  const visit = (node: ExpressionNode): void => {
    if (node.kind === 'Logical' && node.op === 'and') {
      visit(node.left);
      visit(node.right);
    } else if (node.kind === 'Call' && node.name === 'inSegment' && node.args.length === 1) {
      const arg = node.args[0]!;
      if (arg.kind === 'Literal' && typeof arg.value === 'string') {
        const id = checked.audiences.get(arg.value);
        if (id !== undefined) out.add(id);
      }
    }
  };
  visit(checked.ast);
  return [...out];
}
