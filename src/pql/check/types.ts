import type { ExpressionNode } from '../language/ast.js';

/**
 * Types of PQL values (docs/pql.md §4). `datetime` covers dates (a date is a datetime at 00:00 UTC).
 * `null` is the type of the `null` literal; `any` is used only where the catalogue gives no
 * type (never for a known path) and for empty array literals.
 */
export type PqlType =
  | { kind: 'string' }
  | { kind: 'number' }
  | { kind: 'boolean' }
  | { kind: 'datetime' }
  | { kind: 'null' }
  | { kind: 'any' }
  | { kind: 'array'; of: PqlType }
  | { kind: 'object'; fields: Record<string, PqlType> }
  | { kind: 'map'; of: PqlType };

export type ObjectType = Extract<PqlType, { kind: 'object' }>;

/**
 * The field catalogue the checker resolves paths against: the profile document and the
 * event document (`{ timestamp, eventType, ...payload }`), each a tree of object types.
 */
export interface FieldCatalog {
  profile: ObjectType;
  event: ObjectType;
}

export interface Eligibility {
  batch: true;
  streaming: boolean;
  edge: boolean;
  /** Why streaming/edge are not possible; empty when they are. */
  reasons: string[];
}

/** An audience that `inSegment("<id or name>")` resolved to. */
export interface ResolvedAudience {
  /** Internal integer id of the audience (the `memberships.audience_id`). */
  id: number;
  name: string;
  /**
   * For an external audience: the fields of a member's row other than its identity, typed
   * (`inSegment("…").payload.<field>`). Undefined for audiences without lists.
   */
  payload?: ObjectType;
}

export interface CheckOptions {
  catalog: FieldCatalog;
  /** Finds the audience an `inSegment` argument names (id or name); undefined when none. */
  resolveAudience?: (ref: string) => ResolvedAudience | undefined;
  /** Audience ids that audience `id`'s definition names through inSegment (direct only). */
  audienceDependencies?: (id: number) => number[];
  /** The audience of the definition being checked, so a path back to it is reported as a cycle. */
  selfAudienceId?: number;
}

/** The result of checking: what both engines take. */
export interface CheckedExpression {
  source: string;
  ast: ExpressionNode;
  /** The type of the whole expression (boolean for a segment definition). */
  type: PqlType;
  /** Inferred type of every expression node. */
  types: WeakMap<ExpressionNode, PqlType>;
  /** Profile paths (`person.name.firstName`) and event paths (`xEvent.commerce.order.priceTotal`) read. */
  referencedFields: string[];
  /** inSegment argument as written → audience id. */
  audiences: Map<string, number>;
  /** Distinct audience ids named by inSegment, in order of first use. */
  referencedAudiences: number[];
  eligibility: Eligibility;
  /** Whether the value can change with `now` alone, the data unchanged (eligibility.ts dependsOnNow; found on first read). */
  readonly timeDependent: boolean;
}

/** One experience event as both engines see it. */
export interface EventRecord {
  /** Internal event row id: the tie-break after timestamp. */
  id: number;
  /** Epoch milliseconds, UTC. */
  timestamp: number;
  eventType: string;
  /** The rest of the event document (commerce, productListItems, web, …); datetimes as canonical ISO strings. */
  payload: Record<string, unknown>;
}

/**
 * The membership statuses of a current member of an audience: `inSegment` holds for a profile
 * with one of these (the domain's membership vocabulary takes its current statuses from here).
 */
export const CURRENT_MEMBER_STATUSES = ['REALIZED', 'EXISTING'] as const;

/** One profile as the JS engine sees it. */
export interface ProfileDocument {
  /** The attribute document; datetimes are canonical ISO-8601 strings (`2026-11-28T09:30:00.000Z`). */
  attributes: Record<string, unknown>;
  /** Events sorted by (timestamp, id). */
  events: EventRecord[];
  /** Audience ids the profile is a current member of (CURRENT_MEMBER_STATUSES). */
  memberships: ReadonlySet<number>;
  /**
   * The row of each external audience the profile is a current member of (its fields other than
   * the identity; datetimes as canonical ISO strings). Absent or without an entry: no row.
   */
  payloads?: ReadonlyMap<number, Readonly<Record<string, unknown>>>;
}
