/**
 * What the parts of the JS evaluator share: the per-evaluation context, compiled closures and
 * the compile-time lexical scope. Kept apart from `evaluate.ts` so the method, `occurs` and
 * CHAIN compilers can live in their own files without import cycles.
 */

import type { EventRecord, ProfileDocument } from '../check/types.js';
import type { ChainNode, ExpressionNode, OccursNode } from '../language/ast.js';
import type { OccursBounds } from '../runtime/index.js';

/** State of one evaluation. `scope` and `env` are slot arrays whose indices are fixed at compile time. */
export interface Ctx {
  readonly profile: ProfileDocument;
  readonly now: number;
  /** 00:00 UTC of now's day. */
  readonly today: number;
  /** `scope[d]` is the current item at lexical depth d; `scope[0]` is the profile's attributes. */
  readonly scope: unknown[];
  /** Values of `let` variables, quantifier variables and chain labels, one slot per binding. */
  readonly env: unknown[];
  /** The event items, built on first use. */
  events: readonly EventItem[] | undefined;
}

/** A compiled expression: its value (`undefined` is missing) in a context. */
export type Fn = (ctx: Ctx) => unknown;

/** A binding visible by name, innermost first. Labels are only put in scope inside `WHEN`. */
export interface Binding {
  readonly name: string;
  readonly slot: number;
  readonly kind: 'let' | 'var' | 'label';
  /** For labels: the index of the chain step. */
  readonly step: number;
  readonly next: Binding | null;
}

/** The compile-time scope of a node. */
export interface Scope {
  /** Lexical depth of the current item (0 = profile). */
  readonly depth: number;
  readonly bindings: Binding | null;
  /** Collects the chain steps whose labels a `WHEN` refers to. */
  readonly labelUse?: Set<number>;
}

/**
 * An optional observer of one compilation (explain uses it): it may wrap each node's closure to
 * see the value the evaluator computed, and hears the windows and CHAIN steps the evaluator
 * used. Without one the closures are exactly the uninstrumented ones.
 */
export interface TraceHook {
  /** Called once per node at compile time; returns the closure to run in place of `fn`. */
  node(node: ExpressionNode, scope: Scope, fn: Fn): Fn;
  /** The window an `occurs` was tested against, each time it is computed. */
  window(node: OccursNode, bounds: OccursBounds | null): void;
  /** A CHAIN's search: per step the source indices whose WHAT held, and the indices chosen when it matched. */
  chain(
    node: ChainNode,
    source: readonly unknown[],
    candidates: readonly (readonly number[])[],
    chosen: readonly number[] | null,
  ): void;
}

/** What the method / occurs / chain compilers need from the core compiler. */
export interface Compiler {
  /** The observer of this compilation, if any. */
  readonly trace?: TraceHook;
  compile(node: ExpressionNode, scope: Scope): Fn;
  /** A fresh `env` slot. */
  allocSlot(): number;
  /** The scope of the items of a filter / per-item argument, one level deeper. */
  itemScope(scope: Scope): Scope;
  /** The audience id an `inSegment` argument resolved to. */
  audienceId(ref: string): number | undefined;
}

/**
 * One event as an item of `xEvent`: the `timestamp` and `eventType` columns and the payload.
 * A class rather than `{ ...payload, timestamp, eventType }` so the two columns, read by
 * almost every event condition, are monomorphic property loads; `readField` looks other
 * names up in the payload (the columns win over payload fields of the same name, as in SQL).
 */
const eventListCache = new WeakMap<
  readonly EventRecord[],
  { length: number; last: EventRecord; items: readonly EventItem[] }
>();

export class EventItem implements EventRecord {
  /** The payload once read; until then `json` holds its text (see `payload`). */
  private parsed: Record<string, unknown> | undefined;
  private json: string | undefined;

  constructor(
    readonly timestamp: number,
    readonly eventType: string,
    payload: Record<string, unknown> | string,
    readonly id: number,
  ) {
    if (typeof payload === 'string') {
      this.parsed = undefined;
      this.json = payload;
    } else {
      this.parsed = payload;
      this.json = undefined;
    }
  }

  /**
   * Parsed from its JSON text when first read, if it came as text: most streaming conditions
   * read only the two columns, and a real event's payload (a kilobyte or more of XDM) took
   * longer to parse than the conditions over it take to run.
   */
  get payload(): Record<string, unknown> {
    if (this.parsed === undefined) {
      this.parsed = JSON.parse(this.json as string) as Record<string, unknown>;
      this.json = undefined;
    }
    return this.parsed;
  }

  /** The event as one plain object, e.g. when `evaluateValue` returns events. */
  toJSON(): Record<string, unknown> {
    return { ...this.payload, timestamp: this.timestamp, eventType: this.eventType };
  }
}

/**
 * Whether `a` comes before `b` in a profile's event order, (timestamp, id): the order evaluation
 * reads events in, and the one a store vouching for its lists (eventsInOrder) keeps them in.
 */
export function eventBefore(a: EventRecord, b: EventRecord): boolean {
  return a.timestamp < b.timestamp || (a.timestamp === b.timestamp && a.id < b.id);
}

/**
 * An event record that is its own item, for a store that keeps its records across evaluations
 * (the streaming windows): a list of them in order is evaluated as it is, where plain records
 * are copied into items whenever their list changes (every ingest, for a window).
 */
export function eventRecord(
  id: number,
  timestamp: number,
  eventType: string,
  /** The payload, or its JSON text (an object's), parsed only if an evaluation reads it. */
  payload: Record<string, unknown> | string,
): EventRecord {
  return new EventItem(timestamp, eventType, payload, id);
}

/** On a list eventsInOrder vouched for: its length then (a list appended to since is checked again). */
const IN_ORDER: unique symbol = Symbol('events in order');
type Vouched = { [IN_ORDER]?: number };

/**
 * Vouches that `events` are eventRecord items in (timestamp, id) order, as their maker built them
 * (rows read in that order, a streaming window advanced in it): evaluations take the list as it
 * is. Otherwise the first evaluation of each new list checks every event's order and kind, and a
 * streaming window is a new list at every ingest of its profile. A mark on the list rather than
 * an entry in eventListCache: a WeakMap entry per list per ingest cost more than the check.
 */
export function eventsInOrder<T extends readonly EventRecord[]>(events: T): T {
  (events as Vouched)[IN_ORDER] = events.length;
  return events;
}

/**
 * The profile's events as items in (timestamp, id) order: the list itself when it is made of
 * items already in order (eventRecord), else copies cached per events array since streaming
 * evaluates many definitions against the same profile; a list that grew is copied again.
 */
function eventItems(events: readonly EventRecord[]): readonly EventItem[] {
  const n = events.length;
  if (n === 0) return [];
  if ((events as Vouched)[IN_ORDER] === n) return events as unknown as readonly EventItem[];
  const cached = eventListCache.get(events);
  if (cached !== undefined && cached.length === n && cached.last === events[n - 1]) return cached.items;
  let sorted = true;
  let allItems = events[0] instanceof EventItem;
  for (let i = 1; i < n && sorted; i++) {
    sorted = !eventBefore(events[i]!, events[i - 1]!);
    allItems &&= events[i] instanceof EventItem;
  }
  let items: readonly EventItem[];
  if (sorted && allItems) items = events as readonly EventItem[];
  else {
    const ordered = sorted
      ? events
      : [...events].sort((a, b) => a.timestamp - b.timestamp || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    items = ordered.map((e) => new EventItem(e.timestamp, e.eventType, e.payload, e.id));
  }
  eventListCache.set(events, { length: n, last: events[n - 1]!, items });
  return items;
}

export function ctxEvents(ctx: Ctx): readonly EventItem[] {
  if (ctx.events === undefined) ctx.events = eventItems(ctx.profile.events);
  return ctx.events;
}

/**
 * A field of a document value: own properties of plain objects only (never the prototype, so
 * `constructor` is just a missing field); null, arrays and scalars have no fields (missing).
 */
export function readField(obj: unknown, name: string): unknown {
  if (obj instanceof EventItem) {
    if (name === 'timestamp') return obj.timestamp;
    if (name === 'eventType') return obj.eventType;
    return readPlainField(obj.payload, name);
  }
  return readPlainField(obj, name);
}

function readPlainField(obj: unknown, name: string): unknown {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj) || !Object.hasOwn(obj, name)) return undefined;
  const v = (obj as Record<string, unknown>)[name];
  return v === null ? undefined : v;
}

/** `readField` specialised to one name, for the hot per-event paths. */
export function fieldReader(name: string): (obj: unknown) => unknown {
  if (name === 'timestamp') return (obj) => (obj instanceof EventItem ? obj.timestamp : readPlainField(obj, name));
  if (name === 'eventType') return (obj) => (obj instanceof EventItem ? obj.eventType : readPlainField(obj, name));
  return (obj) => readPlainField(obj instanceof EventItem ? obj.payload : obj, name);
}
