/**
 * Where an event collection comes from: `xEvent` under filters and `select`s, with each layer's
 * condition. Both the eligibility check (which windows and conditions bound a streaming
 * definition) and the read analysis (which event types a definition reads) start from it.
 */
import type { ExpressionNode, XEventNode } from '../language/ast.js';

/** A restriction on the items of an event array: a condition, naming the item `variable` or (bare fields) not. */
export interface Layer {
  condition: ExpressionNode;
  variable?: string;
}

export interface EventSource {
  xEvent: XEventNode;
  layers: Layer[];
}

/** `xEvent`, possibly under filters and `select`s, with those conditions (outermost first). */
export function eventSource(node: ExpressionNode): EventSource | undefined {
  const layers: Layer[] = [];
  let at = node;
  for (;;) {
    if (at.kind === 'Filter') {
      layers.push({ condition: at.predicate });
      at = at.object;
    } else if (at.kind === 'Select') {
      layers.push({ condition: at.body, variable: at.binding.name });
      at = at.binding.source;
    } else {
      return at.kind === 'XEvent' ? { xEvent: at, layers } : undefined;
    }
  }
}
