import { FUNCTIONS, METHODS } from '../check/functions.js';
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
 * The `pql/json` form of docs/pql.md §9: the syntax tree as four JSON node types, written the way
 * the commercial documentation's trees are (its segment conversion example), and read in the
 * looser form its source-filter examples use too. It stays syntactic; the one thing it resolves is
 * whether a bare name reads the profile (`NameScope`), because the documentation writes such a
 * name as a lookup on `parameterReference` 1. So `$1.x` and a bare profile field `x` have one JSON
 * form, read back as `x`; otherwise text → JSON → text gives the same text.
 *
 * | AST | JSON |
 * | --- | --- |
 * | `Literal` | `literal`, `literalType` `String` / `Number` / `Boolean` / `Null` (read: also no `literalType`, typed by the value) |
 * | `TimeWord` `now` | `literal`, `literalType: 'TimeWord'`, `value: 'now'` |
 * | `ArrayLiteral` | `literal`, `literalType: 'List'`, `value`: the element nodes (read: also an untyped array of values) |
 * | `Identifier` `x`, a profile field | `fieldLookup` `x` with `object` `{ nodeType: 'parameterReference', position: 1 }` |
 * | `Identifier` `x`, a variable or an item's field | `fieldLookup` `x` with no `object` (read: also `object: null`, our earlier form) |
 * | `Member` `a.x` | `fieldLookup` `x` with `object` a |
 * | `Parameter` `$1` | `parameterReference` `position: 1` |
 * | operators | `fnApply` `and` `or` `not` `=` `!=` `<` `<=` `>` `>=` `+` `-` `*` `/` `%` `negate` `in` `notIn` `like` (params value, String pattern); read: `and`/`or` with one or more params, `AND`/`OR`/`NOT` in any case |
 * | `xEvent` / `^^.x` / `a[c]` | `fnApply` `xEvent` (no params) / `^` (Number depth, String name) / `[]` (a, c) |
 * | `a.m(x)` | `fnApply` `.m` (a, x): the dot keeps methods apart from calls; read: also `m` (a, x) for a method that is not a function (`isNull`) |
 * | `f(x)` | `fnApply` `f` (x); a function whose name is one of these fnNames, `call`, a method's, or starts with `.`, is `call` (String name, x) |
 * | `t occurs tail` | `occurs` (t, tail), tail one of: `relative` (String op or Null when not written, Number amount, String unit, String before/after/from, ref), `before`/`after` (ref), `on` (ref, Boolean written), `this`/`last`/`next` (String unit), `between` (a, b) |
 * | quantifiers | `exists`/`forall` (binding…, body), `select` (binding, body), `sum`/`count`/`average`/`min`/`max` (value, binding, body), binding = `from` (String name, source) |
 * | `let V = (e) in (b)` | `let` (String V, e, b) |
 * | `CHAIN(src, ts, [A: WHAT(c) WHEN(w)])` | `chain` (src, String ts, step…), step = `step` (String label, c[, w]) |
 * | `x => body` (a per-item argument) | `lambda` (String x, body) |
 */
export type PqlJson =
  | { nodeType: 'fnApply'; fnName: string; params: PqlJson[] }
  | { nodeType: 'fieldLookup'; fieldName: string; object?: PqlJson | null }
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
  'lambda',
  'call',
]);

const fn = (fnName: string, ...params: PqlJson[]): PqlJson => ({ nodeType: 'fnApply', fnName, params });
const str = (value: string): PqlJson => ({ nodeType: 'literal', literalType: 'String', value });
const num = (value: number): PqlJson => ({ nodeType: 'literal', literalType: 'Number', value });

/**
 * Which bare names read the profile: at the top (and in quantifier and `let` bodies) a bare name
 * is a field of the profile, the documentation's "implicit reference to the first parameter";
 * inside a filter, a per-item argument or a CHAIN step it is a field of the item; a name bound by
 * a quantifier, `let` or a CHAIN label is a variable. The JSON form spells a profile field as a
 * lookup on `parameterReference` 1, as the documentation's trees do, so both directions track it.
 */
interface NameScope {
  profile: boolean;
  bound: ReadonlySet<string>;
}

const TOP: NameScope = { profile: true, bound: new Set() };
const itemsOf = (scope: NameScope): NameScope => ({ profile: false, bound: scope.bound });
const binding = (scope: NameScope, name: string): NameScope => ({ ...scope, bound: new Set([...scope.bound, name]) });
/** Whether a bare `name` here is a field of the profile (so `$1.name` and `name` are one thing). */
const readsProfile = (scope: NameScope, name: string): boolean => scope.profile && !scope.bound.has(name);

/** Whether argument `i` of method `name` is read once per item, with the item as scope. */
function perItemArgument(name: string, i: number): boolean {
  return name === 'filter' || name === 'map' || name === 'groupBy' || METHODS.get(name)?.params[i]?.perItem === true;
}

/** A name written as a call that would read back as something else (an operator, a method applied as a function). */
function needsCallForm(name: string): boolean {
  return (
    RESERVED_FN_NAMES.has(name) ||
    /^(and|or|not)$/i.test(name) ||
    name.startsWith('.') ||
    (METHODS.has(name) && !FUNCTIONS.has(name))
  );
}

const PROFILE: PqlJson = { nodeType: 'parameterReference', position: 1 };

/** The `pql/json` form of a tree (see `PqlJson` for the mapping). */
export function toJson(node: ExpressionNode): PqlJson {
  return write(node, TOP);
}

function write(node: ExpressionNode, scope: NameScope): PqlJson {
  const w = (child: ExpressionNode) => write(child, scope);
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
      return { nodeType: 'literal', literalType: 'List', value: node.elements.map(w) };
    case 'Identifier':
      return readsProfile(scope, node.name)
        ? { nodeType: 'fieldLookup', fieldName: node.name, object: PROFILE }
        : { nodeType: 'fieldLookup', fieldName: node.name };
    case 'Member':
      return { nodeType: 'fieldLookup', fieldName: node.name, object: w(node.object) };
    case 'Parameter':
      return { nodeType: 'parameterReference', position: node.position };
    case 'XEvent':
      return fn('xEvent');
    case 'ParentField':
      return fn('^', num(node.depth), str(node.name));
    case 'Filter':
      return fn('[]', w(node.object), write(node.predicate, itemsOf(scope)));
    case 'MethodCall':
      return fn(
        `.${node.name}`,
        w(node.object),
        ...node.args.map((arg, i) => write(arg, perItemArgument(node.name, i) ? itemsOf(scope) : scope)),
      );
    case 'Call':
      return needsCallForm(node.name)
        ? fn('call', str(node.name), ...node.args.map(w))
        : fn(node.name, ...node.args.map(w));
    case 'Logical':
    case 'Compare':
    case 'Arithmetic':
      return fn(node.op, w(node.left), w(node.right));
    case 'Not':
      return fn('not', w(node.operand));
    case 'Negate':
      return fn('negate', w(node.operand));
    case 'In':
      return fn(node.negated ? 'notIn' : 'in', w(node.value), w(node.list));
    case 'Like':
      return fn('like', w(node.value), str(node.pattern));
    case 'Occurs':
      return fn('occurs', w(node.subject), tailToJson(node.tail, scope));
    case 'Quantified': {
      let inner = scope;
      const bindings = node.bindings.map((b) => {
        const json = bindingToJson(b, inner);
        inner = binding(inner, b.name);
        return json;
      });
      return fn(node.quantifier, ...bindings, write(node.body, inner));
    }
    case 'Select': {
      const inner = binding(scope, node.binding.name);
      return fn('select', bindingToJson(node.binding, scope), write(node.body, inner));
    }
    case 'Aggregate': {
      const inner = binding(scope, node.binding.name);
      return fn(node.fn, write(node.value, inner), bindingToJson(node.binding, scope), write(node.body, inner));
    }
    case 'Let':
      return fn('let', str(node.name), w(node.value), write(node.body, binding(scope, node.name)));
    case 'Lambda':
      return fn('lambda', str(node.param), write(node.body, binding(scope, node.param)));
    case 'Chain': {
      let labels = scope;
      const steps = node.steps.map((step) => {
        labels = binding(labels, step.label);
        return stepToJson(step, itemsOf(scope), labels);
      });
      return fn('chain', w(node.source), str(node.timeField), ...steps);
    }
  }
}

function bindingToJson(b: BindingNode, scope: NameScope): PqlJson {
  return fn('from', str(b.name), write(b.source, scope));
}

/** `items`: the scope of WHAT and WHERE (the step's event); `labels`: of WHEN (this and earlier labels bound). */
function stepToJson(step: ChainStepNode, items: NameScope, labels: NameScope): PqlJson {
  const params = [str(step.label), write(step.what, items)];
  if (step.where === undefined && step.count === undefined) {
    return fn('step', ...params, ...(step.when ? [tailToJson(step.when, labels)] : []));
  }
  // WHERE and COUNT follow the WHEN position, which is a Null literal when there is none.
  const none: PqlJson = { nodeType: 'literal', literalType: 'Null', value: null };
  return fn(
    'step',
    ...params,
    step.when ? tailToJson(step.when, labels) : none,
    step.where ? write(step.where, items) : none,
    step.count !== undefined ? num(step.count) : none,
  );
}

function tailToJson(tail: OccursTail, scope: NameScope): PqlJson {
  const w = (child: ExpressionNode) => write(child, scope);
  switch (tail.form) {
    case 'relative': {
      const op: PqlJson = tail.explicitOp ? str(tail.op) : { nodeType: 'literal', literalType: 'Null', value: null };
      return fn('relative', op, num(tail.amount), str(tail.unit), str(tail.direction), w(tail.ref));
    }
    case 'beforeAfter':
      return fn(tail.direction, w(tail.ref));
    case 'on':
      return fn('on', w(tail.ref), { nodeType: 'literal', literalType: 'Boolean', value: tail.explicitOn });
    case 'period':
      return fn(tail.which, str(tail.unit));
    case 'between':
      return fn('between', w(tail.from), w(tail.to));
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
  const node = new JsonReader().expression(json, '$', 0, TOP);
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
  expression(json: unknown, path: string, depth: number, scope: NameScope): ExpressionNode {
    if (depth > MAX_TREE_HEIGHT) throw invalid(path, `nodes nest more than ${MAX_TREE_HEIGHT} deep`);
    const o = this.object(json, path);
    switch (o.nodeType) {
      case 'literal':
        return this.literal(o, path, depth, scope);
      case 'fieldLookup': {
        this.keys(o, path, ['fieldName', 'object']);
        const name = this.name(o.fieldName, `${path}.fieldName`);
        // No object (the documentation's source filters) or null (our earlier form): a bare name.
        if (o.object === null || o.object === undefined) return { kind: 'Identifier', name, loc: loc() };
        const object = this.expression(o.object, `${path}.object`, depth + 1, scope);
        if (object.kind === 'Parameter' && object.position === 1 && readsProfile(scope, name)) {
          return { kind: 'Identifier', name, loc: loc() };
        }
        return { kind: 'Member', object, name, loc: loc() };
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
        return this.fnApply(o, path, depth, scope);
      default:
        throw invalid(`${path}.nodeType`, 'expected "fnApply", "fieldLookup", "parameterReference" or "literal"');
    }
  }

  private literal(o: JsonObject, path: string, depth: number, scope: NameScope): ExpressionNode {
    this.keys(o, path, ['literalType', 'value']);
    const { value } = o;
    const at = `${path}.value`;
    if (o.literalType === undefined) return this.untypedLiteral(value, at, depth);
    switch (o.literalType) {
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
        const elements = value.map((element, i) => this.expression(element, `${at}[${i}]`, depth + 1, scope));
        return { kind: 'ArrayLiteral', elements, loc: loc() };
      }
      default:
        throw invalid(`${path}.literalType`, 'expected "String", "Number", "Boolean", "Null", "TimeWord" or "List"');
    }
  }

  /**
   * A literal without `literalType`, as the documentation's source filters write them: the JSON
   * value says the type (`"DDN"`, `20`, `true`, `null`, `["Ramen", "John"]`).
   */
  private untypedLiteral(value: unknown, path: string, depth: number): ExpressionNode {
    if (depth > MAX_TREE_HEIGHT) throw invalid(path, `nodes nest more than ${MAX_TREE_HEIGHT} deep`);
    if (typeof value === 'string' || typeof value === 'boolean' || value === null) {
      return { kind: 'Literal', value, loc: loc() };
    }
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw invalid(path, 'expected a finite number');
      const literal: ExpressionNode = { kind: 'Literal', value: Math.abs(value), loc: loc() };
      return value < 0 || Object.is(value, -0) ? { kind: 'Negate', operand: literal, loc: loc() } : literal;
    }
    if (Array.isArray(value)) {
      const elements = value.map((element, i) => this.untypedLiteral(element, `${path}[${i}]`, depth + 1));
      return { kind: 'ArrayLiteral', elements, loc: loc() };
    }
    throw invalid(path, 'expected a string, number, boolean, null or array (or give literalType)');
  }

  private fnApply(o: JsonObject, path: string, depth: number, scope: NameScope): ExpressionNode {
    this.keys(o, path, ['fnName', 'params']);
    const written = this.string(o.fnName, `${path}.fnName`);
    // Keywords are case-insensitive in the text; the documentation writes `NOT` too.
    const lower = written.toLowerCase();
    const fnName = lower === 'and' || lower === 'or' || lower === 'not' ? lower : written;
    if (!Array.isArray(o.params)) throw invalid(`${path}.params`, 'expected an array');
    const params: unknown[] = o.params;
    const at = (i: number) => `${path}.params[${i}]`;
    const count = (min: number, max = min) => {
      if (params.length < min || params.length > max) {
        const wanted = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
        throw invalid(`${path}.params`, `"${fnName}" takes ${wanted} parameters, got ${params.length}`);
      }
    };
    const expr = (i: number, inner = scope) => this.expression(params[i], at(i), depth + 1, inner);
    const exprs = (from: number) => params.slice(from).map((_, i) => expr(from + i));
    const method = (name: string): ExpressionNode => ({
      kind: 'MethodCall',
      object: expr(0),
      name,
      args: params.slice(1).map((_, i) => expr(i + 1, perItemArgument(name, i) ? itemsOf(scope) : scope)),
      loc: loc(),
    });

    if (fnName.startsWith('.')) {
      count(1, Infinity);
      return method(this.name(fnName.slice(1), `${path}.fnName`));
    }
    // A method applied as a function, receiver first (`isNull` in the documentation's filters).
    if (METHODS.has(fnName) && !FUNCTIONS.has(fnName) && !RESERVED_FN_NAMES.has(fnName)) {
      count(1, Infinity);
      return method(fnName);
    }
    switch (fnName) {
      case 'and':
      case 'or': {
        // As many operands as the documentation's trees give (one is the operand itself).
        count(1, Infinity);
        let result = expr(0);
        for (let i = 1; i < params.length; i++) {
          result = { kind: 'Logical', op: fnName, left: result, right: expr(i), loc: loc() };
        }
        return result;
      }
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
        return { kind: 'Occurs', subject: expr(0), tail: this.tail(params[1], at(1), depth + 1, scope), loc: loc() };
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
        return { kind: 'Filter', object: expr(0), predicate: expr(1, itemsOf(scope)), loc: loc() };
      case 'exists':
      case 'forall': {
        count(2, Infinity);
        let inner = scope;
        const bindings = params.slice(0, -1).map((p, i) => {
          const b = this.binding(p, at(i), depth + 1, inner);
          inner = binding(inner, b.name);
          return b;
        });
        return { kind: 'Quantified', quantifier: fnName, bindings, body: expr(params.length - 1, inner), loc: loc() };
      }
      case 'select': {
        count(2);
        const b = this.binding(params[0], at(0), depth + 1, scope);
        return { kind: 'Select', binding: b, body: expr(1, binding(scope, b.name)), loc: loc() };
      }
      case 'lambda': {
        count(2);
        const param = this.name(this.stringLiteral(params[0], at(0)), at(0));
        return { kind: 'Lambda', param, body: expr(1, binding(scope, param)), loc: loc() };
      }
      case 'let': {
        count(3);
        const name = this.name(this.stringLiteral(params[0], at(0)), at(0));
        return { kind: 'Let', name, value: expr(1), body: expr(2, binding(scope, name)), loc: loc() };
      }
      case 'chain': {
        count(3, Infinity);
        const source = expr(0);
        const timeField = this.name(this.stringLiteral(params[1], at(1)), at(1));
        let labels = scope;
        const steps = params.slice(2).map((p, i) => {
          const label = this.stepLabel(p, at(i + 2));
          labels = binding(labels, label);
          return this.step(p, at(i + 2), depth + 1, itemsOf(scope), labels);
        });
        return { kind: 'Chain', source, timeField, steps, loc: loc() };
      }
      case 'call': {
        count(1, Infinity);
        const name = this.name(this.stringLiteral(params[0], at(0)), at(0));
        if (!needsCallForm(name)) {
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
      const b = this.binding(params[1], at(1), depth + 1, scope);
      const inner = binding(scope, b.name);
      return { kind: 'Aggregate', fn: fnName, value: expr(0, inner), binding: b, body: expr(2, inner), loc: loc() };
    }
    return { kind: 'Call', name: this.name(fnName, `${path}.fnName`), args: exprs(0), loc: loc() };
  }

  private binding(json: unknown, path: string, depth: number, scope: NameScope): BindingNode {
    const [name, source] = this.special(json, path, ['from'], 2, 2);
    return {
      kind: 'Binding',
      name: this.name(this.stringLiteral(name, `${path}.params[0]`), `${path}.params[0]`),
      source: this.expression(source, `${path}.params[1]`, depth + 1, scope),
      loc: loc(),
    };
  }

  private stepLabel(json: unknown, path: string): string {
    const [label] = this.special(json, path, ['step'], 2, 5);
    return this.name(this.stringLiteral(label, `${path}.params[0]`), `${path}.params[0]`);
  }

  /** `items`: the scope of WHAT and WHERE (the step's event); `labels`: of WHEN. */
  private step(json: unknown, path: string, depth: number, items: NameScope, labels: NameScope): ChainStepNode {
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
      what: this.expression(params[1], at(1), depth + 1, items),
      ...(given(3) ? { where: this.expression(params[3], at(3), depth + 1, items) } : {}),
      ...(count === undefined ? {} : { count }),
      when: given(2) ? this.tail(params[2], at(2), depth + 1, labels) : null,
      loc: loc(),
    };
  }

  private tail(json: unknown, path: string, depth: number, scope: NameScope): OccursTail {
    const forms = ['relative', 'before', 'after', 'on', ...PERIODS, 'between'];
    const o = this.object(json, path);
    const form = o.nodeType === 'fnApply' ? this.oneOf(o.fnName, `${path}.fnName`, forms) : undefined;
    const arities: Record<string, number> = { relative: 5, on: 2, between: 2 };
    const arity = arities[form ?? ''] ?? 1;
    const params = this.special(json, path, forms, arity, arity);
    const at = (i: number) => `${path}.params[${i}]`;
    const ref = (i: number) => this.expression(params[i], at(i), depth + 1, scope);
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
    const untypedString = o.literalType === undefined && typeof o.value === 'string';
    if (o.nodeType !== 'literal' || (o.literalType !== 'String' && !untypedString)) {
      throw invalid(path, 'expected a String literal');
    }
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
