import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ExpressionNode, OccursTail } from '../../src/pql/language/ast.js';
import { PqlError } from '../../src/pql/language/errors.js';
import { fromJson, toJson } from '../../src/pql/language/json.js';
import { parse } from '../../src/pql/language/parser.js';
import { print } from '../../src/pql/language/printer.js';

const kitchenSink = readFileSync(new URL('./fixtures/kitchen-sink.pql', import.meta.url), 'utf8');
const withoutLoc = (node: unknown) => JSON.parse(JSON.stringify(node, (k, v) => (k === 'loc' ? undefined : v)));
const loc = { offset: 0, length: 0, line: 1, column: 1 };

/** Parses or throws PqlError; anything else fails the property. When it parses, the printed text must parse back. */
function parsesOrThrowsPqlError(source: string): void {
  let tree: ExpressionNode;
  try {
    tree = parse(source);
  } catch (error) {
    if (!(error instanceof PqlError)) throw error;
    expect(error.code).toBe('PQL_SYNTAX_ERROR');
    expect(error.loc.offset).toBeGreaterThanOrEqual(0);
    expect(error.loc.offset).toBeLessThanOrEqual(source.length);
    expect(typeof error.format()).toBe('string');
    return;
  }
  const text = print(tree);
  expect(withoutLoc(parse(text))).toEqual(withoutLoc(tree));
}

const pqlWords = [
  ...['a', 'b', 'x.y', 'E', 'xEvent', '$1', '^.p', '^^.q', '`w q`', '"s"', '"\\n"', '7', '3.5', '1e3', 'now', 'today'],
  ...['and', 'or', 'not', '!', 'in', 'notIn', 'like', 'occurs', 'exists', 'forall', 'select', 'from', 'where'],
  ...['over', 'let', 'true', 'null', 'before', 'after', 'between', 'on', 'this', 'last', 'next', 'days', 'hour'],
  ...['sum', 'count', 'CHAIN', 'WHAT', 'WHEN', '(', ')', '[', ']', ',', '.', ':', '=', '!=', '<=', '>', '+', '-'],
  ...['*', '/', '%', '/* c */', '.count()', 'date(2024, 1, 1)'],
];

describe('fuzz: the parser returns a tree or throws PqlError, nothing else', () => {
  it('on random strings', () => {
    fc.assert(fc.property(fc.string({ maxLength: 80 }), parsesOrThrowsPqlError), { numRuns: 2000 });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), parsesOrThrowsPqlError), { numRuns: 500 });
  });

  it('on random sequences of PQL tokens', () => {
    const tokens = fc.array(fc.constantFrom(...pqlWords), { maxLength: 25 }).map((words) => words.join(' '));
    fc.assert(fc.property(tokens, parsesOrThrowsPqlError), { numRuns: 3000 });
  });

  it('on mutations of the kitchen sink (delete, insert, duplicate slices)', () => {
    const n = kitchenSink.length;
    const slice = fc.tuple(fc.nat(n), fc.nat(n)).map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const);
    const mutation = fc.oneof(
      slice.map(
        ([a, b]) =>
          (s: string) =>
            s.slice(0, a) + s.slice(b),
      ),
      fc.tuple(fc.nat(n), fc.constantFrom(...pqlWords, '"', '`', '/*', '(((', ']]')).map(
        ([at, text]) =>
          (s: string) =>
            s.slice(0, at) + text + s.slice(at),
      ),
      fc.tuple(slice, fc.nat(n)).map(
        ([[a, b], at]) =>
          (s: string) =>
            s.slice(0, at) + s.slice(a, b) + s.slice(at),
      ),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
        parsesOrThrowsPqlError(mutations.reduce((s, m) => m(s), kitchenSink));
      }),
      { numRuns: 1500 },
    );
  });

  it.each([
    ['16,000 "("', '('.repeat(16_000)],
    ['16,000 "[" ', '['.repeat(16_000)],
    ['not not not …', 'not '.repeat(4_000)],
    ['!!!…', '!'.repeat(16_000)],
    ['----…', '-'.repeat(16_000)],
    ['a.b.c.d…', `a${'.b'.repeat(8_000)}`],
    ['a[a[a[…', 'a['.repeat(8_000)],
    ['f(f(f(…', 'f('.repeat(8_000)],
    ['a+a+a…', Array(8_000).fill('a').join('+')],
    ['exists E from x where …', 'exists E from x where '.repeat(700)],
    ['an unterminated comment', `/*${' '.repeat(16_000)}`],
    ['an unterminated string', `"${'x'.repeat(16_000)}`],
    ['17 KiB of spaces', ' '.repeat(17 * 1024)],
  ])('fails fast on %s', (_, source) => {
    const started = performance.now();
    expect(() => parse(source)).toThrow(PqlError);
    // A loose regression guard against super-linear behaviour, not a benchmark.
    expect(performance.now() - started).toBeLessThan(100);
  });
});

// Random trees of every kind, restricted to what the grammar can express (non-negative
// numbers, names without line breaks, at least one binding and step, a plain aggregate value).
const name = fc.oneof(
  fc.constantFrom('a', 'E', 'tier', 'count', 'last', 'from', 'and', 'NOT', 'xEvent', 'days', 'web-page', 'a`b', 'é'),
  fc.string({ minLength: 1, maxLength: 4 }).filter((s) => !/[\n\r]/.test(s)),
);
const number = fc.oneof(
  fc.nat(),
  fc.double({ min: 0, max: 1e300, noNaN: true }).filter((x) => !Object.is(x, -0)),
  fc.constantFrom(1e21, 1e-7, 0.1),
);
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const leaf: fc.Arbitrary<ExpressionNode> = fc.oneof(
  fc.oneof(fc.string({ unit: codeUnit, maxLength: 6 }), number, fc.boolean(), fc.constant(null)).map((value) => ({
    kind: 'Literal' as const,
    value,
    loc,
  })),
  fc.constantFrom('now', 'today', 'yesterday', 'tomorrow').map((word) => ({ kind: 'TimeWord' as const, word, loc })),
  name.map((n) => ({ kind: 'Identifier' as const, name: n, loc })),
  fc.constant({ kind: 'XEvent' as const, loc }),
  fc.nat(3).map((position) => ({ kind: 'Parameter' as const, position, loc })),
  fc
    .tuple(fc.integer({ min: 1, max: 3 }), name)
    .map(([depth, n]) => ({ kind: 'ParentField' as const, depth, name: n, loc })),
);
const compareOp = fc.constantFrom('=', '!=', '<', '<=', '>', '>=' as const);
const unit = fc.constantFrom('millisecond', 'second', 'minute', 'hour', 'day', 'week', 'month', 'year' as const);

const { tree } = fc.letrec<{ tree: ExpressionNode; tail: OccursTail }>((tie) => {
  const e = tie('tree');
  const list = fc.array(e, { maxLength: 3 });
  const binding = fc.tuple(name, e).map(([n, source]) => ({ kind: 'Binding' as const, name: n, source, loc }));
  return {
    tail: fc.oneof(
      fc
        .tuple(compareOp, fc.boolean(), number, unit, fc.constantFrom('before', 'after', 'from' as const), e)
        .map(([op, explicitOp, amount, u, direction, ref]) => ({
          form: 'relative' as const,
          op: explicitOp ? op : '=',
          explicitOp,
          amount,
          unit: u,
          direction,
          ref,
          loc,
        })),
      fc.tuple(fc.constantFrom('before', 'after' as const), e).map(([direction, ref]) => ({
        form: 'beforeAfter' as const,
        direction,
        ref,
        loc,
      })),
      fc.tuple(fc.boolean(), e).map(([explicitOn, ref]) => ({ form: 'on' as const, explicitOn, ref, loc })),
      fc.tuple(fc.constantFrom('this', 'last', 'next' as const), unit).map(([which, u]) => ({
        form: 'period' as const,
        which,
        unit: u,
        loc,
      })),
      fc.tuple(e, e).map(([from, to]) => ({ form: 'between' as const, from, to, loc })),
    ),
    tree: fc.oneof(
      { depthSize: 'small', maxDepth: 5 },
      leaf,
      list.map((elements) => ({ kind: 'ArrayLiteral' as const, elements, loc })),
      fc.tuple(e, name).map(([object, n]) => ({ kind: 'Member' as const, object, name: n, loc })),
      fc.tuple(e, name, list).map(([object, n, args]) => ({ kind: 'MethodCall' as const, object, name: n, args, loc })),
      fc.tuple(e, e).map(([object, predicate]) => ({ kind: 'Filter' as const, object, predicate, loc })),
      fc.tuple(name, list).map(([n, args]) => ({ kind: 'Call' as const, name: n, args, loc })),
      fc.tuple(fc.constantFrom('and', 'or' as const), e, e).map(([op, left, right]) => ({
        kind: 'Logical' as const,
        op,
        left,
        right,
        loc,
      })),
      e.map((operand) => ({ kind: 'Not' as const, operand, loc })),
      fc.tuple(compareOp, e, e).map(([op, left, right]) => ({ kind: 'Compare' as const, op, left, right, loc })),
      fc.tuple(fc.constantFrom('+', '-', '*', '/', '%' as const), e, e).map(([op, left, right]) => ({
        kind: 'Arithmetic' as const,
        op,
        left,
        right,
        loc,
      })),
      e.map((operand) => ({ kind: 'Negate' as const, operand, loc })),
      fc
        .tuple(fc.boolean(), e, e)
        .map(([negated, value, l]) => ({ kind: 'In' as const, negated, value, list: l, loc })),
      fc
        .tuple(e, fc.string({ maxLength: 4 }))
        .map(([value, pattern]) => ({ kind: 'Like' as const, value, pattern, loc })),
      fc.tuple(e, tie('tail')).map(([subject, tail]) => ({ kind: 'Occurs' as const, subject, tail, loc })),
      fc
        .tuple(fc.constantFrom('exists', 'forall' as const), fc.array(binding, { minLength: 1, maxLength: 2 }), e)
        .map(([quantifier, bindings, body]) => ({ kind: 'Quantified' as const, quantifier, bindings, body, loc })),
      fc.tuple(binding, e).map(([b, body]) => ({ kind: 'Select' as const, binding: b, body, loc })),
      fc
        .tuple(fc.constantFrom('sum', 'count', 'average', 'min', 'max' as const), name, name, binding, e)
        .map(([fn, v, field, b, body]) => ({
          kind: 'Aggregate' as const,
          fn,
          value: { kind: 'Member' as const, object: { kind: 'Identifier' as const, name: v, loc }, name: field, loc },
          binding: b,
          body,
          loc,
        })),
      fc.tuple(name, e, e).map(([n, value, body]) => ({ kind: 'Let' as const, name: n, value, body, loc })),
      fc
        .tuple(
          e,
          name,
          fc.array(fc.tuple(name, e, fc.option(tie('tail'), { nil: null })), { minLength: 1, maxLength: 2 }),
        )
        .map(([source, timeField, steps]) => ({
          kind: 'Chain' as const,
          source,
          timeField,
          steps: steps.map(([label, what, when]) => ({ kind: 'ChainStep' as const, label, what, when, loc })),
          loc,
        })),
    ),
  };
});

describe('fuzz: random trees survive print and JSON', () => {
  it('parse(print(tree)) equals the tree, and printing is idempotent', () => {
    fc.assert(
      fc.property(tree, (t) => {
        const text = print(t);
        const back = parse(text);
        expect(withoutLoc(back)).toEqual(withoutLoc(t));
        expect(print(back)).toBe(text);
      }),
      { numRuns: 3000 },
    );
  });

  it('fromJson(toJson(tree)) has the same JSON, is stable, and is the tree unless $1.x became x', () => {
    const via = (t: ExpressionNode) => fromJson(JSON.parse(JSON.stringify(toJson(t))));
    fc.assert(
      fc.property(tree, (t) => {
        const back = via(t);
        expect(toJson(back)).toEqual(toJson(t));
        expect(withoutLoc(via(back))).toEqual(withoutLoc(back));
        // A profile field written `$1.x` has the JSON of a bare `x` (docs/pql.md §9).
        if (!print(t).includes('$1.')) {
          expect(withoutLoc(back)).toEqual(withoutLoc(t));
          expect(print(back)).toBe(print(t));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('fromJson throws PqlError, never anything else, on random JSON', () => {
    const json = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small', maxDepth: 4 },
        fc.jsonValue({ maxDepth: 2 }),
        fc.record(
          {
            nodeType: fc.constantFrom('fnApply', 'fieldLookup', 'literal', 'parameterReference', 'x'),
            fnName: fc.constantFrom('and', 'occurs', 'relative', 'from', 'chain', 'step', '^', '.m', 'call', 'f'),
            fieldName: fc.oneof(fc.string(), fc.integer()),
            literalType: fc.constantFrom('String', 'Number', 'List', 'TimeWord', 'Boolean', 'Null'),
            value: fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.array(tie('node'), { maxLength: 2 })),
            params: fc.oneof(fc.array(tie('node'), { maxLength: 5 }), fc.jsonValue({ maxDepth: 1 })),
            object: fc.oneof(fc.constant(null), tie('node')),
            position: fc.oneof(fc.integer(), fc.double()),
          },
          { requiredKeys: ['nodeType'] },
        ),
      ),
    })).node;
    fc.assert(
      fc.property(json, (j) => {
        try {
          fromJson(j);
        } catch (error) {
          if (!(error instanceof PqlError)) throw error;
        }
      }),
      { numRuns: 3000 },
    );
  });
});
