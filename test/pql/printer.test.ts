import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ExpressionNode } from '../../src/pql/language/ast.js';
import { parse } from '../../src/pql/language/parser.js';
import { print } from '../../src/pql/language/printer.js';

const kitchenSink = readFileSync(new URL('./fixtures/kitchen-sink.pql', import.meta.url), 'utf8');
const withoutLoc = (node: ExpressionNode) => JSON.parse(JSON.stringify(node, (k, v) => (k === 'loc' ? undefined : v)));
const L = { offset: 0, length: 0, line: 1, column: 1 };

describe('print', () => {
  it('prints the kitchen sink to text that parses back to the same tree', () => {
    const tree = parse(kitchenSink);
    const text = print(tree);
    expect(withoutLoc(parse(text))).toEqual(withoutLoc(tree));
  });

  it('is idempotent on the kitchen sink', () => {
    const once = print(parse(kitchenSink));
    expect(print(parse(once))).toBe(once);
  });

  it.each([
    // spacing and keyword case
    ['a   AND\n b OR NOT c', 'a and b or not c'],
    ['!a', 'not a'],
    ['a NOTIN [1,2]', 'a notIn [1, 2]'],
    ['x LIKE "a%"', 'x like "a%"'],
    ['TRUE = False or y = NULL', 'true = false or y = null'],
    ['t OCCURS Today', 't occurs today'],
    ['f( a ,b )', 'f(a, b)'],
    ['a.b ( )', 'a.b()'],
    ['a/*c*/.b', 'a.b'],
    ['Exists E From x Where E', 'exists E from x where E'],
    ['forall E from x: E', 'forall E from x where E'],
    ['chain(xEvent, ts, [a: what(b) when(TODAY)])', 'CHAIN(xEvent, ts, [a: WHAT(b) WHEN(today)])'],
    // numbers
    ['1e3 + 2.50 + 007 + 1E21 + 1e-7 + 0.1', '1000 + 2.5 + 7 + 1e+21 + 1e-7 + 0.1'],
    ['-201', '-201'],
    // strings
    ['"a\\/b\\u00e9\\u0001\\"\\\\\\n"', '"a/bé\\u0001\\"\\\\\\n"'],
    // identifiers
    ['`plain` = `page-name`', 'plain = `page-name`'],
    ['`and` = `Count` and `xEvent` = `a``b`', '`and` = `Count` and `xEvent` = `a``b`'],
    ['a.`and`.`page name`.count()', 'a.and.`page name`.count()'],
    ['^^.`last` = $2', '^^.last = $2'],
    ['exists `from` from x where `from`', 'exists `from` from x where `from`'],
    // occurs: explicit op and `on` are kept; units follow the amount
    ['t occurs 1 DAYS before now', 't occurs 1 day before now'],
    ['t occurs = 2 day from now', 't occurs = 2 days from now'],
    ['t occurs on today and t occurs today', 't occurs on today and t occurs today'],
    ['t occurs `last` and t occurs last years', 't occurs `last` and t occurs last year'],
    ['t occurs between (a + b) and c[d]', 't occurs between (a + b) and c[d]'],
  ])('%j → %j', (source, expected) => {
    expect(print(parse(source))).toBe(expected);
  });

  it.each([
    ['(a and b) and c', 'a and b and c'],
    ['a and (b and c)', 'a and (b and c)'],
    ['(a or b) and (c or d)', '(a or b) and (c or d)'],
    ['a or (b and c)', 'a or b and c'],
    ['not (a and b)', 'not (a and b)'],
    ['not (a = b)', 'not a = b'],
    ['(a = b) = c', '(a = b) = c'],
    ['a - (b - c)', 'a - (b - c)'],
    ['(a - b) - c', 'a - b - c'],
    ['(a + b) * c', '(a + b) * c'],
    ['a * (b / c)', 'a * (b / c)'],
    ['-(a + b)', '-(a + b)'],
    ['-(-a)', '--a'],
    ['a - (-b)', 'a - -b'],
    ['(-a).b', '(-a).b'],
    ['(a + b).c[d]', '(a + b).c[d]'],
    ['(x in [1]) = true', '(x in [1]) = true'],
    ['(t occurs today) = (u like "x")', '(t occurs today) = (u like "x")'],
    ['(3).x', '3.x'],
    ['(exists E from x where a) and b', '(exists E from x where a) and b'],
    ['b and (exists E from x where a)', 'b and exists E from x where a'],
    ['(b and exists E from x where a) or c', 'b and (exists E from x where a) or c'],
    ['(not exists E from x where a) and b', 'not (exists E from x where a) and b'],
    ['(select S from x where a).count()', '(select S from x where a).count()'],
    ['exists E from (a + b) where c', 'exists E from (a + b) where c'],
    ['x[exists E from y where z]', 'x[exists E from y where z]'],
    ['f(sum E.v over E from x where y)', 'f(sum E.v over E from x where y)'],
    ['exists E from x where (exists F from y where a) or b', 'exists E from x where (exists F from y where a) or b'],
  ])('parenthesises %j as %j', (source, expected) => {
    const text = print(parse(source));
    expect(text).toBe(expected);
    expect(withoutLoc(parse(text))).toEqual(withoutLoc(parse(source)));
  });

  it('prints trees that no text produced, keeping them parseable', () => {
    const member: ExpressionNode = {
      kind: 'Member',
      object: { kind: 'Literal', value: 3.5, loc: L },
      name: 'x y',
      loc: L,
    };
    expect(print(member)).toBe('3.5.`x y`');
    const lone: ExpressionNode = { kind: 'Literal', value: 'a\ud800b\u2028', loc: L };
    expect(print(lone)).toBe('"a\\ud800b\u2028"');
    expect(parse(print(lone))).toMatchObject({ value: 'a\ud800b\u2028' });
    const call: ExpressionNode = { kind: 'Call', name: 'not', args: [], loc: L };
    expect(print(call)).toBe('`not`()');
    expect(parse(print(call))).toMatchObject({ kind: 'Call', name: 'not' });
  });
});
