/**
 * The PQL abstract syntax tree (docs/pql.md §10). Every node carries `loc`, the span of source
 * text it was parsed from, so the checker can point at the offending token. Nodes are
 * plain data: a discriminated union on `kind`, no methods, JSON-serialisable.
 *
 * Identifiers are kept as written (`Identifier`); whether a bare name is a `let` variable,
 * a quantifier variable, a chain step label or a field of the current scope (the profile,
 * or the item inside a filter) is decided by lexical scope in the checker and in both
 * engines, in that order: innermost binding first, then fields of the current item.
 */

import type {
  AggregateFn,
  ArithmeticOp,
  CompareOp,
  OccursDirection,
  Period,
  Quantifier,
  TimeUnit,
  TimeWord,
} from './vocabulary.js';

export type { AggregateFn, ArithmeticOp, CompareOp, OccursDirection, Period, Quantifier, TimeUnit, TimeWord };

export interface Location {
  /** 0-based offset of the first character. */
  offset: number;
  /** Length in characters (UTF-16 code units, like JS strings). */
  length: number;
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  column: number;
}

/** `"text"`, `12`, `3.5`, `true`, `null`. Numbers are JS numbers (integers and decimals alike). */
export interface LiteralNode {
  kind: 'Literal';
  value: string | number | boolean | null;
  loc: Location;
}

/** `now`, `today`, `yesterday`, `tomorrow`: `now` is the evaluation instant, the others UTC day starts. */
export interface TimeWordNode {
  kind: 'TimeWord';
  word: TimeWord;
  loc: Location;
}

/** `[1, 2, 3]` where an expression starts. */
export interface ArrayLiteralNode {
  kind: 'ArrayLiteral';
  elements: ExpressionNode[];
  loc: Location;
}

/** A bare name: a variable in scope, a chain step label (inside WHEN), or a field of the current item. */
export interface IdentifierNode {
  kind: 'Identifier';
  name: string;
  loc: Location;
}

/** `xEvent`: the profile's experience events, ordered by timestamp then event id. */
export interface XEventNode {
  kind: 'XEvent';
  loc: Location;
}

/** `$1`: positional parameter; `$1` is the profile (the root scope). */
export interface ParameterNode {
  kind: 'Parameter';
  position: number;
  loc: Location;
}

/** `^.name` / `^^.name`: field `name` of the scope `depth` levels out of the current filter. */
export interface ParentFieldNode {
  kind: 'ParentField';
  depth: number;
  name: string;
  loc: Location;
}

/** `object.name`: field access. */
export interface MemberNode {
  kind: 'Member';
  object: ExpressionNode;
  name: string;
  loc: Location;
}

/** `object.name(args)`: method call (`startsWith`, `count`, `exists`, `getYear`, …). */
export interface MethodCallNode {
  kind: 'MethodCall';
  object: ExpressionNode;
  name: string;
  args: ExpressionNode[];
  loc: Location;
}

/** `object[predicate]`: the items of an array of objects for which `predicate` holds; inside, fields resolve against each item. */
export interface FilterNode {
  kind: 'Filter';
  object: ExpressionNode;
  predicate: ExpressionNode;
  loc: Location;
}

/**
 * `x => body`: the per-item argument of a method (`orders.map(o => o.price * o.quantity)`),
 * with the item named `param`. Only a method argument read once per item may be one; the body
 * is that argument, and bare names in it are still fields of the item.
 */
export interface LambdaNode {
  kind: 'Lambda';
  param: string;
  body: ExpressionNode;
  loc: Location;
}

/** `name(args)`: a function call: `date`, `datetime`, `inSegment`, `if`, `age`, `currentYear`, … */
export interface CallNode {
  kind: 'Call';
  name: string;
  args: ExpressionNode[];
  loc: Location;
}

/** `a and b`, `a or b`. */
export interface LogicalNode {
  kind: 'Logical';
  op: 'and' | 'or';
  left: ExpressionNode;
  right: ExpressionNode;
  loc: Location;
}

/** `not x` / `!x` (the printer writes `not`). */
export interface NotNode {
  kind: 'Not';
  operand: ExpressionNode;
  loc: Location;
}

/** `a = b`, `a < b`, …; non-associative. */
export interface CompareNode {
  kind: 'Compare';
  op: CompareOp;
  left: ExpressionNode;
  right: ExpressionNode;
  loc: Location;
}

/** `a + b`, `a * b`, … */
export interface ArithmeticNode {
  kind: 'Arithmetic';
  op: ArithmeticOp;
  left: ExpressionNode;
  right: ExpressionNode;
  loc: Location;
}

/** Unary minus. `-201` parses as Negate(Literal 201). */
export interface NegateNode {
  kind: 'Negate';
  operand: ExpressionNode;
  loc: Location;
}

/** `v in list` / `v notIn list`. */
export interface InNode {
  kind: 'In';
  negated: boolean;
  value: ExpressionNode;
  list: ExpressionNode;
  loc: Location;
}

/** `v like "pat"`: `%` any run, `_` one character, case-sensitive. */
export interface LikeNode {
  kind: 'Like';
  value: ExpressionNode;
  pattern: string;
  loc: Location;
}

/** `t occurs <tail>`. */
export interface OccursNode {
  kind: 'Occurs';
  subject: ExpressionNode;
  tail: OccursTail;
  loc: Location;
}

/**
 * The part after `occurs` (and inside `WHEN(...)`). `ref` expressions are time words, calls
 * (`date(...)`), paths, or, inside WHEN only, an Identifier naming an earlier chain step.
 */
export type OccursTail =
  /** `[op] N unit before|after|from ref`; no op means `=` (the whole calendar unit). `from` means `after`. */
  | {
      form: 'relative';
      op: CompareOp;
      /** Whether the op was written; `3 days before today` and `= 3 days before today` are the same tree otherwise. */
      explicitOp: boolean;
      amount: number;
      unit: TimeUnit;
      direction: OccursDirection;
      ref: ExpressionNode;
      loc: Location;
    }
  /** `before ref` / `after ref`: strictly. */
  | { form: 'beforeAfter'; direction: 'before' | 'after'; ref: ExpressionNode; loc: Location }
  /** `today`, `on date(2024,1,5)`: within that UTC calendar day. `explicitOn` records whether `on` was written. */
  | { form: 'on'; explicitOn: boolean; ref: ExpressionNode; loc: Location }
  /** `this month`, `last week`, `next year`: within that calendar period around now. */
  | { form: 'period'; which: Period; unit: TimeUnit; loc: Location }
  /** `between A and B`: inclusive; when B is day-valued its whole day counts. */
  | { form: 'between'; from: ExpressionNode; to: ExpressionNode; loc: Location };

/** `exists E from src where body` / `forall E from src, F from src2 : body`. */
export interface QuantifiedNode {
  kind: 'Quantified';
  quantifier: Quantifier;
  bindings: BindingNode[];
  body: ExpressionNode;
  loc: Location;
}

/** `E from source`. */
export interface BindingNode {
  kind: 'Binding';
  name: string;
  source: ExpressionNode;
  loc: Location;
}

/** `select E from src where body`: same as `src[body]` with a named variable. */
export interface SelectNode {
  kind: 'Select';
  binding: BindingNode;
  body: ExpressionNode;
  loc: Location;
}

/** `sum E.path over E from src where body` (and count/average/min/max). */
export interface AggregateNode {
  kind: 'Aggregate';
  fn: AggregateFn;
  value: ExpressionNode;
  binding: BindingNode;
  body: ExpressionNode;
  loc: Location;
}

/** `let V = (value) in (body)`. */
export interface LetNode {
  kind: 'Let';
  name: string;
  value: ExpressionNode;
  body: ExpressionNode;
  loc: Location;
}

/** `CHAIN(source, timeField, [A: WHAT(cond) WHEN(tail), …])`. */
export interface ChainNode {
  kind: 'Chain';
  source: ExpressionNode;
  timeField: string;
  steps: ChainStepNode[];
  loc: Location;
}

export interface ChainStepNode {
  kind: 'ChainStep';
  label: string;
  what: ExpressionNode;
  /** `WHERE(cond)`: a further condition on the step's event (it holds together with WHAT). */
  where?: ExpressionNode;
  /** `COUNT(n)`: the step matches n events, each later than the one before (n ≥ 1). */
  count?: number;
  when: OccursTail | null;
  loc: Location;
}

export type ExpressionNode =
  | LiteralNode
  | TimeWordNode
  | ArrayLiteralNode
  | IdentifierNode
  | XEventNode
  | ParameterNode
  | ParentFieldNode
  | MemberNode
  | MethodCallNode
  | FilterNode
  | CallNode
  | LogicalNode
  | NotNode
  | CompareNode
  | ArithmeticNode
  | NegateNode
  | InNode
  | LikeNode
  | OccursNode
  | QuantifiedNode
  | SelectNode
  | AggregateNode
  | LetNode
  | ChainNode
  | LambdaNode;

export type NodeKind = ExpressionNode['kind'];
