import type {
  BindingNode,
  ChainStepNode,
  ExpressionNode,
  LambdaNode,
  LetNode,
  Location,
  OccursTail,
  ParameterNode,
  SelectNode,
} from './ast.js';
import { locationAt, PqlError } from './errors.js';
import { describeToken, isKeyword, isUnitWord, Lexer, type Token, UNIT_WORDS } from './lexer.js';
import {
  COMPARE_OPS,
  COMPARISON_WORDS,
  type CompareOp,
  isAggregateFn,
  isOperatorWord,
  isQuantifier,
  isTimeWord,
  OCCURS_DIRECTIONS,
  type OccursDirection,
  PERIODS,
  type TimeUnit,
} from './vocabulary.js';

/** Longest accepted source, in UTF-16 code units (docs/pql.md §6). */
const MAX_SOURCE_LENGTH = 16 * 1024;
/** Deepest syntactic nesting (parentheses, brackets, calls, unary and postfix operators, quantifiers). */
const MAX_NESTING = 64;
/**
 * Tallest tree. Syntactic nesting is capped above, but a flat chain such as `a or b or …` still
 * builds a left-leaning tree; this cap keeps every recursive consumer (checker, engines,
 * printer) far from the JS stack limit.
 */
export const MAX_TREE_HEIGHT = 512;

// A name right after `exists`/`sum`/`let` that is an operator word (OPERATOR_WORDS) means the
// word was a field (`count in [1, 2]`), not the start of a quantifier.

type Start = Pick<Location, 'offset' | 'line' | 'column'>;
type Built = ExpressionNode | BindingNode | ChainStepNode | OccursTail;
type Props<T extends Built> = T extends Built ? Omit<T, 'loc'> : never;

/**
 * Parses PQL text into its syntax tree. Throws `PqlError` (`PQL_SYNTAX_ERROR`) with the
 * position of the offending token and the tokens that would have been accepted there; it
 * never throws anything else, whatever the input.
 */
export function parse(source: string): ExpressionNode {
  if (source.length > MAX_SOURCE_LENGTH) {
    throw new PqlError('PQL_SYNTAX_ERROR', 'expression is longer than 16 KiB', source, locationAt(source, 0, 0));
  }
  return new Parser(source).parseDocument();
}

class Parser {
  private readonly lexer: Lexer;
  private depth = 0;
  /** What was tried and failed at the current token: token texts and categories (`identifier`); reset on every advance. */
  private expected: string[] = [];
  /** The entries of `expected` that are token texts, quoted in messages. */
  private readonly literalTokens = new Set<string>();
  private readonly heights = new WeakMap<object, number>();
  /** Offset of a comparison operator that directly follows a comparison, for a better message. */
  private chainedComparisonAt = -1;

  constructor(source: string) {
    this.lexer = new Lexer(source);
  }

  /**
   * document = [ "(" IDENT ")" "=>" ] expression ;
   * The documented lambda form `(Profile) => Profile.homeAddress…` names the profile: it reads
   * as `let Profile = ($1) in (…)`.
   */
  parseDocument(): ExpressionNode {
    const expression = this.peekLambda() ? this.parseLambda() : this.parseExpression();
    if (this.lexer.token.kind !== 'eof') {
      this.expect('end of expression');
      throw this.unexpected();
    }
    return expression;
  }

  private peekLambda(): boolean {
    // Token by token, so a lexical error further on is still reported where the parser reaches it.
    const punct = (n: number, value: string) => {
      const token = this.lexer.lookahead(n);
      return token.kind === 'punct' && token.value === value;
    };
    return this.peek('(') && this.isBindableName(this.lexer.lookahead(1)) && punct(2, ')') && punct(3, '=>');
  }

  private parseLambda(): ExpressionNode {
    const start = this.lexer.token;
    this.advance();
    const paramStart = this.lexer.token;
    const name = this.parseName();
    const profile = this.node<ParameterNode>(paramStart, { kind: 'Parameter', position: 1 });
    this.expectToken(')');
    this.expectToken('=>');
    return this.node<LetNode>(start, { kind: 'Let', name, value: profile, body: this.parseExpression() });
  }

  /** expression = orExpr ; */
  parseExpression(): ExpressionNode {
    return this.parseOrExpr();
  }

  /** orExpr = andExpr { "or" andExpr } ; */
  parseOrExpr(): ExpressionNode {
    const start = this.lexer.token;
    let left = this.parseAndExpr();
    while (this.peekKeyword('or')) {
      this.advance();
      left = this.node(start, { kind: 'Logical', op: 'or', left, right: this.parseAndExpr() });
    }
    return left;
  }

  /** andExpr = notExpr { "and" notExpr } ; */
  parseAndExpr(): ExpressionNode {
    const start = this.lexer.token;
    let left = this.parseNotExpr();
    while (this.peekKeyword('and')) {
      this.advance();
      left = this.node(start, { kind: 'Logical', op: 'and', left, right: this.parseNotExpr() });
    }
    return left;
  }

  /** notExpr = ( "not" | "!" ) notExpr | quantified | comparison ; */
  parseNotExpr(): ExpressionNode {
    const start = this.lexer.token;
    if (this.peekKeyword('not') || this.peek('!')) {
      this.enter(start);
      this.advance();
      const operand = this.parseNotExpr();
      this.leave();
      return this.node(start, { kind: 'Not', operand });
    }
    return this.peekQuantified() ? this.parseQuantified() : this.parseComparison();
  }

  /**
   * quantified = ( "exists" | "forall" ) binding { [ ( "where" | ":" ) expression ] "," binding }
   *              ( "where" | ":" ) expression
   *            | "select" binding "where" expression
   *            | aggregate postfix "over" binding "where" expression ;
   * aggregate  = "sum" | "count" | "average" | "min" | "max" ;
   */
  parseQuantified(): ExpressionNode {
    const start = this.lexer.token;
    const word = start.value.toLowerCase();
    this.enter(start);
    this.advance();
    let result: ExpressionNode;
    if (isQuantifier(word)) {
      const bindings = [this.parseBinding()];
      let body: ExpressionNode;
      for (;;) {
        if (this.expectOptionalToken(',')) {
          bindings.push(this.parseBinding());
          continue;
        }
        if (!this.expectOptionalKeyword('where')) this.expectToken(':');
        body = this.parseExpression();
        if (!this.peekBinding()) break;
        // `E from src where c, F from …`: c filters E's items, so E ranges over `select E from src where c`.
        const filtered = bindings[bindings.length - 1]!;
        const select = this.node<SelectNode>(filtered.loc, { kind: 'Select', binding: filtered, body });
        bindings[bindings.length - 1] = this.node<BindingNode>(filtered.loc, {
          kind: 'Binding',
          name: filtered.name,
          source: select,
        });
        this.advance();
        bindings.push(this.parseBinding());
      }
      result = this.node(start, { kind: 'Quantified', quantifier: word, bindings, body });
    } else if (word === 'select') {
      const binding = this.parseBinding();
      this.expectKeyword('where');
      result = this.node(start, { kind: 'Select', binding, body: this.parseExpression() });
    } else {
      const value = this.parsePostfix();
      this.expectKeyword('over');
      const binding = this.parseBinding();
      this.expectKeyword('where');
      const body = this.parseExpression();
      if (!isAggregateFn(word)) throw this.unexpected(start);
      result = this.node(start, { kind: 'Aggregate', fn: word, value, binding, body });
    }
    this.leave();
    return result;
  }

  /** binding = IDENT "from" postfix ; */
  parseBinding(): BindingNode {
    const start = this.lexer.token;
    const name = this.parseName();
    this.expectKeyword('from');
    return this.node(start, { kind: 'Binding', name, source: this.parsePostfix() });
  }

  /**
   * comparison = additive [ compOp additive | ( "in" | "notIn" ) additive
   *                       | "like" STRING | "occurs" occursTail ] ;
   * compOp     = "=" | "!=" | "<" | "<=" | ">" | ">=" ;
   */
  parseComparison(): ExpressionNode {
    const start = this.lexer.token;
    const left = this.parseAdditive();
    const token = this.lexer.token;
    let result: ExpressionNode;
    const op = this.peekCompareOp();
    if (op) {
      this.advance();
      result = this.node(start, { kind: 'Compare', op, left, right: this.parseAdditive() });
    } else if (isKeyword(token, 'in') || isKeyword(token, 'notin')) {
      this.advance();
      const negated = isKeyword(token, 'notin');
      result = this.node(start, { kind: 'In', negated, value: left, list: this.parseAdditive() });
    } else if (isKeyword(token, 'like')) {
      this.advance();
      const pattern = this.lexer.token;
      if (pattern.kind !== 'string') {
        this.expect('string');
        throw this.unexpected();
      }
      this.advance();
      result = this.node(start, { kind: 'Like', value: left, pattern: pattern.value });
    } else if (isKeyword(token, 'occurs')) {
      this.advance();
      result = this.node(start, { kind: 'Occurs', subject: left, tail: this.parseOccursTail() });
    } else {
      return left;
    }
    if (this.peekCompareOp() || COMPARISON_WORDS.some((w) => this.peekKeyword(w))) {
      this.chainedComparisonAt = this.lexer.token.offset;
    }
    return result;
  }

  /** additive = multiplicative { ( "+" | "-" ) multiplicative } ; */
  parseAdditive(): ExpressionNode {
    const start = this.lexer.token;
    let left = this.parseMultiplicative();
    while (this.peek('+') || this.peek('-')) {
      const op = this.lexer.token.value as '+' | '-';
      this.advance();
      left = this.node(start, { kind: 'Arithmetic', op, left, right: this.parseMultiplicative() });
    }
    return left;
  }

  /** multiplicative = unary { ( "*" | "/" | "%" ) unary } ; */
  parseMultiplicative(): ExpressionNode {
    const start = this.lexer.token;
    let left = this.parseUnary();
    while (this.peek('*') || this.peek('/') || this.peek('%')) {
      const op = this.lexer.token.value as '*' | '/' | '%';
      this.advance();
      left = this.node(start, { kind: 'Arithmetic', op, left, right: this.parseUnary() });
    }
    return left;
  }

  /** unary = "-" unary | postfix ; */
  parseUnary(): ExpressionNode {
    const start = this.lexer.token;
    if (!this.peek('-')) return this.parsePostfix();
    this.enter(start);
    this.advance();
    const operand = this.parseUnary();
    this.leave();
    return this.node(start, { kind: 'Negate', operand });
  }

  /** postfix = primary { "." IDENT [ "(" [ arguments ] ")" ] | "[" expression "]" } ; */
  parsePostfix(): ExpressionNode {
    const start = this.lexer.token;
    let object = this.parsePrimary();
    const depth = this.depth;
    for (;;) {
      const token = this.lexer.token;
      if (this.peek('.')) {
        this.enter(token);
        this.advance();
        const name = this.parseName();
        object = this.peek('(')
          ? this.node(start, { kind: 'MethodCall', object, name, args: this.parseArguments() })
          : this.node(start, { kind: 'Member', object, name });
      } else if (this.peek('[')) {
        this.enter(token);
        this.advance();
        const predicate = this.parseExpression();
        this.expectToken(']');
        object = this.node(start, { kind: 'Filter', object, predicate });
      } else {
        this.depth = depth;
        return object;
      }
    }
  }

  /**
   * "(" [ arguments ] ")" ;
   * arguments = argument { "," argument } ;
   * argument  = [ IDENT "=>" | "(" IDENT ")" "=>" ] expression ;
   */
  parseArguments(): ExpressionNode[] {
    this.expectToken('(');
    const args: ExpressionNode[] = [];
    if (this.expectOptionalToken(')')) return args;
    for (;;) {
      args.push(this.peekArgumentLambda() ? this.parseArgumentLambda() : this.parseExpression());
      if (this.expectOptionalToken(')')) return args;
      this.expectToken(',');
    }
  }

  /** Whether `x =>` or `(x) =>` starts here: a per-item argument naming its item. */
  private peekArgumentLambda(): boolean {
    const arrowAt = (n: number) => {
      const token = this.lexer.lookahead(n);
      return token.kind === 'punct' && token.value === '=>';
    };
    if (this.isBindableName(this.lexer.token)) return arrowAt(1);
    return this.peekLambda();
  }

  private parseArgumentLambda(): ExpressionNode {
    const start = this.lexer.token;
    this.enter(start);
    const parenthesized = this.expectOptionalToken('(');
    const param = this.parseName();
    if (parenthesized) this.expectToken(')');
    this.expectToken('=>');
    const body = this.parseExpression();
    this.leave();
    return this.node<LambdaNode>(start, { kind: 'Lambda', param, body });
  }

  /**
   * primary = literal | array | "(" expression ")" | letExpr | chain | call
   *         | "xEvent" | IDENT | "$" INTEGER | "^" { "^" } "." IDENT ;
   * literal = STRING | NUMBER | "true" | "false" | "null" | "now" | "today" | "yesterday" | "tomorrow" ;
   * array   = "[" [ expression { "," expression } ] "]" ;
   * call    = IDENT "(" [ arguments ] ")" ;
   */
  parsePrimary(): ExpressionNode {
    const token = this.lexer.token;
    switch (token.kind) {
      case 'string':
        this.advance();
        return this.node(token, { kind: 'Literal', value: token.value });
      case 'number':
        this.advance();
        return this.node(token, { kind: 'Literal', value: Number(token.value) });
      case 'name':
        return this.parseNamePrimary(token);
      case 'punct':
        if (token.value === '(') {
          this.enter(token);
          this.advance();
          const inner = this.parseExpression();
          this.expectToken(')');
          this.leave();
          return inner;
        }
        if (token.value === '[') {
          this.enter(token);
          this.advance();
          const elements = this.parseList(']');
          this.leave();
          return this.node(token, { kind: 'ArrayLiteral', elements });
        }
        if (token.value === '$') return this.parseParameter();
        if (token.value === '^') return this.parseParentField();
        break;
    }
    this.expect('expression');
    throw this.unexpected();
  }

  private parseNamePrimary(token: Token): ExpressionNode {
    const next = this.lexer.lookahead();
    if (!token.quoted) {
      const word = token.value.toLowerCase();
      if (word === 'true' || word === 'false' || word === 'null') {
        this.advance();
        return this.node(token, { kind: 'Literal', value: word === 'null' ? null : word === 'true' });
      }
      if (isTimeWord(word)) {
        this.advance();
        return this.node(token, { kind: 'TimeWord', word });
      }
      if (token.value === 'xEvent') {
        this.advance();
        return this.node(token, { kind: 'XEvent' });
      }
      if (word === 'let' && this.isBindableName(next)) return this.parseLet();
      if (word === 'chain' && next.kind === 'punct' && next.value === '(') return this.parseChain();
      if (isOperatorWord(word) || this.peekQuantified()) {
        this.expect('expression');
        const hint = isOperatorWord(word) ? '' : ' (put a quantifier or aggregate in parentheses here)';
        throw this.unexpected(undefined, hint);
      }
    }
    if (next.kind === 'punct' && next.value === '(') {
      this.enter(token);
      this.advance();
      const args = this.parseArguments();
      this.leave();
      return this.node(token, { kind: 'Call', name: token.value, args });
    }
    this.advance();
    return this.node(token, { kind: 'Identifier', name: token.value });
  }

  /** "$" INTEGER */
  parseParameter(): ExpressionNode {
    const start = this.expectToken('$');
    const token = this.lexer.token;
    if (token.kind !== 'number' || !/^[0-9]+$/.test(token.value) || !Number.isSafeInteger(Number(token.value))) {
      this.expect('integer');
      throw this.unexpected();
    }
    this.advance();
    return this.node(start, { kind: 'Parameter', position: Number(token.value) });
  }

  /** "^" { "^" } "." IDENT */
  parseParentField(): ExpressionNode {
    const start = this.expectToken('^');
    let depth = 1;
    while (this.expectOptionalToken('^')) depth++;
    this.expectToken('.');
    return this.node(start, { kind: 'ParentField', depth, name: this.parseName() });
  }

  /** letExpr = "let" IDENT "=" "(" expression ")" "in" "(" expression ")" ; */
  parseLet(): ExpressionNode {
    const start = this.lexer.token;
    this.enter(start);
    this.advance();
    const name = this.parseName();
    this.expectToken('=');
    const value = this.parseParenthesized();
    this.expectKeyword('in');
    const body = this.parseParenthesized();
    this.leave();
    return this.node(start, { kind: 'Let', name, value, body });
  }

  /** chain = "CHAIN" "(" postfix "," IDENT "," "[" step { "," step } "]" ")" ; */
  parseChain(): ExpressionNode {
    const start = this.lexer.token;
    this.enter(start);
    this.advance();
    this.expectToken('(');
    const source = this.parsePostfix();
    this.expectToken(',');
    const timeField = this.parseName();
    this.expectToken(',');
    this.expectToken('[');
    const steps = [this.parseChainStep()];
    while (this.expectOptionalToken(',')) steps.push(this.parseChainStep());
    this.expectToken(']');
    this.expectToken(')');
    this.leave();
    return this.node(start, { kind: 'Chain', source, timeField, steps });
  }

  /**
   * step = IDENT ":" "WHAT" "(" expression ")"
   *        { "WHERE" "(" expression ")" | "COUNT" "(" NUMBER ")" | "WHEN" "(" occursTail ")" } ;
   * (each of WHERE, COUNT and WHEN at most once, in any order)
   */
  parseChainStep(): ChainStepNode {
    const start = this.lexer.token;
    const label = this.parseName();
    this.expectToken(':');
    this.expectKeyword('what', 'WHAT');
    const what = this.parseParenthesized();
    let when: OccursTail | null = null;
    let where: ExpressionNode | undefined;
    let count: number | undefined;
    for (;;) {
      if (when === null && this.expectOptionalKeyword('when', 'WHEN')) {
        this.expectToken('(');
        when = this.parseOccursTail();
        this.expectToken(')');
      } else if (where === undefined && this.expectOptionalKeyword('where', 'WHERE')) {
        where = this.parseParenthesized();
      } else if (count === undefined && this.expectOptionalKeyword('count', 'COUNT')) {
        this.expectToken('(');
        const n = this.lexer.token;
        if (n.kind !== 'number' || !Number.isInteger(Number(n.value)) || Number(n.value) < 1) {
          this.expect('a whole number of events, at least 1');
          throw this.unexpected();
        }
        this.advance();
        count = Number(n.value);
        this.expectToken(')');
      } else break;
    }
    return this.node(start, {
      kind: 'ChainStep',
      label,
      what,
      ...(where === undefined ? {} : { where }),
      ...(count === undefined ? {} : { count }),
      when,
    });
  }

  /**
   * occursTail = [ compOp ] NUMBER unit ( "before" | "after" | "from" ) timeRef
   *            | ( "before" | "after" ) timeRef
   *            | [ "on" ] timeRef
   *            | ( "this" | "last" | "next" ) unit
   *            | "between" timeRef "and" timeRef ;
   * timeRef    = "now" | "today" | "yesterday" | "tomorrow" | call | postfix ;
   */
  parseOccursTail(): OccursTail {
    const start = this.lexer.token;
    const op = this.peekCompareOp();
    if (op || (start.kind === 'number' && isUnitWord(this.lexer.lookahead()))) {
      if (op) this.advance();
      const amountToken = this.lexer.token;
      if (amountToken.kind !== 'number') {
        this.expect('number');
        throw this.unexpected();
      }
      this.advance();
      const unit = this.parseUnit();
      let direction: OccursDirection | undefined;
      for (const d of OCCURS_DIRECTIONS) {
        if (!direction && this.expectOptionalKeyword(d)) direction = d;
      }
      if (!direction) throw this.unexpected();
      return this.node(start, {
        form: 'relative',
        op: op ?? '=',
        explicitOp: op !== undefined,
        amount: Number(amountToken.value),
        unit,
        direction,
        ref: this.parsePostfix(),
      });
    }
    const word = start.kind === 'name' && !start.quoted ? start.value.toLowerCase() : '';
    if (word === 'before' || word === 'after') {
      this.advance();
      return this.node(start, { form: 'beforeAfter', direction: word, ref: this.parsePostfix() });
    }
    if (word === 'between') {
      this.advance();
      const from = this.parsePostfix();
      this.expectKeyword('and');
      return this.node(start, { form: 'between', from, to: this.parsePostfix() });
    }
    const period = PERIODS.find((p) => p === word);
    if (period && isUnitWord(this.lexer.lookahead())) {
      this.advance();
      return this.node(start, { form: 'period', which: period, unit: this.parseUnit() });
    }
    this.expect('comparison operator');
    for (const keyword of ['before', 'after', 'between', ...PERIODS]) this.expect(keyword, true);
    const explicitOn = this.expectOptionalKeyword('on');
    return this.node(start, { form: 'on', explicitOn, ref: this.parsePostfix() });
  }

  /** unit = "millisecond" | "milliseconds" | … | "year" | "years" ; */
  parseUnit(): TimeUnit {
    const token = this.lexer.token;
    const unit = isUnitWord(token) ? UNIT_WORDS.get(token.value.toLowerCase()) : undefined;
    if (!unit) {
      this.expect('time unit');
      throw this.unexpected();
    }
    this.advance();
    return unit;
  }

  // Core parsing utilities

  private parseParenthesized(): ExpressionNode {
    this.expectToken('(');
    const inner = this.parseExpression();
    this.expectToken(')');
    return inner;
  }

  /** Items up to `close` (already past the opening token): `[ expression { "," expression } ] close`. */
  private parseList(close: ')' | ']'): ExpressionNode[] {
    const items: ExpressionNode[] = [];
    if (this.expectOptionalToken(close)) return items;
    for (;;) {
      items.push(this.parseExpression());
      if (this.expectOptionalToken(close)) return items;
      this.expectToken(',');
    }
  }

  private parseName(): string {
    const token = this.lexer.token;
    if (token.kind !== 'name') {
      this.expect('identifier');
      throw this.unexpected();
    }
    this.advance();
    return token.value;
  }

  /** Whether the current token starts `exists E from…`, `select E from…` or `sum E.x over…`. */
  private peekQuantified(): boolean {
    const token = this.lexer.token;
    if (token.kind !== 'name' || token.quoted) return false;
    const word = token.value.toLowerCase();
    const next = this.lexer.lookahead();
    if (isQuantifier(word) || word === 'select') return this.isBindableName(next);
    if (!isAggregateFn(word)) return false;
    // `sum(` is a call and `sum[` a filter on a field named sum; anything else that can start a value is an aggregate.
    return (
      this.isBindableName(next) ||
      next.kind === 'string' ||
      next.kind === 'number' ||
      (next.kind === 'punct' && (next.value === '$' || next.value === '^'))
    );
  }

  /** Whether `, IDENT from` follows: another binding, not the next argument of an enclosing call. */
  private peekBinding(): boolean {
    const from = this.lexer.lookahead(2);
    return (
      this.peek(',') &&
      this.isBindableName(this.lexer.lookahead()) &&
      from.kind === 'name' &&
      !from.quoted &&
      from.value.toLowerCase() === 'from'
    );
  }

  private isBindableName(token: Token): boolean {
    return token.kind === 'name' && (token.quoted || !isOperatorWord(token.value.toLowerCase()));
  }

  private peekCompareOp(): CompareOp | undefined {
    const token = this.lexer.token;
    return token.kind === 'punct' ? COMPARE_OPS.find((op) => op === token.value) : undefined;
  }

  private peek(punct: string): boolean {
    return this.lexer.token.kind === 'punct' && this.lexer.token.value === punct;
  }

  private peekKeyword(word: string): boolean {
    return isKeyword(this.lexer.token, word);
  }

  private expectToken(punct: string): Token {
    const token = this.lexer.token;
    if (this.expectOptionalToken(punct)) return token;
    throw this.unexpected();
  }

  private expectOptionalToken(punct: string): boolean {
    if (this.peek(punct)) {
      this.advance();
      return true;
    }
    this.expect(punct, true);
    return false;
  }

  private expectKeyword(word: string, shown = word): void {
    if (!this.expectOptionalKeyword(word, shown)) throw this.unexpected();
  }

  private expectOptionalKeyword(word: string, shown = word): boolean {
    if (this.peekKeyword(word)) {
      this.advance();
      return true;
    }
    this.expect(shown, true);
    return false;
  }

  private advance(): void {
    this.lexer.advance();
    this.expected = [];
  }

  /** Records that `description` would have been accepted at the current token. */
  private expect(description: string, literal = false): void {
    if (literal) this.literalTokens.add(description);
    if (!this.expected.includes(description)) this.expected.push(description);
  }

  private enter(token: Token): void {
    if (++this.depth > MAX_NESTING) {
      throw this.syntaxError(token, `Expression nests deeper than ${MAX_NESTING} levels`);
    }
  }

  private leave(): void {
    this.depth--;
  }

  /** Builds a node spanning from `start` to the end of the last consumed token. */
  private node<T extends Built>(start: Start, props: Props<T>): T {
    const end = this.lexer.lastToken;
    const loc = {
      offset: start.offset,
      length: end.offset + end.length - start.offset,
      line: start.line,
      column: start.column,
    };
    let height = 0;
    for (const value of Object.values(props)) {
      for (const child of Array.isArray(value) ? value : [value]) {
        if (typeof child === 'object' && child !== null) height = Math.max(height, this.heights.get(child) ?? 0);
      }
    }
    if (height >= MAX_TREE_HEIGHT) {
      throw this.syntaxError(end, `Expression is more than ${MAX_TREE_HEIGHT} operations deep`);
    }
    const built = { ...props, loc } as unknown as T;
    this.heights.set(built, height + 1);
    return built;
  }

  private syntaxError(token: Token, message: string, expected: string[] = []): PqlError {
    const { offset, length, line, column } = token;
    return new PqlError('PQL_SYNTAX_ERROR', message, this.lexer.source, { offset, length, line, column }, expected);
  }

  /** The error for the current token, naming what would have been accepted instead. */
  private unexpected(token = this.lexer.token, hint = ''): PqlError {
    const expected = [...this.expected];
    const shown = expected.map((e) => (this.literalTokens.has(e) ? `"${e}"` : e));
    const wanted = shown.length > 1 ? `${shown.slice(0, -1).join(', ')} or ${shown.at(-1)}` : shown[0];
    let message: string;
    if (token.kind === 'eof') {
      message = wanted ? `Unexpected end of expression, expected ${wanted}` : 'Unexpected end of expression';
    } else {
      const found = describeToken(token, this.lexer.source);
      message = wanted ? `Expected ${wanted} but found ${found}` : `Unexpected ${found}`;
    }
    if (token.offset === this.chainedComparisonAt) message += ' (comparisons do not chain: use parentheses)';
    return this.syntaxError(token, message + hint, expected);
  }
}
