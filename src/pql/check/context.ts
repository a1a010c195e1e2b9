import type { ExpressionNode, Location } from '../language/ast.js';
import { locationAt, PqlError } from '../language/errors.js';
import { typeToString } from './catalog.js';
import type { CheckOptions, ObjectType, PqlType, ResolvedAudience } from './types.js';

/** Where a value sits in the schema: the profile or the event document, and the path below it. */
export interface FieldRef {
  root: 'profile' | 'event';
  path: readonly string[];
}

/**
 * The item bare field names resolve against: the profile at the top, the element inside a
 * filter or per-item argument. `type` null means an item of unknown shape (an `any` array):
 * every field is `any` there.
 */
export interface ItemScope {
  type: ObjectType | null;
  ref: FieldRef | null;
  parent: ItemScope | null;
}

export interface Binding {
  kind: 'let' | 'variable' | 'label';
  type: PqlType;
  ref: FieldRef | null;
  /** For chain labels: the step's position, since a WHEN may only name earlier steps. */
  stepIndex?: number;
}

/** Lexical bindings, innermost first. */
export interface Env {
  name: string;
  binding: Binding;
  next: Env | null;
}

export interface Scope {
  item: ItemScope;
  env: Env | null;
  /** Set while checking the WHEN of chain step `whenStep`. */
  whenStep?: number;
}

/** `base.a.b` where base is an array of objects: the projected values of `a.b` over its items. */
export interface Projection {
  base: ExpressionNode;
  names: string[];
}

export const STRING: PqlType = { kind: 'string' };
export const NUMBER: PqlType = { kind: 'number' };
export const BOOLEAN: PqlType = { kind: 'boolean' };
export const DATETIME: PqlType = { kind: 'datetime' };
export const NULL: PqlType = { kind: 'null' };
export const ANY: PqlType = { kind: 'any' };

export function lookup(env: Env | null, name: string): Binding | undefined {
  for (let e = env; e; e = e.next) if (e.name === name) return e.binding;
  return undefined;
}

export function bind(env: Env | null, name: string, binding: Binding): Env {
  return { name, binding, next: env };
}

export function ownField(obj: ObjectType, name: string): PqlType | undefined {
  return Object.hasOwn(obj.fields, name) ? obj.fields[name] : undefined;
}

/** Whether `t` is of `kind`, or may be at run time (`any`, the `null` literal). */
export function fits(t: PqlType, kind: PqlType['kind']): boolean {
  return t.kind === kind || t.kind === 'any' || t.kind === 'null';
}

export function refPath(ref: FieldRef): string {
  return ref.root === 'event' ? ['xEvent', ...ref.path].join('.') : ref.path.join('.');
}

export function childRef(ref: FieldRef | null, name: string): FieldRef | null {
  return ref ? { root: ref.root, path: [...ref.path, name] } : null;
}

/**
 * Why `a op b` is not allowed, or undefined when it is. `null` and `any` compare with
 * anything; otherwise both sides need one scalar type, and booleans allow only `=`/`!=`.
 */
export function comparisonError(a: PqlType, b: PqlType, op: string): string | undefined {
  if (a.kind === 'null' || b.kind === 'null' || a.kind === 'any' || b.kind === 'any') return undefined;
  for (const t of [a, b]) {
    if (t.kind === 'array' || t.kind === 'object' || t.kind === 'map') {
      return `${typeToString(t)} values cannot be compared with ${op}`;
    }
  }
  if (a.kind !== b.kind) return `cannot compare ${typeToString(a)} with ${typeToString(b)}`;
  if (a.kind === 'boolean' && op !== '=' && op !== '!=')
    return `booleans can only be compared with = and !=, not ${op}`;
  return undefined;
}

/** The common type of two values that must agree (array elements, `if` branches); undefined if none. */
export function unify(a: PqlType, b: PqlType): PqlType | undefined {
  if (a.kind === 'null' || a.kind === 'any') return b.kind === 'null' ? a : b;
  if (b.kind === 'null' || b.kind === 'any') return a;
  if (a.kind !== b.kind) return undefined;
  if ((a.kind === 'array' || a.kind === 'map') && (b.kind === 'array' || b.kind === 'map')) {
    const of = unify(a.of, b.of);
    return of ? { kind: a.kind, of } : undefined;
  }
  return a;
}

/**
 * State of one check: the inferred types, what the expression reads, and the recursion entry
 * point (`visit`), which the node modules call back into.
 */
export class CheckContext {
  readonly types = new WeakMap<ExpressionNode, PqlType>();
  readonly refs = new WeakMap<ExpressionNode, FieldRef>();
  /** Field reads keyed by the node that made them; a node extended by `.name` hands its read on. */
  readonly fieldReads = new Map<ExpressionNode, string>();
  /** Field reads that have no node of their own (a chain's time field). */
  readonly extraFieldReads = new Set<string>();
  readonly audiences = new Map<string, number>();
  /** inSegment argument as written → the audience it resolved to (its payload type with it). */
  readonly resolvedAudiences = new Map<string, ResolvedAudience>();
  readonly referencedAudiences: number[] = [];
  /** Arrays used where a condition is expected: they mean "non-empty" (non-empty.ts). */
  readonly nonEmpty = new Set<ExpressionNode>();
  /** Paths through an array of objects (`xEvent.metrics.x`): the array and the names after it. */
  readonly projections = new Map<ExpressionNode, Projection>();
  /** Projections not (yet) used in a form that gives them a meaning, with the error to report. */
  readonly openProjections = new Map<ExpressionNode, { why: string; loc: Location }>();
  /** Nodes the engines run in another form (non-empty.ts applies them). */
  readonly replacements = new Map<ExpressionNode, ExpressionNode>();
  /** Maps built with mapEntry that a get/keys/values reads (collection-forms.ts). */
  readonly readableMaps = new Set<ExpressionNode>();
  /** The whole expression: some forms (a bare groupBy) are only a value at the top. */
  root: ExpressionNode | undefined;

  constructor(
    readonly source: string,
    readonly options: CheckOptions,
    readonly visit: (ctx: CheckContext, node: ExpressionNode, scope: Scope) => PqlType,
  ) {}

  check(node: ExpressionNode, scope: Scope): PqlType {
    return this.visit(this, node, scope);
  }

  fail(message: string, loc: Location): never {
    // A path through an array that nothing gave a meaning to is the root cause of what follows.
    const open = this.openProjections.values().next();
    if (!open.done) throw new PqlError('PQL_TYPE_ERROR', open.value.why, this.source, open.value.loc);
    throw new PqlError('PQL_TYPE_ERROR', message, this.source, loc);
  }

  /** `node` as the user knows it: its schema path when it has one, else its type. */
  describe(node: ExpressionNode, type: PqlType): string {
    const ref = this.refs.get(node);
    // The root of the event schema is worth naming (`xEvent`); the profile root and single items are not paths.
    const named = ref && (ref.path.length > 0 || (ref.root === 'event' && type.kind === 'array'));
    return named ? `${refPath(ref)} (${typeToString(type)})` : typeToString(type);
  }

  /** Checks `node` and requires `kind`; the message says what was found. */
  expect(node: ExpressionNode, scope: Scope, kind: PqlType['kind'], what: string): PqlType {
    const t = this.check(node, scope);
    if (kind === 'boolean' && t.kind === 'array') {
      this.nonEmpty.add(node);
      return BOOLEAN;
    }
    if (!fits(t, kind) || (t.kind === 'null' && kind !== 'null')) {
      this.fail(`${what} must be ${kind}, found ${this.describe(node, t)}`, node.loc);
    }
    return t;
  }

  /**
   * The location of `name` written after `after` and inside `node` (the method or field name
   * token); the node's own span when the name is not found there (e.g. an AST built from JSON).
   */
  nameLoc(node: ExpressionNode, after: number, name: string): Location {
    const end = node.loc.offset + node.loc.length;
    const at = this.source.indexOf(name, after);
    return at >= 0 && at + name.length <= end ? locationAt(this.source, at, name.length) : node.loc;
  }

  unknownField(ref: FieldRef | null, name: string, loc: Location): never {
    const full = childRef(ref, name);
    if (!full) this.fail(`unknown field ${name}`, loc);
    const schema = full.root === 'event' ? 'event' : 'profile';
    this.fail(
      `unknown field ${refPath(full)}: the ${schema} schema has no such field (add it with updateProfileSchema)`,
      loc,
    );
  }
}

/** The item scope of a filter or per-item argument over items of `item` type. */
export function itemScope(scope: Scope, item: ObjectType | null, ref: FieldRef | undefined | null): Scope {
  return { ...scope, item: { type: item, ref: ref ?? null, parent: scope.item } };
}

/**
 * The object type of the items of `arrayType`, which must be an array of objects; null when
 * the items are of unknown shape (`any`).
 */
export function objectItems(
  ctx: CheckContext,
  node: ExpressionNode,
  arrayType: PqlType,
  what: string,
): ObjectType | null {
  if (arrayType.kind === 'any') return null;
  if (arrayType.kind === 'array') {
    if (arrayType.of.kind === 'object') return arrayType.of;
    if (arrayType.of.kind === 'any') return null;
  }
  return ctx.fail(`${what} needs an array of objects, but ${ctx.describe(node, arrayType)} is not one`, node.loc);
}
