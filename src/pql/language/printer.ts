import type { BindingNode, ChainStepNode, ExpressionNode, OccursTail } from './ast.js';
import { KEYWORDS, PLAIN_NAME } from './lexer.js';

/**
 * Precedence levels of docs/pql.md §3; a child printed where a higher level is required gets
 * parentheses. Quantifiers, `select` and aggregates sit at the `not` level but their body
 * runs to the right as far as it can, so they also need parentheses unless nothing follows.
 */
const OR = 1;
const AND = 2;
const NOT = 3;
const COMPARISON = 4;
const ADDITIVE = 5;
const MULTIPLICATIVE = 6;
const UNARY = 7;
const POSTFIX = 8;

/**
 * The canonical text of a PQL tree: lower-case keywords (`CHAIN`, `WHAT`, `WHEN` upper-case),
 * single spaces around binary operators, `, ` between arguments and the fewest parentheses
 * that keep the tree, so `parse(print(tree))` equals `tree` apart from locations.
 */
export function print(node: ExpressionNode): string {
  return printExpression(node, 0, true);
}

function precedence(node: ExpressionNode): number {
  switch (node.kind) {
    case 'Logical':
      return node.op === 'or' ? OR : AND;
    case 'Not':
    case 'Quantified':
    case 'Select':
    case 'Aggregate':
      return NOT;
    case 'Compare':
    case 'In':
    case 'Like':
    case 'Occurs':
      return COMPARISON;
    case 'Arithmetic':
      return node.op === '+' || node.op === '-' ? ADDITIVE : MULTIPLICATIVE;
    case 'Negate':
      return UNARY;
    default:
      return POSTFIX;
  }
}

/**
 * `min`: the lowest precedence accepted without parentheses; `last`: whether nothing follows
 * the text up to the end of the enclosing parentheses, brackets or expression.
 */
function printExpression(node: ExpressionNode, min: number, last: boolean): string {
  const open = node.kind === 'Quantified' || node.kind === 'Select' || node.kind === 'Aggregate';
  if (precedence(node) < min || (open && !last)) return `(${printBare(node, true)})`;
  return printBare(node, last);
}

function printBare(node: ExpressionNode, last: boolean): string {
  switch (node.kind) {
    case 'Literal':
      return printLiteral(node.value);
    case 'TimeWord':
      return node.word;
    case 'ArrayLiteral':
      return `[${printList(node.elements)}]`;
    case 'Identifier':
      return printName(node.name);
    case 'XEvent':
      return 'xEvent';
    case 'Parameter':
      return `$${node.position}`;
    case 'ParentField':
      return `${'^'.repeat(node.depth)}.${printMemberName(node.name)}`;
    case 'Member':
      return `${printExpression(node.object, POSTFIX, false)}.${printMemberName(node.name)}`;
    case 'MethodCall':
      return `${printExpression(node.object, POSTFIX, false)}.${printMemberName(node.name)}(${printList(node.args)})`;
    case 'Filter':
      return `${printExpression(node.object, POSTFIX, false)}[${printExpression(node.predicate, 0, true)}]`;
    case 'Call':
      return `${printName(node.name)}(${printList(node.args)})`;
    case 'Logical': {
      const level = node.op === 'or' ? OR : AND;
      // Left-associative: a right operand at the same level needs parentheses.
      return `${printExpression(node.left, level, false)} ${node.op} ${printExpression(node.right, level + 1, last)}`;
    }
    case 'Not':
      return `not ${printExpression(node.operand, NOT, last)}`;
    case 'Compare':
      return `${printOperand(node.left)} ${node.op} ${printOperand(node.right)}`;
    case 'Arithmetic': {
      const level = precedence(node);
      return `${printExpression(node.left, level, false)} ${node.op} ${printExpression(node.right, level + 1, false)}`;
    }
    case 'Negate':
      return `-${printExpression(node.operand, UNARY, false)}`;
    case 'In':
      return `${printOperand(node.value)} ${node.negated ? 'notIn' : 'in'} ${printOperand(node.list)}`;
    case 'Like':
      return `${printOperand(node.value)} like ${printString(node.pattern)}`;
    case 'Occurs':
      return `${printOperand(node.subject)} occurs ${printTail(node.tail)}`;
    case 'Quantified':
      return `${node.quantifier} ${node.bindings.map((b, i) => (i < node.bindings.length - 1 ? printFilteredBinding(b) : printBinding(b))).join(', ')} where ${printExpression(node.body, 0, true)}`;
    case 'Select':
      return `select ${printBinding(node.binding)} where ${printExpression(node.body, 0, true)}`;
    case 'Aggregate':
      return `${node.fn} ${printPostfix(node.value)} over ${printBinding(node.binding)} where ${printExpression(node.body, 0, true)}`;
    case 'Let':
      return `let ${printName(node.name)} = (${printExpression(node.value, 0, true)}) in (${printExpression(node.body, 0, true)})`;
    case 'Chain':
      return `CHAIN(${printPostfix(node.source)}, ${printName(node.timeField)}, [${node.steps.map(printStep).join(', ')}])`;
    case 'Lambda':
      return `${printName(node.param)} => ${printExpression(node.body, 0, true)}`;
  }
}

/** An operand of a comparison, `in`, `like` or `occurs`: the additive level. */
function printOperand(node: ExpressionNode): string {
  return printExpression(node, ADDITIVE, false);
}

function printPostfix(node: ExpressionNode): string {
  return printExpression(node, POSTFIX, false);
}

function printList(items: ExpressionNode[]): string {
  return items.map((item) => printExpression(item, 0, true)).join(', ');
}

function printBinding(binding: BindingNode): string {
  return `${printName(binding.name)} from ${printPostfix(binding.source)}`;
}

/** A binding before another, whose source filters its own variable, in the documented form `E from src where (c)`. */
function printFilteredBinding(binding: BindingNode): string {
  const { source } = binding;
  if (source.kind !== 'Select' || source.binding.name !== binding.name) return printBinding(binding);
  return `${printBinding(source.binding)} where (${printExpression(source.body, 0, true)})`;
}

function printStep(step: ChainStepNode): string {
  let text = `${printName(step.label)}: WHAT(${printExpression(step.what, 0, true)})`;
  if (step.where) text += ` WHERE(${printExpression(step.where, 0, true)})`;
  if (step.count !== undefined) text += ` COUNT(${step.count})`;
  return step.when ? `${text} WHEN(${printTail(step.when)})` : text;
}

/** The part after `occurs` (also inside `WHEN(...)`); plural unit words when the amount is not 1. */
function printTail(tail: OccursTail): string {
  switch (tail.form) {
    case 'relative': {
      const op = tail.explicitOp ? `${tail.op} ` : '';
      const unit = tail.amount === 1 ? tail.unit : `${tail.unit}s`;
      return `${op}${printNumber(tail.amount)} ${unit} ${tail.direction} ${printPostfix(tail.ref)}`;
    }
    case 'beforeAfter':
      return `${tail.direction} ${printPostfix(tail.ref)}`;
    case 'on':
      return `${tail.explicitOn ? 'on ' : ''}${printPostfix(tail.ref)}`;
    case 'period':
      return `${tail.which} ${tail.unit}`;
    case 'between':
      return `between ${printPostfix(tail.from)} and ${printPostfix(tail.to)}`;
  }
}

function printLiteral(value: string | number | boolean | null): string {
  if (typeof value === 'string') return printString(value);
  if (typeof value === 'number') return printNumber(value);
  return String(value);
}

/** JS's shortest round-tripping form: `1e3` prints as `1000`, `1e21` as `1e+21`, both lexable. */
function printNumber(value: number): string {
  return String(value);
}

const STRING_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\n': '\\n',
  '\t': '\\t',
  '\r': '\\r',
  '\b': '\\b',
  '\f': '\\f',
};

/** A double-quoted string; other control characters and lone surrogates as `\uXXXX` so the text stays printable. */
function printString(value: string): string {
  const escaped = value.replace(
    /["\\\u0000-\u001f\u007f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    (c) => STRING_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return `"${escaped}"`;
}

/** A name where an expression, binding, label or call starts: back-quoted unless plain and not a keyword. */
function printName(name: string): string {
  if (PLAIN_NAME.test(name) && !KEYWORDS.has(name.toLowerCase()) && name !== 'xEvent') return name;
  return quote(name);
}

/** A name after `.`: keywords need no quotes there. */
function printMemberName(name: string): string {
  return PLAIN_NAME.test(name) ? name : quote(name);
}

function quote(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}
