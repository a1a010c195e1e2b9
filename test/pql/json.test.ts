import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ExpressionNode } from '../../src/pql/language/ast.js';
import { PqlError } from '../../src/pql/language/errors.js';
import { fromJson, type PqlJson, toJson } from '../../src/pql/language/json.js';
import { parse } from '../../src/pql/language/parser.js';
import { print } from '../../src/pql/language/printer.js';
import { walk } from '../../src/pql/language/visitor.js';

const kitchenSink = readFileSync(new URL('./fixtures/kitchen-sink.pql', import.meta.url), 'utf8');
const withoutLoc = (node: ExpressionNode) => JSON.parse(JSON.stringify(node, (k, v) => (k === 'loc' ? undefined : v)));
const viaJson = (node: ExpressionNode) => fromJson(JSON.parse(JSON.stringify(toJson(node))));

const field = (fieldName: string, object: PqlJson | null = null): PqlJson => ({
  nodeType: 'fieldLookup',
  fieldName,
  object,
});
const str = (value: string): PqlJson => ({ nodeType: 'literal', literalType: 'String', value });
const num = (value: number): PqlJson => ({ nodeType: 'literal', literalType: 'Number', value });
const fn = (fnName: string, ...params: PqlJson[]): PqlJson => ({ nodeType: 'fnApply', fnName, params });

function jsonError(json: unknown): PqlError {
  try {
    fromJson(json);
  } catch (error) {
    if (error instanceof PqlError) return error;
    throw error;
  }
  throw new Error('expected fromJson to fail');
}

describe('toJson / fromJson', () => {
  it('round-trips the kitchen sink: same tree, same text, same JSON', () => {
    const tree = parse(kitchenSink);
    const back = viaJson(tree);
    expect(withoutLoc(back)).toEqual(withoutLoc(tree));
    expect(print(back)).toBe(print(tree));
    expect(toJson(back)).toEqual(toJson(tree));
  });

  it('gives every node read from JSON the empty location', () => {
    const locs = new Set<string>();
    walk(viaJson(parse(kitchenSink)), (node) => {
      locs.add(JSON.stringify(node.loc));
    });
    expect([...locs]).toEqual([JSON.stringify({ offset: 0, length: 0, line: 1, column: 1 })]);
  });

  it('writes the docs/pql.md example with the four node types', () => {
    expect(toJson(parse('homeAddress.countryCode in ["SE", "NO"] and $1.age >= -18'))).toEqual(
      fn(
        'and',
        fn('in', field('countryCode', field('homeAddress')), {
          nodeType: 'literal',
          literalType: 'List',
          value: [str('SE'), str('NO')],
        }),
        fn('>=', field('age', { nodeType: 'parameterReference', position: 1 }), fn('negate', num(18))),
      ),
    );
  });

  it.each([
    ['xEvent[a].count()', fn('.count', fn('[]', fn('xEvent'), field('a')))],
    ['^^.tier', fn('^', num(2), str('tier'))],
    ['date(2024, 3)', fn('date', num(2024), num(3))],
    ['`and`(1)', fn('call', str('and'), num(1))],
    ['`.x`()', fn('call', str('.x'))],
    ['x like "a%"', fn('like', field('x'), str('a%'))],
    ['now', { nodeType: 'literal', literalType: 'TimeWord', value: 'now' }],
    [
      'true != null',
      fn(
        '!=',
        { nodeType: 'literal', literalType: 'Boolean', value: true },
        { nodeType: 'literal', literalType: 'Null', value: null },
      ),
    ],
    [
      't occurs 3 days before today',
      fn(
        'occurs',
        field('t'),
        fn('relative', { nodeType: 'literal', literalType: 'Null', value: null }, num(3), str('day'), str('before'), {
          nodeType: 'literal',
          literalType: 'TimeWord',
          value: 'today',
        }),
      ),
    ],
    [
      't occurs < 3 days from x',
      fn('occurs', field('t'), fn('relative', str('<'), num(3), str('day'), str('from'), field('x'))),
    ],
    [
      't occurs on x',
      fn('occurs', field('t'), fn('on', field('x'), { nodeType: 'literal', literalType: 'Boolean', value: true })),
    ],
    ['t occurs last week', fn('occurs', field('t'), fn('last', str('week')))],
    ['t occurs after x', fn('occurs', field('t'), fn('after', field('x')))],
    ['t occurs between a and b', fn('occurs', field('t'), fn('between', field('a'), field('b')))],
    [
      'exists E from x, F from y where z',
      fn('exists', fn('from', str('E'), field('x')), fn('from', str('F'), field('y')), field('z')),
    ],
    ['max E.v over E from x where z', fn('max', field('v', field('E')), fn('from', str('E'), field('x')), field('z'))],
    ['let V = (1) in (V)', fn('let', str('V'), num(1), field('V'))],
    [
      'CHAIN(xEvent, ts, [A: WHAT(a), B: WHAT(b) WHEN(after A)])',
      fn(
        'chain',
        fn('xEvent'),
        str('ts'),
        fn('step', str('A'), field('a')),
        fn('step', str('B'), field('b'), fn('after', field('A'))),
      ),
    ],
  ])('%s', (source, json) => {
    expect(toJson(parse(source))).toEqual(json);
    expect(print(fromJson(json))).toBe(print(parse(source)));
  });

  it.each([
    [null, '$', 'expected a node object'],
    [[], '$', 'expected a node object'],
    [{ nodeType: 'variable' }, '$.nodeType', 'expected "fnApply", "fieldLookup", "parameterReference" or "literal"'],
    [{ nodeType: 'fieldLookup', object: null }, '$.fieldName', 'expected a string'],
    [
      { nodeType: 'fieldLookup', fieldName: '', object: null },
      '$.fieldName',
      'expected a non-empty name without line breaks',
    ],
    [{ nodeType: 'fieldLookup', fieldName: 'a', object: null, loc: 1 }, '$', 'unexpected property "loc"'],
    [
      field('a', field('b', { nodeType: 'literal', literalType: 'Number', value: -5 })),
      '$.object.object.value',
      'expected a finite non-negative number (write -5 as negate of 5)',
    ],
    [{ nodeType: 'literal', literalType: 'String', value: 5 }, '$.value', 'expected a string'],
    [
      { nodeType: 'literal', literalType: 'Date', value: 5 },
      '$.literalType',
      'expected "String", "Number", "Boolean", "Null", "TimeWord" or "List"',
    ],
    [{ nodeType: 'literal', literalType: 'List', value: [num(1), 'x'] }, '$.value[1]', 'expected a node object'],
    [{ nodeType: 'parameterReference', position: 1.5 }, '$.position', 'expected a non-negative integer'],
    [{ nodeType: 'fnApply', fnName: 'and', params: {} }, '$.params', 'expected an array'],
    [fn('and', num(1)), '$.params', '"and" takes 2 parameters, got 1'],
    [fn('not', fn('exists', field('x'))), '$.params[0].params', '"exists" takes at least 2 parameters, got 1'],
    [fn('exists', field('x'), field('y')), '$.params[0].nodeType', 'expected "fnApply"'],
    [
      fn('occurs', field('t'), fn('soon', field('x'))),
      '$.params[1].fnName',
      'expected one of "relative", "before", "after", "on", "this", "last", "next", "between"',
    ],
    [
      fn('occurs', field('t'), fn('relative', str('=='), num(1), str('day'), str('before'), field('x'))),
      '$.params[1].params[0]',
      'expected one of "=", "!=", "<", "<=", ">", ">="',
    ],
    [
      fn('occurs', field('t'), fn('last', str('days'))),
      '$.params[1].params[0]',
      'expected one of "millisecond", "second", "minute", "hour", "day", "week", "month", "year"',
    ],
    [fn('chain', fn('xEvent'), str('ts')), '$.params', '"chain" takes at least 3 parameters, got 2'],
    [
      fn('call', str('date')),
      '$.params[0]',
      'write a call of "date" as fnName "date"; "call" is only for reserved names',
    ],
    [fn('^', num(0), str('x')), '$.params[0]', 'expected a depth of 1 or more'],
  ])('rejects %j at %s', (json, path, reason) => {
    const error = jsonError(json);
    expect(error.code).toBe('PQL_SYNTAX_ERROR');
    expect(error.message).toBe(`Invalid pql/json at ${path}: ${reason}`);
    expect(error.loc).toEqual({ offset: 0, length: 0, line: 1, column: 1 });
  });

  it('rejects trees that have no text form', () => {
    const aggregate = fn(
      'sum',
      { nodeType: 'literal', literalType: 'List', value: [] },
      fn('from', str('E'), field('x')),
      field('y'),
    );
    expect(jsonError(aggregate).message).toMatch(/^Invalid pql\/json at \$: the tree has no PQL text form/);
    let deep: PqlJson = field('a');
    for (let i = 0; i < 100; i++) deep = fn('not', deep);
    expect(jsonError(deep).message).toContain('Expression nests deeper than 64 levels');
  });

  it('rejects very deep JSON with a PqlError, not a stack overflow', () => {
    let deep: PqlJson = field('a');
    for (let i = 0; i < 100_000; i++) deep = fn('not', deep);
    expect(jsonError(deep).message).toMatch(/nodes nest more than 512 deep/);
  });
});
