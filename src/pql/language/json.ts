import type { BindingNode, ChainStepNode, ExpressionNode, Location, OccursTail } from './ast.js';
import { PqlError } from './errors.js';
import { MAX_TREE_HEIGHT, parse } from './parser.js';
import { print } from './printer.js';
import {
  AGGREGATE_FNS,
  ARITHMETIC_OPS,
  COMPARE_OPS,
  isAggregateFn,
  isArithmeticOp,
  isCompareOp,
  isOccursDirection,
  isPeriod,
  isTimeUnit,
  isTimeWord,
  OCCURS_DIRECTIONS,
  PERIODS,
  QUANTIFIERS,
  TIME_UNITS,
  TIME_WORDS,
  type TimeWord,
} from './vocabulary.js';

/**
 * The `pql/json` form of docs/pql.md §9: the syntax tree as four JSON node types. The mapping is
 * one-to-one with the AST (text → JSON → text gives the same text), so it stays syntactic:
 *
 * | AST | JSON |
 * | --- | --- |
 * | `Literal` | `literal`, `literalType` `String` / `Number` / `Boolean` / `Null` |
 * | `TimeWord` `now` | `literal`, `literalType: 'TimeWord'`, `value: 'now'` |
 * | `ArrayLiteral` | `literal`, `literalType: 'List'`, `value`: the element nodes |
 * | `Identifier` `x` | `fieldLookup` `x` with `object: null` (resolved by scope, like the text) |
 * | `Member` `a.x` | `fieldLookup` `x` with `object` a |
 * | `Parameter` `$1` | `parameterReference` `position: 1` |
 * | operators | `fnApply` `and` `or` `not` `=` `!=` `<` `<=` `>` `>=` `+` `-` `*` `/` `%` `negate` `in` `notIn` `like` (params value, String pattern) |
 * | `xEvent` / `^^.x` / `a[c]` | `fnApply` `xEvent` (no params) / `^` (Number depth, String name) / `[]` (a, c) |
 * | `a.m(x)` | `fnApply` `.m` (a, x): the dot keeps methods apart from calls |
 * | `f(x)` | `fnApply` `f` (x); a function whose name is one of these fnNames, `call`, or starts with `.`, is `call` (String name, x) |
 * | `t occurs tail` | `occurs` (t, tail), tail one of: `relative` (String op or Null when not written, Number amount, String unit, String before/after/from, ref), `before`/`after` (ref), `on` (ref, Boolean written), `this`/`last`/`next` (String unit), `between` (a, b) |
 * | quantifiers | `exists`/`forall` (binding…, body), `select` (binding, body), `sum`/`count`/`average`/`min`/`max` (value, binding, body), binding = `from` (String name, source) |
 * | `let V = (e) in (b)` | `let` (String V, e, b) |
 * | `CHAIN(src, ts, [A: WHAT(c) WHEN(w)])` | `chain` (src, String ts, step…), step = `step` (String label, c[, w]) |
 */
export type PqlJson =
  | { nodeType: 'fnApply'; fnName: string; params: PqlJson[] }
  | { nodeType: 'fieldLookup'; fieldName: string; object: PqlJson | null }
  | { nodeType: 'parameterReference'; position: number }
  | { nodeType: 'literal'; literalType: 'String'; value: string }
  | { nodeType: 'literal'; literalType: 'Number'; value: number }
  | { nodeType: 'literal'; literalType: 'Boolean'; value: boolean }
  | { nodeType: 'literal'; literalType: 'Null'; value: null }
  | { nodeType: 'literal'; literalType: 'TimeWord'; value: TimeWord }
  | { nodeType: 'literal'; literalType: 'List'; value: PqlJson[] };

/** fnNames with a meaning of their own; a call of a function with one of these names goes through `call`. */
const RESERVED_FN_NAMES: ReadonlySet<string> = new Set([
  'and',
  'or',
  'not',
  ...COMPARE_OPS,
  ...ARITHMETIC_OPS,
  'negate',
  'in',
  'notIn',
  'like',
  'occurs',
  'xEvent',
  '^',
  '[]',
  ...QUANTIFIERS,
  'select',
  ...AGGREGATE_FNS,
  'let',
  'chain',
  'call',
]);

const fn = (fnName: string, ...params: PqlJson[]): PqlJson => ({ nodeType: 'fnApply', fnName, params });
const str = (value: string): PqlJson => ({ nodeType: 'literal', literalType: 'String', value });
const num = (value: number): PqlJson => ({ nodeType: 'literal', literalType: 'Number', value });

/** The `pql/json` form of a tree (see `PqlJson` for the mapping). */
export function toJson(node: ExpressionNode): PqlJson {
  switch (node.kind) {
    case 'Literal': {
      const { value } = node;
      if (typeof value === 'string') return str(value);
      if (typeof value === 'number') return num(value);
      if (typeof value === 'boolean') return { nodeType: 'literal', literalType: 'Boolean', value };
      return { nodeType: 'literal', literalType: 'Null', value: null };
    }
    case 'TimeWord':
      return { nodeType: 'literal', literalType: 'TimeWord', value: node.word };
    case 'ArrayLiteral':
      return { nodeType: 'literal', literalType: 'List', value: node.elements.map(toJson) };
    case 'Identifier':
      return { nodeType: 'fieldLookup', fieldName: node.name, object: null };
    case 'Member':
      return { nodeType: 'fieldLookup', fieldName: node.name, object: toJson(node.object) };
    case 'Parameter':
      return { nodeType: 'parameterReference', position: node.position };
    case 'XEvent':
      return fn('xEvent');
    case 'ParentField':
      return fn('^', num(node.depth), str(node.name));
    case 'Filter':
      return fn('[]', toJson(node.object), toJson(node.predicate));
    case 'MethodCall':
      return fn(`.${node.name}`, toJson(node.object), ...node.args.map(toJson));
    case 'Call':
      return RESERVED_FN_NAMES.has(node.name) || node.name.startsWith('.')
        ? fn('call', str(node.name), ...node.args.map(toJson))
        : fn(node.name, ...node.args.map(toJson));
    case 'Logical':
    case 'Compare':
    case 'Arithmetic':
      return fn(node.op, toJson(node.left), toJson(node.right));
    case 'Not':
      return fn('not', toJson(node.operand));
    case 'Negate':
      return fn('negate', toJson(node.operand));
    case 'In':
      return fn(node.negated ? 'notIn' : 'in', toJson(node.value), toJson(node.list));
    case 'Like':
      return fn('like', toJson(node.value), str(node.pattern));
    case 'Occurs':
      return fn('occurs', toJson(node.subject), tailToJson(node.tail));
    case 'Quantified':
      return fn(node.quantifier, ...node.bindings.map(bindingToJson), toJson(node.body));
    case 'Select':
      return fn('select', bindingToJson(node.binding), toJson(node.body));
    case 'Aggregate':
      return fn(node.fn, toJson(node.value), bindingToJson(node.binding), toJson(node.body));
    case 'Let':
      return fn('let', str(node.name), toJson(node.value), toJson(node.body));
    case 'Chain':
      return fn('chain', toJson(node.source), str(node.timeField), ...node.steps.map(stepToJson));
  }
}

function bindingToJson(binding: BindingNode): PqlJson {
  return fn('from', str(binding.name), toJson(binding.source));
}

function stepToJson(step: ChainStepNode): PqlJson {
  const params = [str(step.label), toJson(step.what)];
  if (step.where === undefined && step.count === undefined) {
    return fn('step', ...params, ...(step.when ? [tailToJson(step.when)] : []));
  }
  // WHERE and COUNT follow the WHEN position, which is a Null literal when there is none.
  const none: PqlJson = { nodeType: 'literal', literalType: 'Null', value: null };
  return fn(
    'step',
    ...params,
    step.when ? tailToJson(step.when) : none,
    step.where ? toJson(step.where) : none,
    step.count !== undefined ? num(step.count) : none,
  );
}

function tailToJson(tail: OccursTail): PqlJson {
  switch (tail.form) {
    case 'relative': {
      const op: PqlJson = tail.explicitOp ? str(tail.op) : { nodeType: 'literal', literalType: 'Null', value: null };
      return fn('relative', op, num(tail.amount), str(tail.unit), str(tail.direction), toJson(tail.ref));
    }
    case 'beforeAfter':
      return fn(tail.direction, toJson(tail.ref));
    case 'on':
      return fn('on', toJson(tail.ref), { nodeType: 'literal', literalType: 'Boolean', value: tail.explicitOn });
    case 'period':
      return fn(tail.which, str(tail.unit));
    case 'between':
      return fn('between', toJson(tail.from), toJson(tail.to));
  }
}

const NO_LOC: Location = { offset: 0, length: 0, line: 1, column: 1 };
const loc = (): Location => ({ ...NO_LOC });

/**
 * Reads the `pql/json` form back into a tree. Anything malformed (wrong shape, unknown
 * fnName, wrong parameter count, a tree that has no text form) throws `PqlError`
 * `PQL_SYNTAX_ERROR` naming the JSON path of the bad node; nodes get the empty location.
 */
export function fromJson(json: unknown): ExpressionNode {
  const node = new JsonReader().expression(json, '$', 0);
  // The checks above follow the node shapes; this one catches what only the grammar knows
  // (nesting limits, an aggregate value that would need parentheses, …).
  let reparsed: ExpressionNode;
  try {
    reparsed = parse(print(node));
  } catch (error) {
    throw invalid('$', `the tree has no PQL text form (${error instanceof Error ? error.message : String(error)})`);
  }
  if (JSON.stringify(withoutLoc(reparsed)) !== JSON.stringify(withoutLoc(node))) {
    throw invalid('$', 'the tree has no PQL text form (it would not parse back to the same tree)');
  }
  return node;
}

function withoutLoc(node: ExpressionNode): unknown {
  return JSON.parse(JSON.stringify(node, (key, value) => (key === 'loc' ? undefined : value)));
}

function invalid(path: string, message: string): PqlError {
  return new PqlError('PQL_SYNTAX_ERROR', `Invalid pql/json at ${path}: ${message}`, '', loc());
}

type JsonObject = Record<string, unknown>;

class JsonReader {
  expression(json: unknown, path: string, depth: number): ExpressionNode {
    if (depth > MAX_TREE_HEIGHT) throw invalid(path, `nodes nest more than ${MAX_TREE_HEIGHT} deep`);
    const o = this.object(json, path);
    switch (o.nodeType) {
      case 'literal':
        return this.literal(o, path, depth);
      case 'fieldLookup': {
        this.keys(o, path, ['fieldName', 'object']);
        const name = this.name(o.fieldName, `${path}.fieldName`);
        if (o.object === null) return { kind: 'Identifier', name, loc: loc() };
        return { kind: 'Member', object: this.expression(o.object, `${path}.object`, depth + 1), name, loc: loc() };
      }
      case 'parameterReference': {
        this.keys(o, path, ['position']);
        const position = o.position;
        if (typeof position !== 'number' || !Number.isSafeInteger(position) || position < 0) {
          throw invalid(`${path}.position`, 'expected a non-negative integer');
        }
        return { kind: 'Parameter', position, loc: loc() };
      }
      case 'fnApply':
        return this.fnApply(o, path, depth);
      default:
        throw invalid(`${path}.nodeType`, 'expected "fnApply", "fieldLookup", "parameterReference" or "literal"');
    }
  }

  private literal(o: JsonObject, path: string, depth: number): ExpressionNode {
    this.keys(o, path, ['literalType', 'value']);
    const { literalType, value } = o;
    const at = `${path}.value`;
    switch (literalType) {
      case 'String':
        return { kind: 'Literal', value: this.string(value, at), loc: loc() };
      case 'Number':
        return { kind: 'Literal', value: this.number(value, at), loc: loc() };
      case 'Boolean':
        if (typeof value !== 'boolean') throw invalid(at, 'expected a boolean');
        return { kind: 'Literal', value, loc: loc() };
      case 'Null':
        if (value !== null) throw invalid(at, 'expected null');
        return { kind: 'Literal', value: null, loc: loc() };
      case 'TimeWord':
        return { kind: 'TimeWord', word: this.oneOf(value, at, TIME_WORDS, isTimeWord), loc: loc() };
      case 'List': {
        if (!Array.isArray(value)) throw invalid(at, 'expected an array of nodes');
        const elements = value.map((element, i) => this.expression(element, `${at}[${i}]`, depth + 1));
        return { kind: 'ArrayLiteral', elements, loc: loc() };
      }
      default:
        throw invalid(`${path}.literalType`, 'expected "String", "Number", "Boolean", "Null", "TimeWord" or "List"');
    }
  }

  private fnApply(o: JsonObject, path: string, depth: number): ExpressionNode {
    this.keys(o, path, ['fnName', 'params']);
    const fnName = this.string(o.fnName, `${path}.fnName`);
    if (!Array.isArray(o.params)) throw invalid(`${path}.params`, 'expected an array');
    const params: unknown[] = o.params;
    const at = (i: number) => `${path}.params[${i}]`;
    const count = (min: number, max = min) => {
      if (params.length < min || params.length > max) {
        const wanted = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
        throw invalid(`${path}.params`, `"${fnName}" takes ${wanted} parameters, got ${params.length}`);
      }
    };
    const expr = (i: number) => this.expression(params[i], at(i), depth + 1);
    const exprs = (from: number) => params.slice(from).map((_, i) => expr(from + i));

    if (fnName.startsWith('.')) {
      count(1, Infinity);
      const name = this.name(fnName.slice(1), `${path}.fnName`);
      return { kind: 'MethodCall', object: expr(0), name, args: exprs(1), loc: loc() };
    }
    switch (fnName) {
      case 'and':
      case 'or':
        count(2);
        return { kind: 'Logical', op: fnName, left: expr(0), right: expr(1), loc: loc() };
      case 'not':
        count(1);
        return { kind: 'Not', operand: expr(0), loc: loc() };
      case 'negate':
        count(1);
        return { kind: 'Negate', operand: expr(0), loc: loc() };
      case 'in':
      case 'notIn':
        count(2);
        return { kind: 'In', negated: fnName === 'notIn', value: expr(0), list: expr(1), loc: loc() };
      case 'like':
        count(2);
        return { kind: 'Like', value: expr(0), pattern: this.stringLiteral(params[1], at(1)), loc: loc() };
      case 'occurs':
        count(2);
        return { kind: 'Occurs', subject: expr(0), tail: this.tail(params[1], at(1), depth + 1), loc: loc() };
      case 'xEvent':
        count(0);
        return { kind: 'XEvent', loc: loc() };
      case '^': {
        count(2);
        const parentDepth = this.numberLiteral(params[0], at(0));
        if (!Number.isSafeInteger(parentDepth) || parentDepth < 1)
          throw invalid(at(0), 'expected a depth of 1 or more');
        return {
          kind: 'ParentField',
          depth: parentDepth,
          name: this.name(this.stringLiteral(params[1], at(1)), at(1)),
          loc: loc(),
        };
      }
      case '[]':
        count(2);
        return { kind: 'Filter', object: expr(0), predicate: expr(1), loc: loc() };
      case 'exists':
      case 'forall': {
        count(2, Infinity);
        const bindings = params.slice(0, -1).map((p, i) => this.binding(p, at(i), depth + 1));
        return { kind: 'Quantified', quantifier: fnName, bindings, body: expr(params.length - 1), loc: loc() };
      }
      case 'select':
        count(2);
        return { kind: 'Select', binding: this.binding(params[0], at(0), depth + 1), body: expr(1), loc: loc() };
      case 'let':
        count(3);
        return {
          kind: 'Let',
          name: this.name(this.stringLiteral(params[0], at(0)), at(0)),
          value: expr(1),
          body: expr(2),
          loc: loc(),
        };
      case 'chain': {
        count(3, Infinity);
        const source = expr(0);
        const timeField = this.name(this.stringLiteral(params[1], at(1)), at(1));
        const steps = params.slice(2).map((p, i) => this.step(p, at(i + 2), depth + 1));
        return { kind: 'Chain', source, timeField, steps, loc: loc() };
      }
      case 'call': {
        count(1, Infinity);
        const name = this.name(this.stringLiteral(params[0], at(0)), at(0));
        if (!RESERVED_FN_NAMES.has(name) && !name.startsWith('.')) {
          throw invalid(at(0), `write a call of "${name}" as fnName "${name}"; "call" is only for reserved names`);
        }
        return { kind: 'Call', name, args: exprs(1), loc: loc() };
      }
    }
    if (isCompareOp(fnName)) {
      count(2);
      return { kind: 'Compare', op: fnName, left: expr(0), right: expr(1), loc: loc() };
    }
    if (isArithmeticOp(fnName)) {
      count(2);
      return { kind: 'Arithmetic', op: fnName, left: expr(0), right: expr(1), loc: loc() };
    }
    if (isAggregateFn(fnName)) {
      count(3);
      const value = expr(0);
      const binding = this.binding(params[1], at(1), depth + 1);
      return { kind: 'Aggregate', fn: fnName, value, binding, body: expr(2), loc: loc() };
    }
    return { kind: 'Call', name: this.name(fnName, `${path}.fnName`), args: exprs(0), loc: loc() };
  }

  private binding(json: unknown, path: string, depth: number): BindingNode {
    const [name, source] = this.special(json, path, ['from'], 2, 2);
    return {
      kind: 'Binding',
      name: this.name(this.stringLiteral(name, `${path}.params[0]`), `${path}.params[0]`),
      source: this.expression(source, `${path}.params[1]`, depth + 1),
      loc: loc(),
    };
  }

  private step(json: unknown, path: string, depth: number): ChainStepNode {
    const params = this.special(json, path, ['step'], 2, 5);
    const at = (i: number) => `${path}.params[${i}]`;
    const given = (i: number) => {
      const p = params[i] as { nodeType?: unknown; literalType?: unknown } | undefined;
      return p !== undefined && !(p.nodeType === 'literal' && p.literalType === 'Null');
    };
    let count: number | undefined;
    if (given(4)) {
      const c = params[4] as { nodeType?: unknown; literalType?: unknown; value?: unknown };
      if (
        c.nodeType !== 'literal' ||
        c.literalType !== 'Number' ||
        !Number.isInteger(c.value) ||
        (c.value as number) < 1
      ) {
        throw invalid(at(4), 'expected a Number literal: a whole number of events, at least 1');
      }
      count = c.value as number;
    }
    return {
      kind: 'ChainStep',
      label: this.name(this.stringLiteral(params[0], at(0)), at(0)),
      what: this.expression(params[1], at(1), depth + 1),
      ...(given(3) ? { where: this.expression(params[3], at(3), depth + 1) } : {}),
      ...(count === undefined ? {} : { count }),
      when: given(2) ? this.tail(params[2], at(2), depth + 1) : null,
      loc: loc(),
    };
  }

  private tail(json: unknown, path: string, depth: number): OccursTail {
    const forms = ['relative', 'before', 'after', 'on', ...PERIODS, 'between'];
    const o = this.object(json, path);
    const form = o.nodeType === 'fnApply' ? this.oneOf(o.fnName, `${path}.fnName`, forms) : undefined;
    const arities: Record<string, number> = { relative: 5, on: 2, between: 2 };
    const arity = arities[form ?? ''] ?? 1;
    const params = this.special(json, path, forms, arity, arity);
    const at = (i: number) => `${path}.params[${i}]`;
    const ref = (i: number) => this.expression(params[i], at(i), depth + 1);
    switch (form) {
      case 'relative': {
        const op = params[0] as JsonObject | null;
        const explicitOp = !(op?.nodeType === 'literal' && op.literalType === 'Null' && op.value === null);
        const amount = this.numberLiteral(params[1], at(1));
        return {
          form,
          op: explicitOp ? this.oneOf(this.stringLiteral(op, at(0)), at(0), COMPARE_OPS, isCompareOp) : '=',
          explicitOp,
          amount,
          unit: this.oneOf(this.stringLiteral(params[2], at(2)), at(2), TIME_UNITS, isTimeUnit),
          direction: this.oneOf(this.stringLiteral(params[3], at(3)), at(3), OCCURS_DIRECTIONS, isOccursDirection),
          ref: ref(4),
          loc: loc(),
        };
      }
      case 'before':
      case 'after':
        return { form: 'beforeAfter', direction: form, ref: ref(0), loc: loc() };
      case 'on': {
        const written = this.object(params[1], at(1));
        if (written.nodeType !== 'literal' || written.literalType !== 'Boolean' || typeof written.value !== 'boolean') {
          throw invalid(at(1), 'expected a Boolean literal (whether "on" was written)');
        }
        this.keys(written, at(1), ['literalType', 'value']);
        return { form: 'on', explicitOn: written.value, ref: ref(0), loc: loc() };
      }
      case 'between':
        return { form: 'between', from: ref(0), to: ref(1), loc: loc() };
      default: {
        if (!form || !isPeriod(form)) throw invalid(`${path}.fnName`, 'expected an occurs form');
        const unit = this.oneOf(this.stringLiteral(params[0], at(0)), at(0), TIME_UNITS, isTimeUnit);
        return { form: 'period', which: form, unit, loc: loc() };
      }
    }
  }

  /** The params of an `fnApply` that is not an expression (a binding, a step, an occurs tail). */
  private special(json: unknown, path: string, fnNames: string[], min: number, max: number): unknown[] {
    const o = this.object(json, path);
    if (o.nodeType !== 'fnApply') throw invalid(`${path}.nodeType`, 'expected "fnApply"');
    this.keys(o, path, ['fnName', 'params']);
    this.oneOf(o.fnName, `${path}.fnName`, fnNames);
    if (!Array.isArray(o.params) || o.params.length < min || o.params.length > max) {
      throw invalid(`${path}.params`, `expected an array of ${min === max ? min : `${min} to ${max}`} nodes`);
    }
    return o.params;
  }

  private object(json: unknown, path: string): JsonObject {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid(path, 'expected a node object');
    return json as JsonObject;
  }

  private keys(o: JsonObject, path: string, allowed: string[]): void {
    for (const key of Object.keys(o)) {
      if (key !== 'nodeType' && !allowed.includes(key)) throw invalid(path, `unexpected property "${key}"`);
    }
  }

  private string(value: unknown, path: string): string {
    if (typeof value !== 'string') throw invalid(path, 'expected a string');
    return value;
  }

  private number(value: unknown, path: string): number {
    // Negative numbers are `negate` of a literal, as in the text; -0 has no text form either.
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || Object.is(value, -0)) {
      throw invalid(path, 'expected a finite non-negative number (write -5 as negate of 5)');
    }
    return value;
  }

  private stringLiteral(json: unknown, path: string): string {
    const o = this.object(json, path);
    if (o.nodeType !== 'literal' || o.literalType !== 'String') throw invalid(path, 'expected a String literal');
    this.keys(o, path, ['literalType', 'value']);
    return this.string(o.value, `${path}.value`);
  }

  private numberLiteral(json: unknown, path: string): number {
    const o = this.object(json, path);
    if (o.nodeType !== 'literal' || o.literalType !== 'Number') throw invalid(path, 'expected a Number literal');
    this.keys(o, path, ['literalType', 'value']);
    return this.number(o.value, `${path}.value`);
  }

  /** `value` when it is one of `allowed`; `is` (the vocabulary's guard) narrows the result to its type. */
  private oneOf<T extends string = string>(
    value: unknown,
    path: string,
    allowed: readonly string[],
    is: (s: string) => s is T = (s): s is T => allowed.includes(s),
  ): T {
    if (typeof value !== 'string' || !is(value)) {
      throw invalid(path, `expected one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
    }
    return value;
  }

  /** A name the text can spell: anything but empty or containing a line break (back-quotes cover the rest). */
  private name(value: unknown, path: string): string {
    const name = this.string(value, path);
    if (name === '' || /[\n\r]/.test(name)) throw invalid(path, 'expected a non-empty name without line breaks');
    return name;
  }
}
