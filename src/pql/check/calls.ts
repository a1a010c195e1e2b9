/**
 * Methods (`x.startsWith("a")`) and functions (`date(2024, 1, 5)`, `inSegment("vip")`), checked
 * against the signature table in functions.ts.
 */
import { RE2JS } from 're2js';
import type { CallNode, ExpressionNode, Location, MethodCallNode } from '../language/ast.js';
import { parseDate, parseIsoDatetime } from '../runtime/time.js';
import { typeToString } from './catalog.js';
import {
  ANY,
  BOOLEAN,
  type CheckContext,
  comparisonError,
  DATETIME,
  NUMBER,
  type Scope,
  STRING,
  unify,
} from './context.js';
import { FUNCTIONS, METHODS, type MethodSignature, type ParamSpec, type TypeSpec } from './functions.js';
import { checkItemArgument, elementOf, itemArgumentScope } from './per-item.js';
import { regexTooComplex } from './regex-limits.js';
import type { PqlType } from './types.js';

export function checkMethodCall(ctx: CheckContext, node: MethodCallNode, scope: Scope): PqlType {
  const nameLoc = ctx.nameLoc(node, node.object.loc.offset + node.object.loc.length, node.name);
  const sig = METHODS.get(node.name);
  if (!sig) {
    const hint = FUNCTIONS.has(node.name) ? `: ${node.name} is a function, write ${node.name}(...)` : '';
    ctx.fail(`unknown method ${node.name}()${hint}`, nameLoc);
  }
  const receiver = ctx.check(node.object, scope);
  const elem = receiverElement(ctx, node, sig, receiver, nameLoc);
  checkArity(ctx, node.name, [sig.params], node.args.length, nameLoc);
  let groups: number | undefined;
  sig.params.forEach((param, i) => {
    const arg = node.args[i];
    if (!arg) {
      if (param.perItem) itemsAsValues(ctx, node, param, receiver, elem, nameLoc);
      return;
    }
    let type: PqlType;
    if (param.perItem) {
      const what = `the argument of ${node.name}(), read from each item,`;
      const inner = itemArgumentScope(ctx, scope, node.object, receiver, arg, what);
      type = checkItemArgument(ctx, arg, inner, elementOf(receiver), (n, s) => ctx.check(n, s));
    } else {
      type = ctx.check(arg, scope);
    }
    checkArgType(ctx, node.name, param, i, arg, type, elem);
    groups = checkLiteral(ctx, node.name, param, arg, groups);
  });
  const result = resultType(sig.result, elem, receiver);
  const ref = ctx.refs.get(node.object);
  // The items (and map values) of a path share its schema path, so fields read on them name it.
  if (ref && (sig.result === 'elem' || sig.result === 'array<elem>')) ctx.refs.set(node, ref);
  return result;
}

/** The receiver's element type (`any` for non-collections), after checking the receiver kind. */
function receiverElement(
  ctx: CheckContext,
  node: MethodCallNode,
  sig: MethodSignature,
  receiver: PqlType,
  nameLoc: Location,
): PqlType {
  if (sig.receiver === 'any' || receiver.kind === 'any') return ANY;
  if ((sig.receiver === 'array' || sig.receiver === 'map') && receiver.kind === sig.receiver) return receiver.of;
  if (receiver.kind === sig.receiver) return ANY;
  const wanted = `${sig.receiver === 'array' ? 'an' : 'a'} ${sig.receiver}`;
  return ctx.fail(
    `${node.name}() applies to ${wanted}, but ${ctx.describe(node.object, receiver)} is not one`,
    nameLoc,
  );
}

function checkArity(
  ctx: CheckContext,
  name: string,
  overloads: ParamSpec[][],
  count: number,
  loc: Location,
): ParamSpec[] {
  const fit = overloads.find((ps) => count >= ps.filter((p) => !p.optional).length && count <= ps.length);
  if (fit) return fit;
  const counts = new Set<number>();
  for (const ps of overloads) for (let n = ps.filter((p) => !p.optional).length; n <= ps.length; n++) counts.add(n);
  const list = [...counts].sort((a, b) => a - b);
  const wanted = list.length === 1 ? `${list[0]}` : `${list.slice(0, -1).join(', ')} or ${list[list.length - 1]}`;
  const noun = list.length === 1 && list[0] === 1 ? 'argument' : 'arguments';
  return ctx.fail(`${name}() takes ${wanted} ${noun}, got ${count}`, loc);
}

/** An optional per-item argument left out: the items themselves are the values (`[1, 2].sum()`). */
function itemsAsValues(
  ctx: CheckContext,
  node: MethodCallNode,
  param: ParamSpec,
  receiver: PqlType,
  elem: PqlType,
  loc: Location,
): void {
  if (elem.kind === 'object') {
    ctx.fail(
      `${node.name}() over ${ctx.describe(node.object, receiver)} needs the path of a ${param.type} field of each item, e.g. ${node.name}(${exampleField(elem, param.type) ?? 'field'})`,
      loc,
    );
  }
  if (!typeFits(elem, param.type, ANY)) {
    ctx.fail(
      `${node.name}() without an argument needs an array of ${param.type}, but ${ctx.describe(node.object, receiver)} is not one`,
      loc,
    );
  }
}

function exampleField(obj: Extract<PqlType, { kind: 'object' }>, kind: TypeSpec): string | undefined {
  return Object.keys(obj.fields).find((k) => obj.fields[k]?.kind === kind);
}

function typeFits(t: PqlType, spec: TypeSpec, elem: PqlType): boolean {
  if (t.kind === 'any' || spec === 'any' || spec === 'T') return true;
  switch (spec) {
    case 'ordered':
      return t.kind === 'number' || t.kind === 'string' || t.kind === 'datetime';
    case 'elem':
      return comparisonError(elem, t, '=') === undefined;
    case 'array<elem>':
      return t.kind === 'array' && comparisonError(elem, t.of, '=') === undefined;
    case 'array<string>':
      return t.kind === 'array' && (t.of.kind === 'string' || t.of.kind === 'any');
    default:
      return t.kind === spec;
  }
}

function specToString(spec: TypeSpec, elem: PqlType): string {
  switch (spec) {
    case 'ordered':
      return 'number, string or datetime';
    case 'elem':
      return typeToString(elem);
    case 'array<elem>':
      return `array<${typeToString(elem)}>`;
    default:
      return spec;
  }
}

function checkArgType(
  ctx: CheckContext,
  fn: string,
  param: ParamSpec,
  index: number,
  arg: ExpressionNode,
  type: PqlType,
  elem: PqlType,
): void {
  if (typeFits(type, param.type, elem)) return;
  if (param.name === 'condition' && type.kind === 'array') {
    ctx.nonEmpty.add(arg.kind === 'Lambda' ? arg.body : arg);
    return;
  }
  ctx.fail(
    `argument ${index + 1} (${param.name}) of ${fn}() must be ${specToString(param.type, elem)}, found ${ctx.describe(arg, type)}`,
    arg.loc,
  );
}

/**
 * Checks a literal-only parameter. Returns the group count of a regex just checked, so a
 * following group number can be bounded by it.
 */
function checkLiteral(
  ctx: CheckContext,
  fn: string,
  param: ParamSpec,
  arg: ExpressionNode,
  groups: number | undefined,
): number | undefined {
  if (!param.literal) return groups;
  if (param.literal === 'count') {
    const n = arg.kind === 'Literal' ? arg.value : undefined;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
      ctx.fail(`${param.name} of ${fn}() must be a whole number literal (0 or more)`, arg.loc);
    }
    if (groups !== undefined && n > groups) {
      ctx.fail(`${fn}() asks for group ${n}, but the regular expression has ${groups} group(s)`, arg.loc);
    }
    return groups;
  }
  const text = stringLiteral(ctx, fn, param, arg);
  if (param.literal !== 'regex') return groups;
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(text);
  } catch (e) {
    return ctx.fail(`invalid regular expression "${text}": ${(e as Error).message}`, arg.loc);
  }
  const tooComplex = regexTooComplex(text, compiled);
  if (tooComplex) ctx.fail(tooComplex, arg.loc);
  return compiled.groupCount();
}

function stringLiteral(ctx: CheckContext, fn: string, param: ParamSpec, arg: ExpressionNode): string {
  if (arg.kind === 'Literal' && typeof arg.value === 'string') return arg.value;
  return ctx.fail(`${param.name} of ${fn}() must be a string literal`, arg.loc);
}

function resultType(spec: TypeSpec, elem: PqlType, receiver: PqlType): PqlType {
  switch (spec) {
    case 'elem':
      return elem;
    case 'array<elem>':
      return receiver.kind === 'array' ? receiver : { kind: 'array', of: elem };
    case 'array<string>':
      return { kind: 'array', of: STRING };
    case 'string':
      return STRING;
    case 'number':
      return NUMBER;
    case 'boolean':
      return BOOLEAN;
    case 'datetime':
      return DATETIME;
    default:
      return ANY;
  }
}

export function checkCall(ctx: CheckContext, node: CallNode, scope: Scope): PqlType {
  const nameLoc = { ...node.loc, length: node.name.length };
  // The body of a map lambda is checked by collection-forms.ts; anywhere else it means nothing.
  if (node.name === 'mapEntry') {
    ctx.fail(
      'mapEntry(key, value) is one entry of a map: it can only be the body of a map lambda, e.g. xEvent.map(e => mapEntry(e.commerce.order.purchaseID, e.timestamp))',
      nameLoc,
    );
  }
  const sig = FUNCTIONS.get(node.name);
  if (!sig) {
    const hint = METHODS.has(node.name) ? `: ${node.name} is a method, write value.${node.name}(...)` : '';
    ctx.fail(`unknown function ${node.name}()${hint}`, nameLoc);
  }
  const params = checkArity(ctx, node.name, sig.overloads, node.args.length, nameLoc);
  const types = node.args.map((arg, i) => {
    const type = ctx.check(arg, scope);
    checkArgType(ctx, node.name, params[i]!, i, arg, type, ANY);
    checkLiteral(ctx, node.name, params[i]!, arg, undefined);
    return type;
  });
  if (sig.dateLiteral) checkDateLiteral(ctx, node, sig.dateLiteral);
  const first = node.args[0];
  if (node.name === 'inSegment' && first?.kind === 'Literal') checkInSegment(ctx, String(first.value), first);
  if (sig.result !== 'T') return resultType(sig.result, ANY, ANY);
  // `if(c, a, b)`: the branches must agree, and their common type is the result.
  let result: PqlType | undefined = types[1]!;
  node.args.slice(2).forEach((arg, i) => {
    const common = unify(result!, types[i + 2]!);
    if (!common) {
      ctx.fail(
        `the branches of ${node.name}() must have one type, found ${typeToString(result!)} and ${ctx.describe(arg, types[i + 2]!)}`,
        arg.loc,
      );
    }
    result = common;
  });
  return result;
}

function literalNumber(node: ExpressionNode): number | undefined {
  if (node.kind === 'Literal' && typeof node.value === 'number') return node.value;
  if (node.kind === 'Negate') {
    const n = literalNumber(node.operand);
    return n === undefined ? undefined : -n;
  }
  return undefined;
}

/** `date(y, m, d)`, `date("YYYY-MM-DD")`, `datetime("ISO")` are literals (docs/pql.md §2): a real day or instant. */
function checkDateLiteral(ctx: CheckContext, node: CallNode, kind: 'date' | 'datetime'): void {
  if (node.args.length === 3) {
    const [y, m, d] = node.args.map((arg) => {
      const n = literalNumber(arg);
      if (n === undefined) ctx.fail('date(year, month, day) takes number literals, e.g. date(2024, 3, 14)', arg.loc);
      return n;
    }) as [number, number, number];
    if (!Number.isInteger(y) || y < 0 || y > 9999) ctx.fail(`invalid date: year ${y} is not 0–9999`, node.args[0]!.loc);
    if (!Number.isInteger(m) || m < 1 || m > 12) ctx.fail(`invalid date: month ${m} is not 1–12`, node.args[1]!.loc);
    if (parseDate(y, m, d) === undefined) {
      ctx.fail(`invalid date: day ${d} does not exist in ${y}-${String(m).padStart(2, '0')}`, node.args[2]!.loc);
    }
    return;
  }
  const arg = node.args[0]!;
  if (arg.kind !== 'Literal' || typeof arg.value !== 'string') {
    ctx.fail(
      `${kind}() takes a string literal, e.g. ${kind === 'date' ? 'date("2024-03-14")' : 'datetime("2024-03-14T10:00:00Z")'}`,
      arg.loc,
    );
  }
  const text = arg.value;
  if (kind === 'date') {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(text) || parseIsoDatetime(text) === undefined) {
      ctx.fail(`invalid date "${text}": expected an existing day as YYYY-MM-DD`, arg.loc);
    }
  } else if (parseIsoDatetime(text) === undefined) {
    ctx.fail(
      `invalid datetime "${text}": expected ISO-8601 such as 2024-03-14T10:00:00Z (or with an offset, +01:00)`,
      arg.loc,
    );
  }
}

function checkInSegment(ctx: CheckContext, ref: string, arg: ExpressionNode): void {
  const { resolveAudience, audienceDependencies, selfAudienceId } = ctx.options;
  const audience = resolveAudience?.(ref);
  if (!audience) ctx.fail(`unknown audience "${ref}": no audience has this id or name`, arg.loc);
  if (selfAudienceId !== undefined) {
    const cycle =
      audience.id === selfAudienceId ? [selfAudienceId] : pathTo(audience.id, selfAudienceId, audienceDependencies);
    if (cycle) {
      const name = (id: number) =>
        id === audience.id
          ? audience.name
          : (resolveAudience?.(String(id))?.name ?? (id === selfAudienceId ? 'this audience' : `audience ${id}`));
      const names = [selfAudienceId, ...cycle].map(name);
      ctx.fail(`inSegment("${ref}") makes a cycle of audiences: ${names.join(' → ')}`, arg.loc);
    }
  }
  ctx.audiences.set(ref, audience.id);
  ctx.resolvedAudiences.set(ref, audience);
  if (!ctx.referencedAudiences.includes(audience.id)) ctx.referencedAudiences.push(audience.id);
}

/** The audiences from `from` to `to` following dependencies (both ends included), or undefined. */
function pathTo(from: number, to: number, deps: ((id: number) => number[]) | undefined): number[] | undefined {
  if (!deps) return undefined;
  const parent = new Map<number, number | null>([[from, null]]);
  const queue = [from];
  while (queue.length > 0) {
    const id = queue.shift()!;
    if (id === to) {
      const path: number[] = [];
      for (let at: number | null | undefined = id; at != null; at = parent.get(at)) path.unshift(at);
      return path;
    }
    for (const next of deps(id)) {
      if (!parent.has(next)) {
        parent.set(next, id);
        queue.push(next);
      }
    }
  }
  return undefined;
}
