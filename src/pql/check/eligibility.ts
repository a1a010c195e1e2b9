/**
 * Evaluation methods (docs/pql.md §7). Batch always works; streaming and edge evaluate one profile
 * as its events arrive, so they need every event condition to look back at most 24 hours
 * from now, no `forall` over events, and `inSegment` only on its own.
 */
import type {
  ChainNode,
  ExpressionNode,
  Location,
  OccursTail,
  QuantifiedNode,
  TimeUnit,
  XEventNode,
} from '../language/ast.js';
import { children, walk } from '../language/visitor.js';
import { MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND, MS_PER_WEEK } from '../runtime/time.js';
import { type EventSource, eventSource, type Layer } from './event-source.js';
import { FUNCTIONS } from './functions.js';
import type { Eligibility } from './types.js';

/** What the checker found the expression reads. */
export interface EligibilityFacts {
  referencedFields: readonly string[];
  referencedAudiences: readonly number[];
}

/** The longest look-back streaming and edge evaluation support. */
export const STREAMING_WINDOW_MS = 24 * MS_PER_HOUR;

/**
 * How far back from now a window may reach, in ms: a number (Infinity when nothing bounds it),
 * or 'unanchored' when it is bounded by a date literal or a field instead of by now.
 */
type Back = number | 'unanchored';

// Calendar units at their longest, since a bound must hold whatever now is.
const UNIT_MS: Readonly<Record<TimeUnit, number>> = {
  millisecond: 1,
  second: MS_PER_SECOND,
  minute: MS_PER_MINUTE,
  hour: MS_PER_HOUR,
  day: MS_PER_DAY,
  week: MS_PER_WEEK,
  month: 31 * MS_PER_DAY,
  year: 366 * MS_PER_DAY,
};

const DAY_ALIGNED_UNITS = new Set<TimeUnit>(['millisecond', 'second', 'minute', 'hour', 'day']);

export function eligibility(ast: ExpressionNode, facts: EligibilityFacts): Eligibility {
  const reasons: string[] = [];
  const events = collectEvents(ast);
  const profileFields = facts.referencedFields.filter((f) => !f.startsWith('xEvent.'));
  const segments = facts.referencedAudiences.length > 0;
  if (segments && events.length > 0) {
    reasons.push('inSegment is combined with xEvent conditions; streaming evaluates inSegment only on its own');
  } else if (segments && profileFields.length > 0) {
    reasons.push(
      `inSegment is combined with profile attributes (${profileFields.join(', ')}); streaming evaluates inSegment only on its own`,
    );
  }
  if (events.length > 0) new WindowAnalysis(reasons).visit(ast);
  return { batch: true, streaming: reasons.length === 0, edge: reasons.length === 0, reasons };
}

/**
 * Whether the expression's value can change with the evaluation instant alone, the data
 * unchanged: it names a time word, a calendar period around now (`occurs this month`, also in
 * a CHAIN's WHEN) or a function that reads now (`age`, `currentYear`, …). Streaming sweeps
 * only such audiences when time passes. Audiences named through `inSegment` are read as
 * stored memberships, so theirs does not carry over.
 */
export function dependsOnNow(ast: ExpressionNode): boolean {
  let found = false;
  walk(ast, (node) => {
    if (found) return false;
    const tails =
      node.kind === 'Occurs' ? [node.tail] : node.kind === 'Chain' ? node.steps.flatMap((s) => s.when ?? []) : [];
    found =
      node.kind === 'TimeWord' ||
      (node.kind === 'Call' && FUNCTIONS.get(node.name)?.readsNow === true) ||
      tails.some((tail) => tail.form === 'period');
    return !found;
  });
  return found;
}

function collectEvents(node: ExpressionNode, out: XEventNode[] = []): XEventNode[] {
  if (node.kind === 'XEvent') out.push(node);
  for (const child of children(node)) collectEvents(child, out);
  return out;
}

class WindowAnalysis {
  /** xEvent nodes whose enclosing construct was judged already. */
  private readonly judged = new Set<XEventNode>();

  constructor(private readonly reasons: string[]) {}

  visit(node: ExpressionNode): void {
    switch (node.kind) {
      case 'Filter':
      case 'Select':
        this.consume(eventSource(node), []);
        break;
      case 'MethodCall': {
        const source = eventSource(node.object);
        if (source && node.name === 'forall') this.forall(source, node.loc);
        const extra = node.name === 'exists' && node.args[0] ? [{ condition: node.args[0] }] : [];
        this.consume(source, extra);
        break;
      }
      case 'Quantified':
        this.quantified(node);
        break;
      case 'Aggregate': {
        const source = eventSource(node.binding.source);
        this.consume(source, [{ condition: node.body, variable: node.binding.name }]);
        break;
      }
      case 'Chain':
        this.chain(node);
        break;
      case 'XEvent':
        // Reached on its own: nothing restricts which events count.
        if (!this.judged.has(node)) this.judge(node.loc, 'xEvent condition', Number.POSITIVE_INFINITY);
        break;
    }
    for (const child of children(node)) this.visit(child);
  }

  private consume(source: EventSource | undefined, extra: Layer[]): void {
    if (!source || this.judged.has(source.xEvent)) return;
    this.judged.add(source.xEvent);
    const back = [...source.layers, ...extra].map(layerBack).reduce(tighter, Number.POSITIVE_INFINITY);
    this.judge(source.xEvent.loc, 'xEvent condition', back);
  }

  private forall(source: EventSource, loc: Location): void {
    this.judged.add(source.xEvent);
    this.reasons.push(
      `forall over xEvent at ${at(loc)} needs every event of the profile, so it cannot be evaluated by streaming`,
    );
  }

  private quantified(node: QuantifiedNode): void {
    for (const b of node.bindings) {
      const source = eventSource(b.source);
      if (!source) continue;
      if (node.quantifier === 'forall') this.forall(source, node.loc);
      else this.consume(source, [{ condition: node.body, variable: b.name }]);
    }
  }

  /**
   * Chain steps have strictly increasing times, so each step is bounded by its own WHEN and
   * by every earlier step: the first step's bound is the chain's.
   */
  private chain(node: ChainNode): void {
    const source = eventSource(node.source);
    if (!source || this.judged.has(source.xEvent)) return;
    this.judged.add(source.xEvent);
    const stepBack = new Map<string, Back>();
    let previous: Back = source.layers.map(layerBack).reduce(tighter, Number.POSITIVE_INFINITY);
    let first: Back = previous;
    // WHEN windows bound the chain's time field; only the event timestamp says how recent events are.
    const timed = node.timeField === 'timestamp';
    node.steps.forEach((step, i) => {
      const own =
        step.when && timed ? tailBack(step.when, (ref) => stepBackOf(ref, stepBack)) : Number.POSITIVE_INFINITY;
      const back = tighter(own, previous);
      stepBack.set(step.label, back);
      if (i === 0) first = back;
      previous = back;
    });
    this.judge(node.loc, 'CHAIN', first, 'timestamp in its first step');
  }

  private judge(loc: Location, what: string, back: Back, on = 'timestamp'): void {
    const need = 'streaming needs a window of at most 24 hours back from now';
    if (back === 'unanchored') {
      this.reasons.push(`${what} at ${at(loc)} has a time window on ${on} that is not relative to now (${need})`);
    } else if (back === Number.POSITIVE_INFINITY) {
      this.reasons.push(`${what} at ${at(loc)} has no time window on ${on} (${need})`);
    } else if (back > STREAMING_WINDOW_MS) {
      this.reasons.push(`${what} at ${at(loc)} has a time window of up to ${duration(back)} on ${on} (${need})`);
    }
  }
}

function at(loc: Location): string {
  return `line ${loc.line}, column ${loc.column}`;
}

function duration(ms: number): string {
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (ms % MS_PER_DAY === 0) return plural(ms / MS_PER_DAY, 'day');
  if (ms % MS_PER_HOUR === 0) return plural(ms / MS_PER_HOUR, 'hour');
  if (ms % MS_PER_MINUTE === 0) return plural(ms / MS_PER_MINUTE, 'minute');
  return plural(ms, 'millisecond');
}

/** Both windows hold: the shorter look-back wins. */
function tighter(a: Back, b: Back): Back {
  if (typeof a === 'number' && typeof b === 'number') return Math.min(a, b);
  if (typeof a === 'number' && a !== Number.POSITIVE_INFINITY) return a;
  if (typeof b === 'number' && b !== Number.POSITIVE_INFINITY) return b;
  return 'unanchored';
}

/** Either window holds: the longer look-back wins. */
function looser(a: Back, b: Back): Back {
  if (typeof a === 'number' && typeof b === 'number') return Math.max(a, b);
  if (a === Number.POSITIVE_INFINITY || b === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
  return 'unanchored';
}

function layerBack(layer: Layer): Back {
  return conditionBack(layer.condition, layer.variable);
}

/** The look-back a condition imposes on the item's timestamp (bare `timestamp`, or `E.timestamp`). */
function conditionBack(node: ExpressionNode, variable: string | undefined): Back {
  switch (node.kind) {
    case 'Logical': {
      const l = conditionBack(node.left, variable);
      const r = conditionBack(node.right, variable);
      return node.op === 'and' ? tighter(l, r) : looser(l, r);
    }
    case 'Occurs':
      return isItemTimestamp(node.subject, variable) ? tailBack(node.tail, refBack) : Number.POSITIVE_INFINITY;
    case 'Lambda':
      // Its body reads the item both as bare fields and through the name: each reading bounds it.
      return tighter(conditionBack(node.body, node.param), conditionBack(node.body, undefined));
    default:
      return Number.POSITIVE_INFINITY;
  }
}

function isItemTimestamp(node: ExpressionNode, variable: string | undefined): boolean {
  if (variable === undefined) return node.kind === 'Identifier' && node.name === 'timestamp';
  return (
    node.kind === 'Member' &&
    node.name === 'timestamp' &&
    node.object.kind === 'Identifier' &&
    node.object.name === variable
  );
}

/** How far before now a reference instant can be. */
function refBack(ref: ExpressionNode): Back {
  if (ref.kind !== 'TimeWord') return 'unanchored';
  switch (ref.word) {
    case 'now':
    case 'tomorrow':
      return 0;
    case 'today':
      return MS_PER_DAY;
    case 'yesterday':
      return 2 * MS_PER_DAY;
  }
}

function stepBackOf(ref: ExpressionNode, steps: Map<string, Back>): Back {
  if (ref.kind === 'Identifier') return steps.get(ref.name) ?? 'unanchored';
  return refBack(ref);
}

function isDayValued(ref: ExpressionNode): boolean {
  return ref.kind === 'TimeWord' && ref.word !== 'now';
}

/** The look-back of `t occurs <tail>` (docs/pql-semantics.md "occurs"), at its worst over all nows. */
function tailBack(tail: OccursTail, back: (ref: ExpressionNode) => Back): Back {
  switch (tail.form) {
    case 'period': {
      const u = UNIT_MS[tail.unit];
      return tail.which === 'this' ? u : tail.which === 'last' ? 2 * u : 0;
    }
    case 'between':
      return back(tail.from);
    case 'beforeAfter': {
      if (tail.direction === 'before') return Number.POSITIVE_INFINITY;
      const r = back(tail.ref);
      // After a day-valued R means from the next day on.
      return typeof r === 'number' && isDayValued(tail.ref) ? r - MS_PER_DAY : r;
    }
    case 'on': {
      const r = back(tail.ref);
      // The day containing R starts up to a day before R, unless R is itself a day start.
      return typeof r === 'number' && !isDayValued(tail.ref) ? r + MS_PER_DAY : r;
    }
    case 'relative': {
      const r = back(tail.ref);
      if (typeof r !== 'number') return r;
      const span = tail.amount * UNIT_MS[tail.unit];
      // `= N u` is the calendar period containing R ∓ N u, which starts up to one unit earlier
      // unless R is a day start and the unit divides a day.
      const period = isDayValued(tail.ref) && DAY_ALIGNED_UNITS.has(tail.unit) ? 0 : UNIT_MS[tail.unit];
      const before = tail.direction === 'before';
      switch (tail.op) {
        case '<=':
        case '<':
          return before ? r + span : r;
        case '=':
          return (before ? r + span : r - span) + period;
        case '>=':
        case '>':
          return before ? Number.POSITIVE_INFINITY : r - span;
        case '!=':
          return Number.POSITIVE_INFINITY;
      }
    }
  }
}
