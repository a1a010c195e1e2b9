import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ExpressionNode, OccursTail } from '../../src/pql/language/ast.js';
import { PqlError } from '../../src/pql/language/errors.js';
import { parse } from '../../src/pql/language/parser.js';
import { walk } from '../../src/pql/language/visitor.js';

const kitchenSink = readFileSync(new URL('./fixtures/kitchen-sink.pql', import.meta.url), 'utf8');

/** A fully parenthesised rendering, to assert tree shapes in one line. */
function sx(n: ExpressionNode): string {
  switch (n.kind) {
    case 'Literal':
      return JSON.stringify(n.value);
    case 'TimeWord':
      return `@${n.word}`;
    case 'ArrayLiteral':
      return `[${n.elements.map(sx).join(' ')}]`;
    case 'Identifier':
      return n.name;
    case 'XEvent':
      return 'xEvent';
    case 'Parameter':
      return `$${n.position}`;
    case 'ParentField':
      return `(parent ${n.depth} ${n.name})`;
    case 'Member':
      return `(. ${sx(n.object)} ${n.name})`;
    case 'MethodCall':
      return `(.${n.name} ${[n.object, ...n.args].map(sx).join(' ')})`;
    case 'Filter':
      return `(filter ${sx(n.object)} ${sx(n.predicate)})`;
    case 'Call':
      return `(call ${n.name}${n.args.map((a) => ` ${sx(a)}`).join('')})`;
    case 'Logical':
    case 'Compare':
    case 'Arithmetic':
      return `(${n.op} ${sx(n.left)} ${sx(n.right)})`;
    case 'Not':
      return `(not ${sx(n.operand)})`;
    case 'Negate':
      return `(neg ${sx(n.operand)})`;
    case 'In':
      return `(${n.negated ? 'notIn' : 'in'} ${sx(n.value)} ${sx(n.list)})`;
    case 'Like':
      return `(like ${sx(n.value)} ${JSON.stringify(n.pattern)})`;
    case 'Occurs':
      return `(occurs ${sx(n.subject)} ${tx(n.tail)})`;
    case 'Quantified':
      return `(${n.quantifier} ${n.bindings.map((b) => `${b.name}:${sx(b.source)}`).join(' ')} ${sx(n.body)})`;
    case 'Select':
      return `(select ${n.binding.name}:${sx(n.binding.source)} ${sx(n.body)})`;
    case 'Aggregate':
      return `(${n.fn} ${sx(n.value)} ${n.binding.name}:${sx(n.binding.source)} ${sx(n.body)})`;
    case 'Let':
      return `(let ${n.name} ${sx(n.value)} ${sx(n.body)})`;
    case 'Chain':
      return `(chain ${sx(n.source)} ${n.timeField}${n.steps
        .map((s) => ` (${s.label} ${sx(s.what)}${s.when ? ` ${tx(s.when)}` : ''})`)
        .join('')})`;
    case 'Lambda':
      return `(=> ${n.param} ${sx(n.body)})`;
  }
}

function tx(t: OccursTail): string {
  switch (t.form) {
    case 'relative':
      return `{${t.explicitOp ? t.op : `(${t.op})`} ${t.amount} ${t.unit} ${t.direction} ${sx(t.ref)}}`;
    case 'beforeAfter':
      return `{${t.direction} ${sx(t.ref)}}`;
    case 'on':
      return `{${t.explicitOn ? 'on' : '(on)'} ${sx(t.ref)}}`;
    case 'period':
      return `{${t.which} ${t.unit}}`;
    case 'between':
      return `{between ${sx(t.from)} ${sx(t.to)}}`;
  }
}

const shape = (source: string) => sx(parse(source));

function syntaxError(source: string): PqlError {
  try {
    parse(source);
  } catch (error) {
    if (error instanceof PqlError) return error;
    throw error;
  }
  throw new Error(`expected a syntax error for ${source}`);
}

describe('parse: the kitchen sink', () => {
  it('parses the fixture and meets every node kind and every occurs form', () => {
    const seen = new Set<string>();
    walk(parse(kitchenSink), (node) => {
      seen.add(node.kind);
      if (node.kind === 'Occurs') {
        const t = node.tail;
        seen.add(`tail:${t.form}`);
        if (t.form === 'relative') seen.add(`relative:${t.explicitOp}:${t.direction}`);
        if (t.form === 'on') seen.add(`on:${t.explicitOn}`);
        if (t.form === 'period') seen.add(`period:${t.which}`);
      }
      if (node.kind === 'Aggregate') seen.add(`aggregate:${node.fn}`);
      if (node.kind === 'Quantified') seen.add(`${node.quantifier}:${node.bindings.length}`);
      if (node.kind === 'Chain') for (const step of node.steps) seen.add(`step:${step.when ? 'when' : 'bare'}`);
    });
    const required = [
      ...['Literal', 'TimeWord', 'ArrayLiteral', 'Identifier', 'XEvent', 'Parameter', 'ParentField', 'Member'],
      ...['MethodCall', 'Filter', 'Call', 'Logical', 'Not', 'Compare', 'Arithmetic', 'Negate', 'In', 'Like'],
      ...['Occurs', 'Quantified', 'Select', 'Aggregate', 'Let', 'Chain', 'Lambda'],
      ...['tail:relative', 'tail:beforeAfter', 'tail:on', 'tail:period', 'tail:between'],
      ...['relative:true:before', 'relative:false:before', 'relative:true:after', 'relative:false:from'],
      ...['on:true', 'on:false', 'period:this', 'period:last', 'period:next'],
      ...['aggregate:sum', 'aggregate:count', 'aggregate:average', 'aggregate:min', 'aggregate:max'],
      ...['exists:2', 'forall:1', 'step:when', 'step:bare'],
    ];
    expect(required.filter((r) => !seen.has(r))).toEqual([]);
  });
});

describe('parse: literals and primaries', () => {
  it.each([
    ['"pizza"', '"pizza"'],
    ['412', '412'],
    ['3.14', '3.14'],
    ['1e3', '1000'],
    ['2.5E-2', '0.025'],
    ['-201', '(neg 201)'],
    ['TRUE', 'true'],
    ['False', 'false'],
    ['null', 'null'],
    ['now', '@now'],
    ['Today', '@today'],
    ['yesterday', '@yesterday'],
    ['tomorrow', '@tomorrow'],
    ['[1, 4, 7]', '[1 4 7]'],
    ['[]', '[]'],
    ['xEvent', 'xEvent'],
    ['XEVENT', 'XEVENT'],
    ['`xEvent`', 'xEvent'],
    ['$1', '$1'],
    ['^.x', '(parent 1 x)'],
    ['^ ^ ^.x', '(parent 3 x)'],
    ['date(2024, 3, 14)', '(call date 2024 3 14)'],
    ['currentYear()', '(call currentYear)'],
    ['`web`.`page-name`', '(. web page-name)'],
    ['`a``b`', 'a`b'],
  ])('%s', (source, expected) => {
    expect(shape(source)).toBe(expected);
  });

  it('keeps a back-quoted xEvent apart from the event array', () => {
    expect(parse('`xEvent`').kind).toBe('Identifier');
    expect(parse('xEvent').kind).toBe('XEvent');
  });

  it('reads `[` after an expression as a filter and where an expression starts as an array', () => {
    expect(shape('a[b][1]')).toBe('(filter (filter a b) 1)');
    expect(shape('x in [1]')).toBe('(in x [1])');
    expect(shape('[1][0]')).toBe('(filter [1] 0)');
  });
});

describe('parse: operators and precedence (docs/pql.md §3)', () => {
  it.each([
    ['a or b and c', '(or a (and b c))'],
    ['a and b or c', '(or (and a b) c)'],
    ['a or b or c', '(or (or a b) c)'],
    ['not a and b', '(and (not a) b)'],
    ['not a = b', '(not (= a b))'],
    ['!!a', '(not (not a))'],
    ['NOT not a', '(not (not a))'],
    ['a = b + c * d', '(= a (+ b (* c d)))'],
    ['a - b - c', '(- (- a b) c)'],
    ['a / b % c * d', '(* (% (/ a b) c) d)'],
    ['-a * b', '(* (neg a) b)'],
    ['--a', '(neg (neg a))'],
    ['-a.b[c].d()', '(neg (.d (filter (. a b) c)))'],
    ['(a or b) and c', '(and (or a b) c)'],
    ['a + b in [1]', '(in (+ a b) [1])'],
    ['a NotIn b', '(notIn a b)'],
    ['a like "x%"', '(like a "x%")'],
    [
      'a != b and c <= d and e >= f and g < h and i > j',
      '(and (and (and (and (!= a b) (<= c d)) (>= e f)) (< g h)) (> i j))',
    ],
  ])('%s', (source, expected) => {
    expect(shape(source)).toBe(expected);
  });

  it('parses methods, members and filters left to right', () => {
    expect(shape('a.b(c, d).e[f].g()')).toBe('(.g (filter (. (.b a c d) e) f))');
  });

  it('keeps keywords contextual: any name after a dot, operator-free words as fields', () => {
    expect(shape('loyalty.last = a.next')).toBe('(= (. loyalty last) (. a next))');
    expect(shape('x.count() + x.sum(y) + x.from.on.this')).toBe(
      '(+ (+ (.count x) (.sum x y)) (. (. (. x from) on) this))',
    );
    expect(shape('count in [1, 2]')).toBe('(in count [1 2])');
    expect(shape('sum > 3 and exists = true and let = 1')).toBe('(and (and (> sum 3) (= exists true)) (= let 1))');
    expect(shape('last = next and from = where and on = this')).toBe(
      '(and (and (= last next) (= from where)) (= on this))',
    );
    expect(shape('`and` = `not`(1)')).toBe('(= and (call not 1))');
  });
});

describe('parse: occurs', () => {
  it.each([
    ['t occurs today', '(occurs t {(on) @today})'],
    ['t occurs on date(2024, 1, 5)', '(occurs t {on (call date 2024 1 5)})'],
    ['t occurs this month', '(occurs t {this month})'],
    ['t occurs LAST weeks', '(occurs t {last week})'],
    ['t occurs next Year', '(occurs t {next year})'],
    ['t occurs <= 7 days before now', '(occurs t {<= 7 day before @now})'],
    ['t occurs 3 days before today', '(occurs t {(=) 3 day before @today})'],
    ['t occurs = 3 days before today', '(occurs t {= 3 day before @today})'],
    ['t occurs > 1.5 hours from x.y', '(occurs t {> 1.5 hour from (. x y)})'],
    ['t occurs 2 MILLISECONDS after ^.t', '(occurs t {(=) 2 millisecond after (parent 1 t)})'],
    ['t occurs before date("2024-01-01")', '(occurs t {before (call date "2024-01-01")})'],
    ['t occurs after p.created', '(occurs t {after (. p created)})'],
    ['t occurs between a and b and c', '(and (occurs t {between a b}) c)'],
    ['t occurs last', '(occurs t {(on) last})'],
    ['t occurs this.x', '(occurs t {(on) (. this x)})'],
    ['t occurs 5', '(occurs t {(on) 5})'],
    ['t occurs `before`', '(occurs t {(on) before})'],
  ])('%s', (source, expected) => {
    expect(shape(source)).toBe(expected);
  });
});

describe('parse: quantifiers, select, aggregates, let, CHAIN', () => {
  it.each([
    ['exists E from xEvent where E.a = 1 and b', '(exists E:xEvent (and (= (. E a) 1) b))'],
    ['forall E from xEvent, F from E.items: F.ok', '(forall E:xEvent F:(. E items) (. F ok))'],
    ['a and exists E from x where b or c', '(and a (exists E:x (or b c)))'],
    ['not exists E from x where b', '(not (exists E:x b))'],
    ['(exists E from x where b) or c', '(or (exists E:x b) c)'],
    ['exists from from x where from.y', '(exists from:x (. from y))'],
    ['select S from xEvent[a] where S.b', '(select S:(filter xEvent a) (. S b))'],
    ['sum E.x over E from xEvent where E.y > 1', '(sum (. E x) E:xEvent (> (. E y) 1))'],
    ['COUNT E over E from xEvent where true', '(count E E:xEvent true)'],
    ['let S = (a.sum(b)) in (S > 1 and S < 9)', '(let S (.sum a b) (and (> S 1) (< S 9)))'],
    ['if(a, 2, 1) = 2', '(= (call if a 2 1) 2)'],
    [
      'CHAIN(xEvent, timestamp, [A: WHAT(x = 1), B: what(y) When(<= 1 hours after A)])',
      '(chain xEvent timestamp (A (= x 1)) (B y {<= 1 hour after A}))',
    ],
    ['not chain(xEvent, ts, [a: WHAT(b) WHEN(today)])', '(not (chain xEvent ts (a b {(on) @today})))'],
    ['`chain`(1)', '(call chain 1)'],
  ])('%s', (source, expected) => {
    expect(shape(source)).toBe(expected);
  });
});

describe('parse: locations', () => {
  const source = 'a.b = 1\n  and /* c */ xEvent[\n    t occurs <= 7 days before now\n  ].count() >= 3';
  const tree = parse(source);

  it('spans the whole construct (offset, length, line, column)', () => {
    expect(tree.loc).toEqual({ offset: 0, length: source.length, line: 1, column: 1 });
    if (tree.kind !== 'Logical' || tree.right.kind !== 'Compare') throw new Error('shape');
    const count = tree.right.left;
    expect(count.loc).toEqual({ offset: 22, length: 53, line: 2, column: 15 });
    expect(source.slice(count.loc.offset, count.loc.offset + count.loc.length)).toBe(
      'xEvent[\n    t occurs <= 7 days before now\n  ].count()',
    );
    if (count.kind !== 'MethodCall' || count.object.kind !== 'Filter') throw new Error('shape');
    const occurs = count.object.predicate;
    expect(occurs.loc).toMatchObject({ line: 3, column: 5, length: 29 });
    if (occurs.kind !== 'Occurs') throw new Error('shape');
    expect(occurs.tail.loc).toMatchObject({ line: 3, column: 14, length: 20 });
    if (occurs.tail.form !== 'relative') throw new Error('shape');
    expect(occurs.tail.ref.loc).toMatchObject({ line: 3, column: 31, length: 3 });
  });

  it('includes parentheses only where the construct reaches them', () => {
    const t = parse('(a or b) and c');
    expect(t.loc).toMatchObject({ offset: 0, length: 14 });
    if (t.kind !== 'Logical') throw new Error('shape');
    expect(t.left.loc).toMatchObject({ offset: 1, length: 6 });
    expect(parse('-201').loc).toMatchObject({ length: 4 });
  });
});

describe('parse: syntax errors', () => {
  it.each([
    [
      'a = b = c',
      'Expected end of expression but found "=" (comparisons do not chain: use parentheses)',
      1,
      7,
      ['end of expression'],
    ],
    ['f(a b)', 'Expected ")" or "," but found "b"', 1, 5, [')', ',']],
    ['(a and', 'Unexpected end of expression, expected expression', 1, 7, ['expression']],
    ['x.startsWith("a"', 'Unexpected end of expression, expected ")" or ","', 1, 17, [')', ',']],
    ['a and\n  b or )', 'Expected expression but found ")"', 2, 8, ['expression']],
    ['[1, 2', 'Unexpected end of expression, expected "]" or ","', 1, 6, [']', ',']],
    ['a.', 'Unexpected end of expression, expected identifier', 1, 3, ['identifier']],
    ['a like b', 'Expected string but found "b"', 1, 8, ['string']],
    ['$x', 'Expected integer but found "x"', 1, 2, ['integer']],
    ['t occurs <= days before now', 'Expected number but found "days"', 1, 13, ['number']],
    ['t occurs <= 7 furlongs', 'Expected time unit but found "furlongs"', 1, 15, ['time unit']],
    ['t occurs 7 days ago', 'Expected "before", "after" or "from" but found "ago"', 1, 17, ['before', 'after', 'from']],
    ['t occurs between a or b', 'Expected "and" but found "or"', 1, 20, ['and']],
    ['exists E in xEvent where x', 'Expected "from" but found "in"', 1, 10, ['from']],
    ['exists E from xEvent x', 'Expected ",", "where" or ":" but found "x"', 1, 22, [',', 'where', ':']],
    ['sum E.x from E', 'Expected "over" but found "from"', 1, 9, ['over']],
    ['let x = 1 in (x)', 'Expected "(" but found "1"', 1, 9, ['(']],
    [
      'CHAIN(xEvent, timestamp, [A: WHAT(a) WHEN(<= 1 hours after A and b)])',
      'Expected ")" but found "and"',
      1,
      62,
      [')'],
    ],
    ['CHAIN(xEvent, ts, [A: WHEN(a)])', 'Expected "WHAT" but found "WHEN"', 1, 23, ['WHAT']],
    ['CHAIN(xEvent, ts, [])', 'Expected identifier but found "]"', 1, 20, ['identifier']],
    ['a = and', 'Expected expression but found "and"', 1, 5, ['expression']],
    [
      'x = exists E from y where z',
      'Expected expression but found "exists" (put a quantifier or aggregate in parentheses here)',
      1,
      5,
      ['expression'],
    ],
    [
      't occurs )',
      'Expected comparison operator, "before", "after", "between", "this", "last", "next", "on" or expression but found ")"',
      1,
      10,
      ['comparison operator', 'before', 'after', 'between', 'this', 'last', 'next', 'on', 'expression'],
    ],
    ['', 'Unexpected end of expression, expected expression', 1, 1, ['expression']],
  ])('%j', (source, message, line, column, expected) => {
    const error = syntaxError(source);
    expect(error.code).toBe('PQL_SYNTAX_ERROR');
    expect(error.message).toBe(message);
    expect(error.expected).toEqual(expected);
    expect([error.loc.line, error.loc.column]).toEqual([line, column]);
  });

  it('reports a lexical error only once the parser reaches it', () => {
    expect(syntaxError('(a b #').message).toBe('Expected ")" but found "b"');
    expect(syntaxError('a and "open').message).toBe('Unterminated string');
  });

  it('prints the offending line with a caret under the token', () => {
    const error = syntaxError('a = 1\n  and b startsWith "x"');
    expect(error.format()).toBe(
      [
        'Expected end of expression but found "startsWith" (line 2, column 9)',
        '2 |   and b startsWith "x"',
        '            ^~~~~~~~~~',
      ].join('\n'),
    );
  });
});

describe('parse: limits', () => {
  it('rejects text longer than 16 KiB at offset 0', () => {
    const longest = `"${'x'.repeat(16 * 1024 - 2)}"`;
    expect(parse(longest).kind).toBe('Literal');
    const error = syntaxError(`${longest} `);
    expect(error.message).toBe('expression is longer than 16 KiB');
    expect(error.loc).toMatchObject({ offset: 0, line: 1, column: 1 });
  });

  it.each([
    ['parentheses', (n: number) => `${'('.repeat(n)}a${')'.repeat(n)}`, (n: number) => n - 1],
    ['arrays', (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`, (n: number) => n - 1],
    ['not', (n: number) => `${'not '.repeat(n)}a`, (n: number) => 4 * (n - 1)],
    ['!', (n: number) => `${'!'.repeat(n)}a`, (n: number) => n - 1],
    ['unary minus', (n: number) => `${'-'.repeat(n)}a`, (n: number) => n - 1],
    ['members', (n: number) => `a${'.b'.repeat(n)}`, (n: number) => 1 + 2 * (n - 1)],
    ['filters', (n: number) => `a${'[b]'.repeat(n)}`, (n: number) => 1 + 3 * (n - 1)],
    ['calls', (n: number) => `${'f('.repeat(n)}${')'.repeat(n)}`, (n: number) => 2 * (n - 1)],
    ['quantifiers', (n: number) => `${'exists E from x where '.repeat(n)}a`, (n: number) => 22 * (n - 1)],
  ])('accepts 64 levels of %s and rejects 65 at the token that goes too deep', (_, build, offsetOf) => {
    expect(() => parse(build(64))).not.toThrow();
    const error = syntaxError(build(65));
    expect(error.message).toBe('Expression nests deeper than 64 levels');
    expect(error.loc.offset).toBe(offsetOf(65));
  });

  it('caps the height of flat operator chains so that no consumer can run out of stack', () => {
    expect(() => parse(Array(500).fill('a').join(' or '))).not.toThrow();
    expect(syntaxError(Array(600).fill('a').join(' + ')).message).toBe('Expression is more than 512 operations deep');
  });
});

describe('walk', () => {
  it('visits in pre-order, through occurs tails, bindings and chain steps, and skips on false', () => {
    const names: string[] = [];
    const tree = parse(
      'exists E from src where t occurs between a and b and CHAIN(xEvent, ts, [A: WHAT(w) WHEN(<= 1 day after r)]) and f(skip.me)',
    );
    walk(tree, (node) => {
      if (node.kind === 'Identifier') names.push(node.name);
      return node.kind !== 'Call';
    });
    expect(names).toEqual(['src', 't', 'a', 'b', 'w', 'r']);
  });
});

describe('lambdas in arguments', () => {
  it('parses x => body and (x) => body as a method or function argument, the body an expression', () => {
    expect(shape('a.map(x => x.p * 2)')).toBe('(.map a (=> x (* (. x p) 2)))');
    expect(shape('a.exists((x) => x.p = 1 or q)')).toBe('(.exists a (=> x (or (= (. x p) 1) q)))');
    expect(shape('a.m(x => y, z)')).toBe('(.m a (=> x y) z)');
    expect(shape('f(`and` => 1)')).toBe('(call f (=> and 1))');
    // A parenthesised name not followed by => is an expression.
    expect(shape('a.exists((x) = 1)')).toBe('(.exists a (= x 1))');
  });

  it('keeps lambdas to arguments', () => {
    expect(syntaxError('x => 1').message).toBe('Expected end of expression but found "=>"');
    expect(syntaxError('a.map(x => y => 1)').message).toBe('Expected ")" or "," but found "=>"');
    expect(syntaxError('[x => 1]').message).toContain('but found "=>"');
    expect(syntaxError('a.map(and => 1)').message).toBe('Expected ")" or expression but found "and"');
  });
});
