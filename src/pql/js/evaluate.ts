/**
 * The JS engine (docs/pql.md §8): evaluates a checked expression over one profile document and its
 * events, for streaming and edge evaluation and as the reference the SQL engine is tested
 * against. The AST is compiled once per CheckedExpression into closures with every name
 * resolved to a slot, so a per-event evaluation only runs closures; all subtle semantics come
 * from `runtime.ts`, shared with the SQL engine. Data never makes it throw: malformed values
 * are missing, and predicates on missing values are false (docs/pql-semantics.md).
 */

import { segmentPayload } from '../check/segment-payload.js';
import type { CheckedExpression, PqlType, ProfileDocument } from '../check/types.js';
import type {
  AggregateNode,
  ExpressionNode,
  FilterNode,
  IdentifierNode,
  QuantifiedNode,
  SelectNode,
} from '../language/ast.js';
import {
  arithmetic,
  compareOp,
  dayStart,
  isMissing,
  likeMatches,
  MS_PER_DAY,
  negate,
  toInstant,
  valueIn,
  valueNotIn,
} from '../runtime/index.js';
import { compileChain, compileOccurs } from './chain.js';
import {
  type Binding,
  type Compiler,
  type Ctx,
  ctxEvents,
  type Fn,
  fieldReader,
  type Scope,
  type TraceHook,
} from './context.js';
import { aggregateValues, compileCall, compileMethodCall } from './methods.js';

export interface EvaluateOptions {
  /** The evaluation instant (epoch ms), fixed for the whole evaluation. */
  now: number;
}

interface Compiled {
  fn: Fn;
  scopeSize: number;
  envSize: number;
}

const compiledCache = new WeakMap<CheckedExpression, Compiled>();

/** Whether the profile satisfies the (boolean) expression at instant `now`. */
export function evaluate(checked: CheckedExpression, profile: ProfileDocument, options: EvaluateOptions): boolean {
  return evaluateValue(checked, profile, options) === true;
}

/**
 * The value of the expression: a string, number (datetimes as epoch ms), boolean, array or
 * object (events are `EventItem`s, which serialise to `{ ...payload, timestamp, eventType }`),
 * or undefined when missing.
 */
export function evaluateValue(checked: CheckedExpression, profile: ProfileDocument, options: EvaluateOptions): unknown {
  let compiled = compiledCache.get(checked);
  if (compiled === undefined) {
    compiled = compileExpression(checked);
    compiledCache.set(checked, compiled);
  }
  return run(compiled, profile, options);
}

/**
 * The evaluator compiled once with `trace` observing it (not cached: the hook holds the state of
 * one explanation). Returns the value of the expression, as `evaluateValue` does.
 */
export function evaluateTraced(
  checked: CheckedExpression,
  profile: ProfileDocument,
  options: EvaluateOptions,
  trace: TraceHook,
): unknown {
  const compiled = compileExpression(checked, trace);
  return run(compiled, profile, options);
}

/** Runs a compiled expression for one profile: a fresh scope and environment per run. */
function run(compiled: Compiled, profile: ProfileDocument, options: EvaluateOptions): unknown {
  const scope = new Array<unknown>(compiled.scopeSize);
  scope[0] = profile.attributes;
  const ctx: Ctx = {
    profile,
    now: options.now,
    today: dayStart(options.now),
    scope,
    env: new Array<unknown>(compiled.envSize),
    events: undefined,
  };
  return compiled.fn(ctx);
}

function compileExpression(checked: CheckedExpression, trace?: TraceHook): Compiled {
  const compiler = new ClosureCompiler(checked, trace);
  const fn = compiler.compile(checked.ast, { depth: 0, bindings: null });
  return { fn, scopeSize: compiler.maxDepth + 1, envSize: compiler.slots };
}

const truthy = (v: unknown): boolean => v === true;

/** `items.f`: the present values of f, in order (docs/pql-semantics.md, paths through arrays). */
function projected(items: unknown, read: (obj: unknown) => unknown): unknown {
  if (!Array.isArray(items)) return undefined;
  const out: unknown[] = [];
  for (const item of items) {
    const v = read(item);
    if (!isMissing(v)) out.push(v);
  }
  return out;
}

/** Node kinds that read document data, whose datetime-typed values are ISO strings to convert. */
const READS_DATA = new Set<ExpressionNode['kind']>(['Identifier', 'Member', 'ParentField', 'MethodCall', 'Literal']);

function toInstants(v: unknown): unknown {
  if (!Array.isArray(v)) return undefined;
  const out: number[] = [];
  for (const item of v) {
    const t = toInstant(item);
    if (t !== undefined) out.push(t);
  }
  return out;
}

class ClosureCompiler implements Compiler {
  slots = 0;
  maxDepth = 0;
  private readonly types: WeakMap<ExpressionNode, PqlType>;

  constructor(
    private readonly checked: CheckedExpression,
    readonly trace?: TraceHook,
  ) {
    this.types = checked.types;
  }

  allocSlot(): number {
    return this.slots++;
  }

  itemScope(scope: Scope): Scope {
    const depth = scope.depth + 1;
    if (depth > this.maxDepth) this.maxDepth = depth;
    return { ...scope, depth };
  }

  audienceId(ref: string): number | undefined {
    return this.checked.audiences.get(ref);
  }

  private isDatetime(node: ExpressionNode): boolean {
    return this.types.get(node)?.kind === 'datetime';
  }

  compile(node: ExpressionNode, scope: Scope): Fn {
    const fn = this.compileValue(node, scope);
    return this.trace === undefined ? fn : this.trace.node(node, scope, fn);
  }

  private compileValue(node: ExpressionNode, scope: Scope): Fn {
    const fn = this.compileNode(node, scope);
    if (!READS_DATA.has(node.kind)) return fn;
    // Documents store datetimes as ISO strings; the checker's types say which values those are.
    const type = this.types.get(node);
    if (type?.kind === 'datetime') return (ctx) => toInstant(fn(ctx));
    if (type?.kind === 'array' && type.of.kind === 'datetime') return (ctx) => toInstants(fn(ctx));
    return fn;
  }

  private compileNode(node: ExpressionNode, scope: Scope): Fn {
    switch (node.kind) {
      case 'Literal': {
        const value = node.value ?? undefined;
        return () => value;
      }
      case 'TimeWord':
        switch (node.word) {
          case 'now':
            return (ctx) => ctx.now;
          case 'today':
            return (ctx) => ctx.today;
          case 'yesterday':
            return (ctx) => ctx.today - MS_PER_DAY;
          case 'tomorrow':
            return (ctx) => ctx.today + MS_PER_DAY;
        }
        break;
      case 'ArrayLiteral': {
        const elements = node.elements.map((e) => this.compile(e, scope));
        if (node.elements.every((e) => e.kind === 'Literal')) {
          const value = elements.map((e) => e(undefined as unknown as Ctx));
          return () => value;
        }
        return (ctx) => elements.map((e) => e(ctx));
      }
      case 'Identifier':
        return this.compileIdentifier(node, scope);
      case 'XEvent':
        return ctxEvents;
      case 'Parameter':
        return node.position === 1 ? (ctx) => ctx.scope[0] : () => undefined;
      case 'ParentField': {
        const target = scope.depth - node.depth;
        if (target < 0) return () => undefined;
        const read = fieldReader(node.name);
        return (ctx) => read(ctx.scope[target]);
      }
      case 'Member': {
        const payload = segmentPayload(node);
        if (payload) {
          const id = this.audienceId(payload.ref);
          // Only a current member has a row (ProfileDocument.payloads); otherwise it is missing.
          if (id === undefined) return () => undefined;
          return (ctx) => (ctx.profile.memberships.has(id) ? ctx.profile.payloads?.get(id) : undefined);
        }
        const object = this.compile(node.object, scope);
        const read = fieldReader(node.name);
        if (this.types.get(node.object)?.kind === 'array') return (ctx) => projected(object(ctx), read);
        return (ctx) => read(object(ctx));
      }
      case 'MethodCall':
        return compileMethodCall(this, node, scope);
      case 'Filter':
        return this.compileFilter(node, scope);
      case 'Call':
        return compileCall(this, node, scope);
      case 'Logical': {
        const left = this.compile(node.left, scope);
        const right = this.compile(node.right, scope);
        return node.op === 'and'
          ? (ctx) => left(ctx) === true && right(ctx) === true
          : (ctx) => left(ctx) === true || right(ctx) === true;
      }
      case 'Not': {
        const operand = this.compile(node.operand, scope);
        return (ctx) => operand(ctx) !== true;
      }
      case 'Compare': {
        const left = this.compile(node.left, scope);
        const { op, right: rightNode } = node;
        // `eventType = "x"` runs per event: against a literal, same-type equality is just ===.
        if (op === '=' && rightNode.kind === 'Literal' && rightNode.value !== null && !this.isDatetime(rightNode)) {
          const constant = rightNode.value;
          return (ctx) => left(ctx) === constant;
        }
        const right = this.compile(rightNode, scope);
        return (ctx) => compareOp(op, left(ctx), right(ctx));
      }
      case 'Arithmetic': {
        const left = this.compile(node.left, scope);
        const right = this.compile(node.right, scope);
        const { op } = node;
        return (ctx) => arithmetic(op, left(ctx), right(ctx));
      }
      case 'Negate': {
        const operand = this.compile(node.operand, scope);
        return (ctx) => negate(operand(ctx));
      }
      case 'In': {
        const value = this.compile(node.value, scope);
        const list = this.compile(node.list, scope);
        return node.negated ? (ctx) => valueNotIn(value(ctx), list(ctx)) : (ctx) => valueIn(value(ctx), list(ctx));
      }
      case 'Like': {
        const value = this.compile(node.value, scope);
        const { pattern } = node;
        return (ctx) => likeMatches(value(ctx), pattern);
      }
      case 'Occurs':
        return compileOccurs(this, node, scope);
      case 'Quantified':
        return this.compileQuantified(node, scope);
      case 'Select':
        return this.compileSelect(node, scope);
      case 'Aggregate':
        return this.compileAggregate(node, scope);
      case 'Let': {
        const value = this.compile(node.value, scope);
        const slot = this.allocSlot();
        const body = this.compile(node.body, this.bind(scope, node.name, slot, 'let'));
        return (ctx) => {
          ctx.env[slot] = value(ctx);
          return body(ctx);
        };
      }
      case 'Chain':
        return compileChain(this, node, scope);
      case 'Lambda': {
        // A per-item argument naming its item: the body, with the name bound to the current item.
        const slot = this.allocSlot();
        const { depth } = scope;
        const body = this.compile(node.body, this.bind(scope, node.param, slot, 'var'));
        return (ctx) => {
          ctx.env[slot] = ctx.scope[depth];
          return body(ctx);
        };
      }
    }
    return () => undefined;
  }

  private bind(scope: Scope, name: string, slot: number, kind: Binding['kind']): Scope {
    return { ...scope, bindings: { name, slot, kind, step: -1, next: scope.bindings } };
  }

  /** Innermost binding first (let, quantifier variable, chain label in WHEN), else a field of the current item. */
  private compileIdentifier(node: IdentifierNode, scope: Scope): Fn {
    for (let b = scope.bindings; b !== null; b = b.next) {
      if (b.name !== node.name) continue;
      if (b.kind === 'label') scope.labelUse?.add(b.step);
      const { slot } = b;
      return (ctx) => ctx.env[slot];
    }
    const { depth } = scope;
    const read = fieldReader(node.name);
    return (ctx) => read(ctx.scope[depth]);
  }

  private compileFilter(node: FilterNode, scope: Scope): Fn {
    const object = this.compile(node.object, scope);
    const inner = this.itemScope(scope);
    const predicate = this.compile(node.predicate, inner);
    const depth = inner.depth;
    return (ctx) => {
      const items = object(ctx);
      if (!Array.isArray(items)) return undefined;
      const s = ctx.scope;
      const out: unknown[] = [];
      for (const item of items) {
        s[depth] = item;
        if (predicate(ctx) === true) out.push(item);
      }
      return out;
    };
  }

  /** Compiles the bindings' sources (each may read the variables before it) and the body. */
  private compileBindings(
    bindings: QuantifiedNode['bindings'],
    body: ExpressionNode,
    scope: Scope,
  ): { sources: Fn[]; slots: number[]; body: Fn } {
    const sources: Fn[] = [];
    const slots: number[] = [];
    let inner = scope;
    for (const binding of bindings) {
      sources.push(this.compile(binding.source, inner));
      const slot = this.allocSlot();
      slots.push(slot);
      inner = this.bind(inner, binding.name, slot, 'var');
    }
    return { sources, slots, body: this.compile(body, inner) };
  }

  private compileQuantified(node: QuantifiedNode, scope: Scope): Fn {
    const { sources, slots, body } = this.compileBindings(node.bindings, node.body, scope);
    const forall = node.quantifier === 'forall';
    // exists: some combination satisfies the body; forall: every one does (true for none).
    const run = (ctx: Ctx, level: number): boolean => {
      if (level === sources.length) return body(ctx) === true;
      const items = sources[level]!(ctx);
      if (!Array.isArray(items)) return forall;
      const slot = slots[level]!;
      for (const item of items) {
        ctx.env[slot] = item;
        if (run(ctx, level + 1) !== forall) return !forall;
      }
      return forall;
    };
    return (ctx) => run(ctx, 0);
  }

  /** The items of `binding.source` for which `body` holds, with the variable bound. */
  private compileMatching(binding: SelectNode['binding'], body: ExpressionNode, scope: Scope, value?: ExpressionNode) {
    const {
      sources: [source],
      slots: [slot],
      body: cond,
    } = this.compileBindings([binding], body, scope);
    const inner = this.bind(scope, binding.name, slot!, 'var');
    const valueFn = value === undefined ? undefined : this.compile(value, inner);
    return { source: source!, slot: slot!, cond, valueFn };
  }

  private compileSelect(node: SelectNode, scope: Scope): Fn {
    const { source, slot, cond } = this.compileMatching(node.binding, node.body, scope);
    return (ctx) => {
      const items = source(ctx);
      if (!Array.isArray(items)) return undefined;
      return items.filter((item) => {
        ctx.env[slot] = item;
        return truthy(cond(ctx));
      });
    };
  }

  private compileAggregate(node: AggregateNode, scope: Scope): Fn {
    const { source, slot, cond, valueFn } = this.compileMatching(node.binding, node.body, scope, node.value);
    const { fn } = node;
    return (ctx) => {
      const items = source(ctx);
      const values: unknown[] = [];
      if (Array.isArray(items)) {
        for (const item of items) {
          ctx.env[slot] = item;
          if (cond(ctx) === true) values.push(valueFn!(ctx));
        }
      }
      if (fn === 'count') return values.filter((v) => !isMissing(v)).length;
      return aggregateValues(fn, values);
    };
  }
}
