/**
 * Why a profile does or does not satisfy an expression, told by the JS evaluator itself: the
 * expression is compiled with a `TraceHook` that records what each closure returned, the windows
 * `occurs` tested against and the steps a CHAIN matched, so the verdict and the explanation
 * cannot disagree (an explanation written as a second evaluator eventually does).
 *
 * Only nodes evaluated once per explanation (outside per-item predicates) become explanation
 * nodes; what a per-item predicate picked shows as evidence of the node that ran it (the events a
 * filter kept, the witness of an `exists`). Branches the evaluator skipped (`false and …`) are
 * evaluated afterwards with the same closures, so a "why not" shows every failing clause.
 */

import type { CheckedExpression, PqlType, ProfileDocument } from '../check/types.js';
import type { ChainNode, ExpressionNode, OccursNode } from '../language/ast.js';
import { print } from '../language/printer.js';
import { children, walk } from '../language/visitor.js';
import type { OccursBounds } from '../runtime/index.js';
import { type Ctx, EventItem, type Fn, readField, type Scope, type TraceHook } from './context.js';
import { type EvaluateOptions, evaluateTraced } from './evaluate.js';

/** One evaluated sub-expression and what it read. */
export interface ExplainNode {
  /** The sub-expression, printed canonically. */
  text: string;
  line: number;
  column: number;
  /** Its value as JSON (datetimes as ISO strings, arrays cut to their first items); null when missing. */
  value: unknown;
  /** For boolean sub-expressions: whether it held. */
  passed: boolean | null;
  evidence: Record<string, unknown> | null;
  children: ExplainNode[];
}

export interface Explanation {
  qualifies: boolean;
  root: ExplainNode;
  /** For a "no": the failing clause that would flip the verdict; null for a "yes". */
  nearestMiss: ExplainNode | null;
}

export interface ExplainOptions extends EvaluateOptions {
  /** The stored status of the profile's membership in an audience, for `inSegment` evidence. */
  membershipStatus?: (audienceId: number) => string | undefined;
}

/** How many items (events, array elements, matches) an explanation lists per node. */
export const EXPLAIN_ITEM_LIMIT = 5;

interface Matches {
  count: number;
  items: unknown[];
}

interface ChainTrace {
  source: readonly unknown[];
  candidates: readonly (readonly number[])[];
  chosen: readonly number[] | null;
}

/** Everything one traced evaluation saw. */
class Recorder implements TraceHook {
  readonly values = new Map<ExpressionNode, unknown>();
  readonly closures = new Map<ExpressionNode, Fn>();
  readonly matches = new Map<ExpressionNode, Matches>();
  readonly windows = new Map<OccursNode, OccursBounds | null>();
  readonly chains = new Map<ChainNode, ChainTrace>();
  readonly skipped = new Set<ExpressionNode>();
  ctx: Ctx | undefined;

  constructor(readonly parents: Map<ExpressionNode, ExpressionNode>) {}

  node(node: ExpressionNode, scope: Scope, fn: Fn): Fn {
    if (once(scope)) {
      const traced: Fn = (ctx) => {
        const v = fn(ctx);
        this.values.set(node, v);
        this.ctx = ctx;
        return v;
      };
      this.closures.set(node, traced);
      return traced;
    }
    const parent = this.parents.get(node);
    const binding = scope.bindings;
    // The body of a quantifier, select or aggregate run directly under a once-evaluated node:
    // the bound items it held for (for forall: the ones it failed for) are the evidence.
    if (
      parent !== undefined &&
      binding !== null &&
      scope.depth === 0 &&
      (parent.kind === 'Quantified' || parent.kind === 'Select' || parent.kind === 'Aggregate') &&
      parent.body === node
    ) {
      const wanted = !(parent.kind === 'Quantified' && parent.quantifier === 'forall');
      const { slot } = binding;
      return (ctx) => {
        const v = fn(ctx);
        if ((v === true) === wanted) this.match(parent, ctx.env[slot]);
        return v;
      };
    }
    return fn;
  }

  window(node: OccursNode, bounds: OccursBounds | null): void {
    this.windows.set(node, bounds);
  }

  chain(
    node: ChainNode,
    source: readonly unknown[],
    candidates: readonly (readonly number[])[],
    chosen: readonly number[] | null,
  ) {
    this.chains.set(node, { source, candidates: candidates.map((c) => [...c]), chosen });
  }

  private match(node: ExpressionNode, item: unknown) {
    let m = this.matches.get(node);
    if (m === undefined) {
      m = { count: 0, items: [] };
      this.matches.set(node, m);
    }
    m.count++;
    if (m.items.length < EXPLAIN_ITEM_LIMIT) m.items.push(item);
  }
}

/** Whether a node in this scope runs once per evaluation (not once per item or bound variable). */
function once(scope: Scope): boolean {
  if (scope.depth !== 0) return false;
  for (let b = scope.bindings; b !== null; b = b.next) if (b.kind !== 'let') return false;
  return true;
}

const CONSTANT_KINDS = new Set<ExpressionNode['kind']>(['Literal', 'TimeWord']);

/** A field path (`a.b.c`) reads one value: its prefixes are not shown as steps of their own. */
function isPath(node: ExpressionNode): boolean {
  return node.kind === 'Member' || node.kind === 'Identifier';
}

function isConstant(node: ExpressionNode): boolean {
  if (CONSTANT_KINDS.has(node.kind)) return true;
  return node.kind === 'ArrayLiteral' && node.elements.every(isConstant);
}

/** Explains the verdict of a (boolean) checked expression for one profile at `options.now`. */
export function explain(checked: CheckedExpression, profile: ProfileDocument, options: ExplainOptions): Explanation {
  const parents = new Map<ExpressionNode, ExpressionNode>();
  walk(checked.ast, (node, parent) => {
    if (parent !== null) parents.set(node, parent);
  });
  const recorder = new Recorder(parents);
  const verdict = evaluateTraced(checked, profile, options, recorder);
  completeSkipped(checked.ast, recorder);
  const builder = new NodeBuilder(checked, recorder, options);
  const root = builder.build(checked.ast);
  return {
    qualifies: verdict === true,
    root,
    nearestMiss: verdict === true ? null : builder.nearestMiss(checked.ast),
  };
}

/** Evaluates the operands `and`/`or` skipped, with the evaluator's own closures, so every clause has a value. */
function completeSkipped(node: ExpressionNode, r: Recorder): void {
  if (!r.values.has(node)) return;
  if (node.kind === 'Logical' && r.ctx !== undefined) {
    for (const operand of [node.left, node.right]) {
      const fn = r.closures.get(operand);
      if (fn !== undefined && !r.values.has(operand)) {
        fn(r.ctx);
        r.skipped.add(operand);
      }
    }
  }
  for (const child of children(node)) completeSkipped(child, r);
}

class NodeBuilder {
  private readonly built = new Map<ExpressionNode, ExplainNode>();

  constructor(
    private readonly checked: CheckedExpression,
    private readonly r: Recorder,
    private readonly options: ExplainOptions,
  ) {}

  private type(node: ExpressionNode): PqlType | undefined {
    return this.checked.types.get(node);
  }

  private passed(node: ExpressionNode): boolean | null {
    if (this.type(node)?.kind !== 'boolean' || !this.r.values.has(node)) return null;
    return this.r.values.get(node) === true;
  }

  build(node: ExpressionNode): ExplainNode {
    const evaluated = this.r.values.has(node);
    const value = this.r.values.get(node);
    const kids = evaluated
      ? children(node)
          .filter((c) => this.r.closures.has(c) && !isConstant(c) && !(isPath(node) && isPath(c)))
          .map((c) => this.build(c))
      : [];
    let evidence = evaluated ? this.evidence(node, value) : { evaluated: false };
    if (this.r.skipped.has(node)) evidence = { ...evidence, shortCircuited: true };
    const out: ExplainNode = {
      text: print(node),
      line: node.loc.line,
      column: node.loc.column,
      value: this.json(value, this.type(node)),
      passed: this.passed(node),
      evidence,
      children: kids,
    };
    this.built.set(node, out);
    return out;
  }

  /**
   * The failing clause that would flip a "no": under an `and`, the smallest failing operand
   * (followed down); an `or` is itself the miss, with each of its (failing) branches under it.
   */
  nearestMiss(node: ExpressionNode): ExplainNode | null {
    if (this.passed(node) !== false) return null;
    if (node.kind === 'Logical' && node.op === 'and') {
      const failing = [node.left, node.right].filter((c) => this.passed(c) === false);
      failing.sort((a, b) => size(a) - size(b));
      const pick = failing[0];
      if (pick !== undefined) return this.nearestMiss(pick) ?? this.built.get(pick) ?? null;
    }
    if (node.kind === 'Let') return this.nearestMiss(node.body) ?? this.built.get(node) ?? null;
    return this.built.get(node) ?? null;
  }

  private evidence(node: ExpressionNode, value: unknown): Record<string, unknown> | null {
    switch (node.kind) {
      case 'Identifier':
      case 'Member':
      case 'ParentField':
        return { field: print(node), value: this.json(value, this.type(node)), missing: value === undefined };
      case 'Compare':
        return this.operands(node, [node.left, node.right], { op: node.op });
      case 'In':
        return this.operands(node, [node.value, node.list], { op: node.negated ? 'not in' : 'in' });
      case 'Like':
        return this.operands(node, [node.value], { pattern: node.pattern });
      case 'Occurs':
        return {
          instant: this.json(this.r.values.get(node.subject), { kind: 'datetime' }),
          window: this.window(this.r.windows.get(node)),
          now: new Date(this.options.now).toISOString(),
        };
      case 'Filter': {
        // What a method reads from each kept item (`.sum(commerce.order.priceTotal)`) is shown too.
        const parent = this.r.parents.get(node);
        const read = parent?.kind === 'MethodCall' && parent.object === node ? parent.args : [];
        return this.itemsEvidence(Array.isArray(value) ? value : [], node.predicate, read);
      }
      case 'Select':
        return this.itemsEvidence(Array.isArray(value) ? value : [], node.body);
      case 'Aggregate': {
        const m = this.r.matches.get(node) ?? { count: 0, items: [] };
        return { matched: m.count, items: m.items.map((i) => this.item(i, node.body)), ...this.windowsIn(node.body) };
      }
      case 'Quantified': {
        const m = this.r.matches.get(node);
        const key = node.quantifier === 'forall' ? 'counterexample' : 'witness';
        return { [key]: m === undefined ? null : this.item(m.items[0], node.body), ...this.windowsIn(node.body) };
      }
      case 'Call':
        if (node.name === 'inSegment') return this.membership(node);
        return null;
      case 'Chain':
        return this.chainEvidence(node);
      case 'XEvent':
        return { events: Array.isArray(value) ? value.length : 0 };
      default:
        return null;
    }
  }

  private operands(node: ExpressionNode, operands: ExpressionNode[], extra: Record<string, unknown>) {
    const values = operands.map((o) => (this.r.values.has(o) ? this.r.values.get(o) : constantOf(o)));
    const out: Record<string, unknown> = { ...extra };
    const names = node.kind === 'Compare' ? ['left', 'right'] : ['value', 'list'];
    operands.forEach((o, i) => {
      out[names[i]!] = this.json(values[i], this.type(o));
    });
    const missing = operands.filter((o, i) => values[i] === undefined && !isConstant(o)).map((o) => print(o));
    if (missing.length > 0) out.missing = missing;
    return out;
  }

  private itemsEvidence(items: readonly unknown[], predicate: ExpressionNode, read: readonly ExpressionNode[] = []) {
    return {
      matched: items.length,
      items: items.slice(0, EXPLAIN_ITEM_LIMIT).map((i) => this.item(i, predicate, read)),
      ...this.windowsIn(predicate),
    };
  }

  /** The windows of the `occurs` tests inside a per-item predicate, at `now`. */
  private windowsIn(predicate: ExpressionNode): Record<string, unknown> {
    const windows: unknown[] = [];
    walk(predicate, (n) => {
      if (n.kind === 'Occurs' && this.r.windows.has(n)) {
        windows.push({ test: print(n), ...this.window(this.r.windows.get(n)) });
      }
    });
    return windows.length > 0 ? { windows } : {};
  }

  /** An item as evidence: for events their time, type and the fields the predicate tested; others as JSON. */
  private item(item: unknown, predicate: ExpressionNode, read: readonly ExpressionNode[] = []): unknown {
    if (!(item instanceof EventItem)) return this.json(item, undefined);
    const out: Record<string, unknown> = {
      timestamp: new Date(item.timestamp).toISOString(),
      eventType: item.eventType,
    };
    for (const path of [predicate, ...read].flatMap(testedPaths)) {
      if (path === 'timestamp' || path === 'eventType') continue;
      let v: unknown = item;
      for (const part of path.split('.')) v = readField(v, part);
      if (v !== undefined) out[path] = this.json(v, undefined);
    }
    return out;
  }

  private membership(node: ExpressionNode & { kind: 'Call' }) {
    const ref = node.args[0];
    const name = ref?.kind === 'Literal' ? ref.value : this.r.values.get(ref!);
    const audienceId = typeof name === 'string' ? this.checked.audiences.get(name) : undefined;
    return {
      audience: name ?? null,
      audienceId: audienceId ?? null,
      member: this.r.values.get(node) === true,
      storedStatus: audienceId === undefined ? null : (this.options.membershipStatus?.(audienceId) ?? null),
    };
  }

  private chainEvidence(node: ChainNode) {
    const trace = this.r.chains.get(node);
    if (trace === undefined) return { steps: node.steps.map((s) => ({ label: s.label, matched: 0, events: [] })) };
    const { source, candidates, chosen } = trace;
    return {
      steps: node.steps.map((step, i) => {
        const list = candidates[i] ?? [];
        return {
          label: step.label,
          matched: list.length,
          events: list.slice(0, EXPLAIN_ITEM_LIMIT).map((j) => this.item(source[j], step.what)),
        };
      }),
      chosen:
        chosen === null
          ? null
          : node.steps.map((step, i) => ({ label: step.label, event: this.item(source[chosen[i]!], step.what) })),
    };
  }

  private window(bounds: OccursBounds | null | undefined): Record<string, unknown> | null {
    if (bounds == null) return null;
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    return {
      from: iso(bounds.lo),
      fromInclusive: bounds.lo === null ? null : bounds.loInclusive,
      to: iso(bounds.hi),
      toInclusive: bounds.hi === null ? null : bounds.hiInclusive,
      outside: bounds.negate,
    };
  }

  /** A value as JSON: datetimes as ISO strings, events as their evidence, arrays cut to the first items. */
  private json(value: unknown, type: PqlType | undefined): unknown {
    if (value === undefined || value === null) return null;
    if (type?.kind === 'datetime' && typeof value === 'number') return isoOrNull(value);
    if (value instanceof EventItem) return { timestamp: isoOrNull(value.timestamp), eventType: value.eventType };
    if (Array.isArray(value)) {
      const of = type?.kind === 'array' ? type.of : undefined;
      const head = value.slice(0, EXPLAIN_ITEM_LIMIT).map((v) => this.json(v, of));
      return value.length > EXPLAIN_ITEM_LIMIT ? { count: value.length, first: head } : head;
    }
    if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
    if (value instanceof Map || value instanceof Set) return [...value];
    return value;
  }
}

function isoOrNull(t: number): string | null {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function constantOf(node: ExpressionNode): unknown {
  if (node.kind === 'Literal') return node.value ?? undefined;
  if (node.kind === 'ArrayLiteral') return node.elements.map(constantOf);
  return undefined;
}

function size(node: ExpressionNode): number {
  let n = 0;
  walk(node, () => {
    n++;
  });
  return n;
}

/** Field paths a per-item predicate reads: `commerce.order.priceTotal`, or `e.x.y` without its variable. */
function testedPaths(predicate: ExpressionNode): string[] {
  const paths = new Set<string>();
  walk(predicate, (node, parent) => {
    if (node.kind !== 'Member' && node.kind !== 'Identifier') return;
    if (parent?.kind === 'Member' && parent.object === node) return;
    const parts: string[] = [];
    let n: ExpressionNode = node;
    while (n.kind === 'Member') {
      parts.unshift(n.name);
      n = n.object;
    }
    if (n.kind !== 'Identifier') return;
    // A bare identifier is a field of the item; `e.x` under a binding reads field x of item e.
    if (parts.length === 0) paths.add(n.name);
    else paths.add(parts.join('.')).add([n.name, ...parts].join('.'));
    return false;
  });
  return [...paths];
}
