/**
 * Which experience events an expression can read, by event type: streaming uses it to evaluate,
 * for an ingest, only the definitions whose value the new events can change. The answer must
 * never be too narrow (a definition left unevaluated would keep a wrong membership), so
 * anything this analysis does not recognise counts as reading events of every type.
 */
import type { ExpressionNode, XEventNode } from '../language/ast.js';
import { children, walk } from '../language/visitor.js';
import { eventSource, type Layer } from './event-source.js';
import type { CheckedExpression } from './types.js';

export interface EventReads {
  /**
   * The event types whose events can change the value; `null`: events of any type. Empty: the
   * expression reads no events at all.
   */
  eventTypes: ReadonlySet<string> | null;
}

/** The event types `checked` reads (see EventReads). */
export function eventReads(checked: CheckedExpression): EventReads {
  return { eventTypes: eventTypesRead(checked.ast) };
}

/** Every type, written as null so callers cannot mistake it for a list. */
type Types = Set<string> | null;

export function eventTypesRead(ast: ExpressionNode): Types {
  // A variable named eventType would make a bare `eventType` in a filter mean something else.
  let shadowed = false;
  walk(ast, (node) => {
    if (node.kind === 'Let') shadowed ||= node.name === 'eventType';
    if (node.kind === 'Quantified') shadowed ||= node.bindings.some((b) => b.name === 'eventType');
    if (node.kind === 'Select' || node.kind === 'Aggregate') shadowed ||= node.binding.name === 'eventType';
    if (node.kind === 'Lambda') shadowed ||= node.param === 'eventType';
    return !shadowed;
  });
  const restricted = new Map<XEventNode, Types>();
  const all = new Set<XEventNode>();
  visit(ast, restricted, all, shadowed);
  const out = new Set<string>();
  for (const xEvent of all) {
    const types = restricted.get(xEvent);
    if (types === undefined || types === null) return null;
    for (const t of types) out.add(t);
  }
  return out;
}

/**
 * Pre-order, so the outermost construct over an `xEvent` (the one with the most conditions)
 * judges it first. Only constructs whose value depends on the matching items alone restrict:
 * filters, `select`, `exists` (method and quantifier), aggregates and a CHAIN's source.
 */
function visit(node: ExpressionNode, restricted: Map<XEventNode, Types>, all: Set<XEventNode>, shadowed: boolean) {
  const judge = (source: ReturnType<typeof eventSource>, extra: Layer[]) => {
    if (!source || restricted.has(source.xEvent)) return;
    const layers = shadowed ? [] : [...source.layers, ...extra];
    restricted.set(source.xEvent, layers.map(layerTypes).reduce(intersect, null));
  };
  switch (node.kind) {
    case 'Filter':
    case 'Select':
      judge(eventSource(node), []);
      break;
    case 'MethodCall': {
      const source = eventSource(node.object);
      // forall is not restricted by its condition: an event failing it changes the answer.
      if (node.name === 'exists' && node.args[0]) judge(source, [{ condition: node.args[0] }]);
      else if (node.name !== 'forall') judge(source, []);
      break;
    }
    case 'Quantified':
      if (node.quantifier === 'exists') {
        for (const b of node.bindings) judge(eventSource(b.source), [{ condition: node.body, variable: b.name }]);
      }
      break;
    case 'Aggregate':
      judge(eventSource(node.binding.source), [{ condition: node.body, variable: node.binding.name }]);
      break;
    case 'Chain':
      judge(eventSource(node.source), []);
      break;
    case 'XEvent':
      all.add(node);
      break;
  }
  for (const child of children(node)) visit(child, restricted, all, shadowed);
}

/** Both hold: an unrestricted side leaves the other's restriction. */
function intersect(a: Types, b: Types): Types {
  if (a === null) return b;
  if (b === null) return a;
  return new Set([...a].filter((t) => b.has(t)));
}

function union(a: Types, b: Types): Types {
  if (a === null || b === null) return null;
  return new Set([...a, ...b]);
}

function layerTypes(layer: Layer): Types {
  return conditionTypes(layer.condition, layer.variable);
}

/** The event types an item must have for `node` to hold; null when it does not say. */
function conditionTypes(node: ExpressionNode, variable: string | undefined): Types {
  switch (node.kind) {
    case 'Logical': {
      const l = conditionTypes(node.left, variable);
      const r = conditionTypes(node.right, variable);
      return node.op === 'and' ? intersect(l, r) : union(l, r);
    }
    case 'Compare': {
      if (node.op !== '=') return null;
      const value = isItemEventType(node.left, variable)
        ? stringLiteral(node.right)
        : isItemEventType(node.right, variable)
          ? stringLiteral(node.left)
          : undefined;
      return value === undefined ? null : new Set([value]);
    }
    case 'In': {
      if (node.negated || !isItemEventType(node.value, variable) || node.list.kind !== 'ArrayLiteral') return null;
      const values = node.list.elements.map(stringLiteral);
      return values.every((v) => v !== undefined) ? new Set(values as string[]) : null;
    }
    case 'Lambda':
      // Its body reads the item both as bare fields and through the name: each reading restricts it.
      return intersect(conditionTypes(node.body, node.param), conditionTypes(node.body, undefined));
    default:
      return null;
  }
}

function isItemEventType(node: ExpressionNode, variable: string | undefined): boolean {
  if (variable === undefined) return node.kind === 'Identifier' && node.name === 'eventType';
  return (
    node.kind === 'Member' &&
    node.name === 'eventType' &&
    node.object.kind === 'Identifier' &&
    node.object.name === variable
  );
}

function stringLiteral(node: ExpressionNode): string | undefined {
  return node.kind === 'Literal' && typeof node.value === 'string' ? node.value : undefined;
}
