/**
 * `occurs` and `CHAIN` in the JS engine. `occurs` windows come from `runtime.ts`
 * (`occursBounds`), computed once per evaluation when the references only depend on `now`.
 * CHAIN is an existence search with backtracking and failure memoisation.
 */

import type { ChainNode, ExpressionNode, OccursNode, OccursTail } from '../language/ast.js';
import { tailChildren } from '../language/visitor.js';
import {
  isDayValuedRef,
  type OccursBounds,
  occursBounds,
  occursHolds,
  occursShapeOf,
  toInstant,
} from '../runtime/index.js';
import type { Binding, Compiler, Ctx, Fn, Scope } from './context.js';
import { readField } from './context.js';

export type BoundsFn = (ctx: Ctx) => OccursBounds | null;

// A reference that reads nothing but `now` (time words, literals, date(...) of literals):
// its window is the same for every item, so it is computed once per `now`.
function dependsOnNowOnly(node: ExpressionNode): boolean {
  switch (node.kind) {
    case 'Literal':
    case 'TimeWord':
      return true;
    case 'Call':
      return (node.name === 'date' || node.name === 'datetime') && node.args.every(dependsOnNowOnly);
    case 'Negate':
      return dependsOnNowOnly(node.operand);
    case 'Arithmetic':
      return dependsOnNowOnly(node.left) && dependsOnNowOnly(node.right);
    default:
      return false;
  }
}

/** The window of an `occurs` tail as a function of the context. */
function compileTail(c: Compiler, tail: OccursTail, scope: Scope): BoundsFn {
  const shape = occursShapeOf(tail);
  const refs = tailChildren(tail);
  const [ref, to] = refs.map((r) => c.compile(r, scope));
  const refDay = refs[0] !== undefined && isDayValuedRef(refs[0]);
  const toDay = refs[1] !== undefined && isDayValuedRef(refs[1]);
  const compute: BoundsFn = (ctx) =>
    occursBounds(
      shape,
      ref === undefined ? null : toInstant(ref(ctx)),
      refDay,
      ctx.now,
      to === undefined ? null : toInstant(to(ctx)),
      toDay,
    );
  if (!refs.every(dependsOnNowOnly)) return compute;
  let cachedNow = Number.NaN;
  let cached: OccursBounds | null = null;
  return (ctx) => {
    if (ctx.now !== cachedNow) {
      cached = compute(ctx);
      cachedNow = ctx.now;
    }
    return cached;
  };
}

/**
 * A window as a test on instants, specialised for the common shapes. Equivalent to
 * `occursHolds(t, bounds)` for every number t (an unbounded side is an infinite inclusive one).
 */
function windowTest(bounds: OccursBounds | null): (t: number) => boolean {
  if (bounds === null) return () => false;
  if (bounds.negate) return (t) => occursHolds(t, bounds);
  const lo = bounds.lo ?? Number.NEGATIVE_INFINITY;
  const hi = bounds.hi ?? Number.POSITIVE_INFINITY;
  const loIn = bounds.lo === null || bounds.loInclusive;
  const hiIn = bounds.hi === null || bounds.hiInclusive;
  if (loIn && hiIn) return (t) => t >= lo && t <= hi;
  if (loIn) return (t) => t >= lo && t < hi;
  if (hiIn) return (t) => t > lo && t <= hi;
  return (t) => t > lo && t < hi;
}

/** `subject occurs tail`. */
export function compileOccurs(c: Compiler, node: OccursNode, scope: Scope): Fn {
  const subject = c.compile(node.subject, scope);
  const window = compileTail(c, node.tail, scope);
  const { trace } = c;
  const bounds: BoundsFn =
    trace === undefined
      ? window
      : (ctx) => {
          const b = window(ctx);
          trace.window(node, b);
          return b;
        };
  if (!tailChildren(node.tail).every(dependsOnNowOnly)) {
    return (ctx) => {
      const t = toInstant(subject(ctx));
      return t !== undefined && occursHolds(t, bounds(ctx));
    };
  }
  // Runs per event in `xEvent[timestamp occurs …]`: the window is a closure rebuilt only when now changes.
  let cachedNow = Number.NaN;
  let test: (t: number) => boolean = () => false;
  return (ctx) => {
    if (ctx.now !== cachedNow) {
      test = windowTest(bounds(ctx));
      cachedNow = ctx.now;
    }
    const v = subject(ctx);
    if (typeof v === 'number') return test(v);
    const t = toInstant(v);
    return t !== undefined && test(t);
  };
}

interface CompiledStep {
  what: Fn;
  when: BoundsFn | null;
  /** Whether `when` reads an earlier step's label (else it is computed once per evaluation). */
  whenUsesLabels: boolean;
  labelSlot: number;
  /** Steps ≤ this one whose chosen events later steps still depend on (always includes this one). */
  live: number[];
}

/**
 * `CHAIN(source, timeField, [steps])`: distinct events with strictly increasing time (which
 * already makes them distinct), each WHAT true for its event and each WHEN true for its time.
 * Depth-first search; a failed (step, events of the live steps) state is remembered, so the
 * usual chain whose WHENs refer to the previous step or to now is polynomial.
 */
export function compileChain(c: Compiler, node: ChainNode, scope: Scope): Fn {
  const source = c.compile(node.source, scope);
  const itemScope = c.itemScope(scope);
  const depth = itemScope.depth;
  const { timeField } = node;
  let labels: Binding | null = scope.bindings;
  const steps: CompiledStep[] = node.steps.map((step, index) => {
    const what = c.compile(step.what, itemScope);
    const labelUse = new Set<number>();
    const when = step.when === null ? null : compileTail(c, step.when, { ...scope, bindings: labels, labelUse });
    const labelSlot = c.allocSlot();
    labels = { name: step.label, slot: labelSlot, kind: 'label', step: index, next: labels };
    return { what, when, whenUsesLabels: labelUse.size > 0, labelSlot, live: [...labelUse] };
  });
  // live[i]: step i plus every earlier step whose label a WHEN after i reads.
  const uses = steps.map((step) => step.live);
  steps.forEach((step, i) => {
    const live = new Set<number>([i]);
    for (let later = i + 1; later < steps.length; later++) for (const s of uses[later]!) if (s < i) live.add(s);
    step.live = [...live].sort((a, b) => a - b);
  });
  const { trace } = c;
  if (trace === undefined) return (ctx) => chainHolds(ctx, source(ctx), timeField, steps, depth);
  return (ctx) =>
    chainHolds(ctx, source(ctx), timeField, steps, depth, (items, candidates, chosen) =>
      trace.chain(node, items, candidates, chosen),
    );
}

type ChainReport = (source: readonly unknown[], candidates: number[][], chosen: number[] | null) => void;

function chainHolds(
  ctx: Ctx,
  source: unknown,
  timeField: string,
  steps: readonly CompiledStep[],
  depth: number,
  report?: ChainReport,
): boolean {
  if (!Array.isArray(source) || steps.length === 0) return false;
  const n = source.length;
  const times = new Float64Array(n);
  for (let j = 0; j < n; j++) times[j] = toInstant(readField(source[j], timeField)) ?? Number.NaN;
  // Candidates per step: events with a time for which WHAT holds, by time.
  const candidates: number[][] = steps.map((step) => {
    const list: number[] = [];
    for (let j = 0; j < n; j++) {
      if (Number.isNaN(times[j]!)) continue;
      ctx.scope[depth] = source[j];
      if (step.what(ctx) === true) list.push(j);
    }
    return list.sort((a, b) => times[a]! - times[b]! || a - b);
  });
  if (candidates.some((list) => list.length === 0)) {
    report?.(source, candidates, null);
    return false;
  }
  const fixedWhen = steps.map((step) => (step.when !== null && !step.whenUsesLabels ? step.when(ctx) : null));
  const chosen = new Int32Array(steps.length);
  const failed = steps.map(() => new Set<string | number>());

  const search = (i: number, prevTime: number): boolean => {
    const step = steps[i]!;
    const list = candidates[i]!;
    // First candidate strictly later than the previous step (lists are sorted by time).
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (times[list[mid]!]! > prevTime) hi = mid;
      else lo = mid + 1;
    }
    const bounds = fixedWhen[i];
    for (let k = lo; k < list.length; k++) {
      const j = list[k]!;
      const t = times[j]!;
      if (step.when !== null) {
        if (!occursHolds(t, bounds ?? step.when(ctx))) continue;
      }
      chosen[i] = j;
      if (i + 1 === steps.length) return true;
      const key = memoKey(step.live, chosen, i, j);
      if (failed[i]!.has(key)) continue;
      ctx.env[step.labelSlot] = t;
      if (search(i + 1, t)) return true;
      failed[i]!.add(key);
    }
    return false;
  };
  const holds = search(0, Number.NEGATIVE_INFINITY);
  report?.(source, candidates, holds ? [...chosen] : null);
  return holds;
}

function memoKey(live: readonly number[], chosen: Int32Array, i: number, j: number): string | number {
  if (live.length === 1) return j;
  return live.map((s) => (s === i ? j : chosen[s])).join(',');
}
