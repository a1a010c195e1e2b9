import type { ExpressionNode } from './ast.js';
import { walk } from './visitor.js';

/**
 * The audiences an expression names, as written in its `inSegment("…")` calls, each once in
 * order of first use: what a caller whose lookups are asynchronous (PostgreSQL) resolves before
 * checking, since the checker asks for them synchronously.
 */
export function audienceReferences(ast: ExpressionNode): string[] {
  const refs = new Set<string>();
  walk(ast, (node) => {
    const first = node.kind === 'Call' && node.name === 'inSegment' ? node.args[0] : undefined;
    // The checker resolves the literal's text the same way (check/calls.ts).
    if (first?.kind === 'Literal') refs.add(String(first.value));
  });
  return [...refs];
}
