/**
 * The PQL checker (docs/pql.md §6): resolves every path against the field catalogue, infers the
 * type of every node, validates functions, operands and literals, resolves `inSegment`
 * audiences (rejecting cycles), and decides the evaluation methods (eligibility.ts). The first
 * error throws a PqlError('PQL_TYPE_ERROR') at the offending node.
 */
import type {
  AggregateNode,
  ArithmeticNode,
  ArrayLiteralNode,
  BindingNode,
  CallNode,
  ExpressionNode,
  FilterNode,
  IdentifierNode,
  InNode,
  MemberNode,
  MethodCallNode,
  ParentFieldNode,
  QuantifiedNode,
} from '../language/ast.js';
import { PqlError } from '../language/errors.js';
import { parse } from '../language/parser.js';
import { print } from '../language/printer.js';
import { walk } from '../language/visitor.js';
import { checkCall, checkMethodCall } from './calls.js';
import { typeToString } from './catalog.js';
import {
  aggregateOfMap,
  arrayEquality,
  checkGroupBy,
  checkGroupedRead,
  checkGroupValues,
  checkMap,
  groupKeys,
  isEntryMap,
  isGroupValues,
} from './collection-forms.js';
import {
  ANY,
  BOOLEAN,
  bind,
  CheckContext,
  childRef,
  comparisonError,
  DATETIME,
  type Env,
  fits,
  type ItemScope,
  lookup,
  NULL,
  NUMBER,
  ownField,
  refPath,
  type Scope,
  STRING,
  unify,
} from './context.js';
import { dependsOnNow, eligibility } from './eligibility.js';
import { withNonEmptyConditions } from './non-empty.js';
import { checkChain, checkOccurs } from './occurs.js';
import { checkItemArgument, elementOf, itemArgumentScope, misplacedLambda } from './per-item.js';
import { projectedComparison, projectedSubject } from './projection.js';
import { segmentPayload } from './segment-payload.js';
import type { CheckedExpression, CheckOptions, ObjectType, PqlType } from './types.js';

/** Checks an expression of any type. */
export function check(ast: ExpressionNode, source: string, options: CheckOptions): CheckedExpression {
  return checkTree(ast, source, options, false);
}

function checkTree(
  parsed: ExpressionNode,
  source: string,
  options: CheckOptions,
  definition: boolean,
): CheckedExpression {
  const ctx = new CheckContext(source, options, visit);
  ctx.root = parsed;
  const profile: ItemScope = { type: options.catalog.profile, ref: { root: 'profile', path: [] }, parent: null };
  const root: Scope = { item: profile, env: null };
  let type = ctx.check(parsed, root);
  // A whole definition that is an array (`select E from xEvent where …`) holds when it is non-empty.
  if (definition && type.kind === 'array') {
    // The groups of a groupBy are non-empty when its keys are (the groups themselves are a JS value).
    if (isGroupValues(parsed)) ctx.replacements.set(parsed, groupKeys(ctx, parsed as MethodCallNode, root));
    ctx.nonEmpty.add(parsed);
    type = BOOLEAN;
  }
  for (const { why, loc } of ctx.openProjections.values()) ctx.fail(why, loc);
  const ast = withNonEmptyConditions(parsed, ctx.nonEmpty, ctx.types, ctx.replacements);
  const referencedFields = [...new Set([...ctx.fieldReads.values(), ...ctx.extraFieldReads])].sort();
  const referencedAudiences = [...ctx.referencedAudiences];
  let timeDependent: boolean | undefined;
  return {
    source,
    ast,
    type,
    types: ctx.types,
    referencedFields,
    audiences: ctx.audiences,
    referencedAudiences,
    eligibility: eligibility(ast, { referencedFields, referencedAudiences }),
    // Only the streaming sweep asks, so the walk is not paid on every check.
    get timeDependent() {
      timeDependent ??= dependsOnNow(ast);
      return timeDependent;
    },
  };
}

/** Checks a segment definition: like `check`, and the expression must be boolean (or an array: non-empty). */
export function checkDefinition(ast: ExpressionNode, source: string, options: CheckOptions): CheckedExpression {
  const checked = checkTree(ast, source, options, true);
  if (checked.type.kind !== 'boolean') {
    throw new PqlError(
      'PQL_TYPE_ERROR',
      `a segment definition must be a boolean expression, but this one is ${typeToString(checked.type)}`,
      source,
      ast.loc,
    );
  }
  return checked;
}

/** Parses and checks a segment definition written as PQL text. */
export function checkSource(source: string, options: CheckOptions): CheckedExpression {
  return checkDefinition(parse(source), source, options);
}

function visit(ctx: CheckContext, node: ExpressionNode, scope: Scope): PqlType {
  const type = infer(ctx, node, scope);
  ctx.types.set(node, type);
  return type;
}

function infer(ctx: CheckContext, node: ExpressionNode, scope: Scope): PqlType {
  switch (node.kind) {
    case 'Literal':
      if (node.value === null) return NULL;
      if (typeof node.value === 'string') return STRING;
      return typeof node.value === 'number' ? NUMBER : BOOLEAN;
    case 'TimeWord':
      return DATETIME;
    case 'ArrayLiteral':
      return arrayLiteral(ctx, node, scope);
    case 'Identifier':
      return identifier(ctx, node, scope);
    case 'XEvent':
      ctx.refs.set(node, { root: 'event', path: [] });
      return { kind: 'array', of: ctx.options.catalog.event };
    case 'Parameter': {
      if (node.position !== 1) {
        ctx.fail(`unknown parameter $${node.position}: only $1 (the profile) exists`, node.loc);
      }
      let root = scope.item;
      while (root.parent) root = root.parent;
      if (root.ref) ctx.refs.set(node, root.ref);
      return root.type ?? ANY;
    }
    case 'ParentField':
      return parentField(ctx, node, scope);
    case 'Member':
      return member(ctx, node, scope);
    case 'MethodCall': {
      if (node.name === 'filter' && node.args.length === 1) {
        // `a.filter(cond)`, the documentation's spelling of `a[cond]`: the engines run the filter.
        const filter: FilterNode = { kind: 'Filter', object: node.object, predicate: node.args[0]!, loc: node.loc };
        ctx.replacements.set(node, filter);
        const type = ctx.check(filter, scope);
        const ref = ctx.refs.get(filter);
        if (ref) ctx.refs.set(node, ref);
        return type;
      }
      if (isGroupValues(node.object)) return checkGroupValues(ctx, node, scope);
      const overMap = aggregateOfMap(node);
      if (overMap) {
        ctx.replacements.set(node, overMap);
        return ctx.check(overMap, scope);
      }
      // get/keys/values of a map built with mapEntry: the engines read it without a value of its own.
      if (isMapRead(node.name) && isEntryMap(node.object)) ctx.readableMaps.add(node.object);
      if (node.name === 'map') return checkMap(ctx, node, scope, ctx.readableMaps.has(node));
      if (node.object.kind === 'MethodCall' && node.object.name === 'groupBy' && isMapRead(node.name)) {
        return checkGroupedRead(ctx, node, scope);
      }
      if (node.name === 'groupBy') {
        // Only the JS engine builds the grouping itself, for a value expression that is just it.
        if (node !== ctx.root) ctx.fail('read a groupBy with .keys(), .get("key") or .values()', node.loc);
        return checkGroupBy(ctx, node, scope);
      }
      return checkMethodCall(ctx, node, scope);
    }
    case 'Filter': {
      const arrayType = ctx.check(node.object, scope);
      const inner = itemArgumentScope(ctx, scope, node.object, arrayType, node.predicate, 'a filter [...]');
      checkItemArgument(ctx, node.predicate, inner, elementOf(arrayType), (n, s) =>
        ctx.expect(n, s, 'boolean', 'a filter condition'),
      );
      const ref = ctx.refs.get(node.object);
      if (ref) ctx.refs.set(node, ref);
      return arrayType;
    }
    case 'Lambda':
      return misplacedLambda(ctx, node);
    case 'Call':
      return checkCall(ctx, node, scope);
    case 'Logical':
      ctx.expect(node.left, scope, 'boolean', `the left operand of ${node.op}`);
      ctx.expect(node.right, scope, 'boolean', `the right operand of ${node.op}`);
      return BOOLEAN;
    case 'Not':
      ctx.expect(node.operand, scope, 'boolean', 'the operand of not');
      return BOOLEAN;
    case 'Compare': {
      const left = ctx.check(node.left, scope);
      if ((node.op === '=' || node.op === '!=') && left.kind === 'array') {
        const right = ctx.check(node.right, scope);
        if (right.kind === 'array') return arrayEquality(ctx, node, left, right, scope);
      }
      const projection = ctx.projections.get(node.left);
      if (projection) return projectedComparison(ctx, node, projection, scope);
      const right = ctx.check(node.right, scope);
      const error = comparisonError(left, right, node.op);
      if (error) {
        const culprit = left.kind === 'array' || left.kind === 'object' || left.kind === 'map' ? node.left : node.right;
        ctx.fail(
          `${error}: ${ctx.describe(node.left, left)} ${node.op} ${ctx.describe(node.right, right)}`,
          culprit.loc,
        );
      }
      return BOOLEAN;
    }
    case 'Arithmetic':
      return arithmetic(ctx, node, scope);
    case 'Negate':
      ctx.expect(node.operand, scope, 'number', 'the operand of unary -');
      return NUMBER;
    case 'In':
      return projectedSubject(ctx, node, scope) ?? inList(ctx, node, scope);
    case 'Like':
      if (projectedSubject(ctx, node, scope)) return BOOLEAN;
      ctx.expect(node.value, scope, 'string', 'the left operand of like');
      return BOOLEAN;
    case 'Occurs':
      return projectedSubject(ctx, node, scope) ?? checkOccurs(ctx, node, scope);
    case 'Quantified':
      return quantified(ctx, node, scope);
    case 'Select': {
      const env = binding(ctx, node.binding, scope, scope.env);
      ctx.expect(node.body, { ...scope, env }, 'boolean', 'the condition of select');
      const ref = ctx.refs.get(node.binding.source);
      if (ref) ctx.refs.set(node, ref);
      return ctx.types.get(node.binding.source) ?? ANY;
    }
    case 'Aggregate':
      return aggregate(ctx, node, scope);
    case 'Let': {
      const type = ctx.check(node.value, scope);
      const ref = ctx.refs.get(node.value) ?? null;
      const body = ctx.check(node.body, { ...scope, env: bind(scope.env, node.name, { kind: 'let', type, ref }) });
      const bodyRef = ctx.refs.get(node.body);
      if (bodyRef) ctx.refs.set(node, bodyRef);
      return body;
    }
    case 'Chain':
      return checkChain(ctx, node, scope);
  }
}

function fieldOf(ctx: CheckContext, item: ItemScope, name: string, node: ExpressionNode, nameLoc = node.loc): PqlType {
  if (!item.type) return ANY;
  const type = ownField(item.type, name);
  if (!type) ctx.unknownField(item.ref, name, nameLoc);
  const ref = childRef(item.ref, name);
  if (ref) {
    ctx.refs.set(node, ref);
    ctx.fieldReads.set(node, refPath(ref));
  }
  return type;
}

function identifier(ctx: CheckContext, node: IdentifierNode, scope: Scope): PqlType {
  const b = lookup(scope.env, node.name);
  if (!b) return fieldOf(ctx, scope.item, node.name, node);
  if (b.kind === 'label' && (scope.whenStep === undefined || (b.stepIndex ?? 0) >= scope.whenStep)) {
    ctx.fail(`WHEN can only refer to an earlier chain step; ${node.name} is not before this step`, node.loc);
  }
  if (b.ref) ctx.refs.set(node, b.ref);
  return b.type;
}

function parentField(ctx: CheckContext, node: ParentFieldNode, scope: Scope): PqlType {
  let item: ItemScope | null = scope.item;
  for (let i = 0; i < node.depth && item; i++) item = item.parent;
  if (!item) {
    ctx.fail(
      `${'^'.repeat(node.depth)}.${node.name} reaches past the profile: only ${depthOf(scope.item)} enclosing scope(s) here`,
      node.loc,
    );
  }
  return fieldOf(ctx, item, node.name, node);
}

function depthOf(item: ItemScope): number {
  let n = 0;
  for (let i = item.parent; i; i = i.parent) n++;
  return n;
}

function member(ctx: CheckContext, node: MemberNode, scope: Scope): PqlType {
  const payload = segmentPayload(node.object);
  if (payload) return payloadField(ctx, node, payload, scope);
  if (segmentPayload(node)) {
    ctx.check(node.object, scope);
    const fields = Object.keys(payloadType(ctx, node, segmentPayload(node)!.ref).fields);
    ctx.fail(
      `${print(node)} is the profile's row in that audience's list: read one of its fields, e.g. ${print(node)}.${fields[0] ?? 'field'}`,
      node.loc,
    );
  }
  const objectType = ctx.check(node.object, scope);
  const nameLoc = ctx.nameLoc(node, node.object.loc.offset + node.object.loc.length, node.name);
  const ref = ctx.refs.get(node.object) ?? null;
  switch (objectType.kind) {
    case 'any':
      return ANY;
    case 'object':
      // The longer path replaces the shorter one: `person.name.firstName` reads one field, not three.
      ctx.fieldReads.delete(node.object);
      return fieldOf(ctx, { type: objectType, ref, parent: null }, node.name, node, nameLoc);
    case 'map':
      return ctx.fail(
        `${ctx.describe(node.object, objectType)} is a map: read its entries with .get("${node.name}")`,
        nameLoc,
      );
    case 'array': {
      const why = `${ctx.describe(node.object, objectType)} is an array: reach .${node.name} of its items with a filter [...], .exists(...) or an aggregate such as .sum(${node.name})`;
      const field = objectType.of.kind === 'object' ? ownField(objectType.of, node.name) : undefined;
      // A path through an array means its items' values (projection.ts); only a comparison gives it a meaning yet.
      if (!field || field.kind === 'array' || field.kind === 'map') return ctx.fail(why, nameLoc);
      const inner = ctx.projections.get(node.object);
      ctx.projections.set(node, {
        base: inner ? inner.base : node.object,
        names: inner ? [...inner.names, node.name] : [node.name],
      });
      const first = ctx.openProjections.get(node.object);
      ctx.openProjections.delete(node.object);
      // The projected values of a scalar field are an array both engines compute; objects only lead on.
      if (field.kind === 'object') ctx.openProjections.set(node, first ?? { why, loc: nameLoc });
      return { kind: 'array', of: field };
    }
    default: {
      const rows =
        node.object.kind === 'Call' && node.object.name === 'inSegment'
          ? `; a field of the profile's row in an external audience is read as ${print(node.object)}.payload.<field>`
          : '';
      return ctx.fail(
        `${ctx.describe(node.object, objectType)} has no fields (looking for .${node.name})${rows}`,
        nameLoc,
      );
    }
  }
}

/** The fields of an external audience's rows (`inSegment("…").payload`), or an error naming what to use instead. */
function payloadType(ctx: CheckContext, node: ExpressionNode, ref: string): ObjectType {
  const audience = ctx.resolvedAudiences.get(ref)!;
  if (!audience.payload) {
    ctx.fail(
      `audience "${audience.name}" has no payload: only external audiences (uploaded lists) keep a row per member; use inSegment("${ref}") on its own`,
      node.loc,
    );
  }
  return audience.payload;
}

/**
 * `inSegment("…").payload.<field>`: typed by the audience's declared fields; missing when the
 * profile is not a current member (so a comparison on it is false, as for any missing value).
 */
function payloadField(ctx: CheckContext, node: MemberNode, payload: { call: CallNode; ref: string }, scope: Scope) {
  ctx.check(payload.call, scope);
  const type = payloadType(ctx, node.object, payload.ref);
  ctx.types.set(node.object, type);
  const field = ownField(type, node.name);
  if (!field) {
    const nameLoc = ctx.nameLoc(node, node.object.loc.offset + node.object.loc.length, node.name);
    const known = Object.keys(type.fields);
    const audience = ctx.resolvedAudiences.get(payload.ref)!;
    ctx.fail(
      `unknown payload field ${node.name} of audience "${audience.name}": its rows have ${known.length > 0 ? known.join(', ') : 'no fields besides the identity'}`,
      nameLoc,
    );
  }
  return field;
}

function arrayLiteral(ctx: CheckContext, node: ArrayLiteralNode, scope: Scope): PqlType {
  let of: PqlType = ANY;
  for (const element of node.elements) {
    const t = ctx.check(element, scope);
    const common = unify(of, t);
    if (!common) {
      ctx.fail(`array elements must share one type: ${typeToString(t)} after ${typeToString(of)}`, element.loc);
    }
    of = common;
  }
  return { kind: 'array', of: of.kind === 'null' ? ANY : of };
}

function arithmetic(ctx: CheckContext, node: ArithmeticNode, scope: Scope): PqlType {
  const left = ctx.check(node.left, scope);
  const right = ctx.check(node.right, scope);
  const numeric = (t: PqlType) => fits(t, 'number');
  if (numeric(left) && numeric(right)) return NUMBER;
  if (node.op === '+' && fits(left, 'string') && fits(right, 'string')) return STRING;
  const culprit = numeric(left) || (node.op === '+' && fits(left, 'string')) ? node.right : node.left;
  const wants = node.op === '+' ? 'two numbers or two strings' : 'numbers';
  return ctx.fail(
    `${node.op} needs ${wants}, found ${ctx.describe(node.left, left)} ${node.op} ${ctx.describe(node.right, right)}`,
    culprit.loc,
  );
}

function inList(ctx: CheckContext, node: InNode, scope: Scope): PqlType {
  const op = node.negated ? 'notIn' : 'in';
  const value = ctx.check(node.value, scope);
  if (value.kind === 'array' || value.kind === 'object' || value.kind === 'map') {
    ctx.fail(
      `the left operand of ${op} must be a single value, found ${ctx.describe(node.value, value)}`,
      node.value.loc,
    );
  }
  if (node.list.kind === 'ArrayLiteral') {
    for (const element of node.list.elements) {
      const t = ctx.check(element, scope);
      const error = comparisonError(value, t, '=');
      if (error)
        ctx.fail(`${op} list element does not match ${ctx.describe(node.value, value)}: ${error}`, element.loc);
    }
    ctx.types.set(node.list, { kind: 'array', of: value.kind === 'null' ? ANY : value });
    return BOOLEAN;
  }
  const list = ctx.check(node.list, scope);
  if (list.kind === 'any') return BOOLEAN;
  if (list.kind !== 'array') {
    ctx.fail(`the right operand of ${op} must be an array, found ${ctx.describe(node.list, list)}`, node.list.loc);
  }
  const error = comparisonError(value, list.of, '=');
  if (error) ctx.fail(`${op} list does not match ${ctx.describe(node.value, value)}: ${error}`, node.list.loc);
  return BOOLEAN;
}

/** Binds `binding.name` to the items of its source; the source sees the bindings before it. */
function binding(ctx: CheckContext, node: BindingNode, scope: Scope, env: Env | null): Env {
  const source = ctx.check(node.source, { ...scope, env });
  if (source.kind !== 'array' && source.kind !== 'any') {
    ctx.fail(
      `${node.name} must range over an array, but ${ctx.describe(node.source, source)} is not one`,
      node.source.loc,
    );
  }
  const of = source.kind === 'array' ? source.of : ANY;
  return bind(env, node.name, { kind: 'variable', type: of, ref: ctx.refs.get(node.source) ?? null });
}

function quantified(ctx: CheckContext, node: QuantifiedNode, scope: Scope): PqlType {
  let env = scope.env;
  const seen = new Set<string>();
  for (const b of node.bindings) {
    if (seen.has(b.name)) ctx.fail(`variable ${b.name} is bound twice in one ${node.quantifier}`, b.loc);
    seen.add(b.name);
    env = binding(ctx, b, scope, env);
  }
  ctx.expect(node.body, { ...scope, env }, 'boolean', `the condition of ${node.quantifier}`);
  if (readsEarlierBinding(node)) ctx.replacements.set(node, nestedQuantifiers(ctx, node));
  return BOOLEAN;
}

/** Whether a binding ranges over something an earlier binding names (`I from E.productListItems`). */
function readsEarlierBinding(node: QuantifiedNode): boolean {
  const earlier = new Set<string>();
  return node.bindings.some((b) => {
    let reads = false;
    walk(b.source, (n) => {
      if (n.kind === 'Identifier' && earlier.has(n.name)) reads = true;
    });
    earlier.add(b.name);
    return reads;
  });
}

/**
 * `exists E from s, I from E.items where c` as `exists E from s where (exists I from E.items
 * where c)` (the same for forall): one quantifier per binding means the same, and lets the SQL
 * compiler run the outer one as a single pass over the events instead of a per-profile product.
 */
function nestedQuantifiers(ctx: CheckContext, node: QuantifiedNode): QuantifiedNode {
  let body = node.body;
  for (let i = node.bindings.length - 1; i >= 0; i--) {
    const level: QuantifiedNode = { ...node, bindings: [node.bindings[i]!], body };
    ctx.types.set(level, BOOLEAN);
    body = level;
  }
  return body as QuantifiedNode;
}

function aggregate(ctx: CheckContext, node: AggregateNode, scope: Scope): PqlType {
  const env = binding(ctx, node.binding, scope, scope.env);
  const inner = { ...scope, env };
  ctx.expect(node.body, inner, 'boolean', `the condition of ${node.fn}`);
  if (node.fn === 'count') ctx.check(node.value, inner);
  else ctx.expect(node.value, inner, 'number', `the value of ${node.fn}`);
  return NUMBER;
}

const isMapRead = (name: string) => name === 'keys' || name === 'get' || name === 'values';
