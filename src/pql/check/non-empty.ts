import type { CompareNode, ExpressionNode, LiteralNode, MethodCallNode, QuantifiedNode } from '../language/ast.js';
import type { PqlType } from './types.js';

const NUMBER: PqlType = { kind: 'number' };
const BOOLEAN: PqlType = { kind: 'boolean' };

/**
 * The tree both engines run, where every array the checker found used as a condition
 * (`xEvent[productListItems[SKU = "PS"]]`, a whole definition `select E from xEvent where …`)
 * reads `array.count() > 0` (a filter `a[c]`: `a.exists(c)`; `select E from s where c`: `exists E from s where c`), the documented meaning "non-empty". Rewriting the tree once keeps
 * the two engines free of a second meaning of arrays; untouched subtrees are shared, so the
 * checker's types still apply to them, and each new or copied node gets its type here. The
 * same pass puts in `replacements`, the forms the checker chose for other shorthands
 * (projection.ts).
 */
export function withNonEmptyConditions(
  ast: ExpressionNode,
  arrays: ReadonlySet<ExpressionNode>,
  types: WeakMap<ExpressionNode, PqlType>,
  replacements: ReadonlyMap<ExpressionNode, ExpressionNode> = new Map(),
): ExpressionNode {
  if (arrays.size === 0 && replacements.size === 0) return ast;
  const rewrite = (value: unknown): unknown => {
    const replacement = replacements.get(value as ExpressionNode);
    if (replacement) {
      // A shorthand used as a condition (`xEvent.map(eventType)` as a whole definition) is non-empty in its run form.
      const replaced = rewrite(replacement) as ExpressionNode;
      return arrays.has(value as ExpressionNode) ? nonEmpty(replaced, types) : replaced;
    }
    if (Array.isArray(value)) {
      let changed = false;
      const out = value.map((item) => {
        const next = rewrite(item);
        if (next !== item) changed = true;
        return next;
      });
      return changed ? out : value;
    }
    if (typeof value !== 'object' || value === null) return value;
    const node = value as Record<string, unknown>;
    let copy: Record<string, unknown> | undefined;
    for (const [key, child] of Object.entries(node)) {
      if (key === 'loc' || typeof child !== 'object' || child === null) continue;
      const next = rewrite(child);
      if (next !== child) {
        copy ??= { ...node };
        copy[key] = next;
      }
    }
    let result = (copy ?? node) as unknown as ExpressionNode;
    if (copy) {
      const type = types.get(node as unknown as ExpressionNode);
      if (type) types.set(result, type);
    }
    if (arrays.has(node as unknown as ExpressionNode)) result = nonEmpty(result, types);
    return result;
  };
  return rewrite(ast) as ExpressionNode;
}

function nonEmpty(array: ExpressionNode, types: WeakMap<ExpressionNode, PqlType>): ExpressionNode {
  const { loc } = array;
  // `a[c]` as a condition is `a.exists(c)`, which both engines stop at the first match.
  if (array.kind === 'Filter') {
    const exists: MethodCallNode = {
      kind: 'MethodCall',
      object: array.object,
      name: 'exists',
      args: [array.predicate],
      loc,
    };
    types.set(exists, BOOLEAN);
    return exists;
  }
  if (array.kind === 'Select') {
    const exists: QuantifiedNode = {
      kind: 'Quantified',
      quantifier: 'exists',
      bindings: [array.binding],
      body: array.body,
      loc,
    };
    types.set(exists, BOOLEAN);
    return exists;
  }
  const count: MethodCallNode = { kind: 'MethodCall', object: array, name: 'count', args: [], loc };
  const zero: LiteralNode = { kind: 'Literal', value: 0, loc };
  const compare: CompareNode = { kind: 'Compare', op: '>', left: count, right: zero, loc };
  types.set(count, NUMBER);
  types.set(zero, NUMBER);
  types.set(compare, BOOLEAN);
  return compare;
}
