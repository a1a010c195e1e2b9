import { describe, expect, it } from 'vitest';
import { fromJson, toJson } from '../../src/pql/language/json.js';
import { KEYWORDS } from '../../src/pql/language/lexer.js';
import { parse } from '../../src/pql/language/parser.js';
import { print } from '../../src/pql/language/printer.js';
import {
  AGGREGATE_FNS,
  ARITHMETIC_OPS,
  COMPARE_OPS,
  isAggregateFn,
  isArithmeticOp,
  isCompareOp,
  isOccursDirection,
  isPeriod,
  isQuantifier,
  isTimeUnit,
  isTimeWord,
  OCCURS_DIRECTIONS,
  OPERATOR_WORDS,
  PERIODS,
  QUANTIFIERS,
  TIME_UNITS,
  TIME_WORDS,
} from '../../src/pql/language/vocabulary.js';

// The vocabulary is spelled once; these tests hold every stage to it, so a word added there
// that one stage does not accept fails here rather than in a user's definition.

const roundTrip = (text: string) => {
  const tree = parse(text);
  expect(print(fromJson(toJson(tree)))).toBe(print(tree));
  return tree;
};

describe('the closed vocabularies', () => {
  it('guards accept exactly their members', () => {
    const cases: [(s: string) => boolean, readonly string[], string[]][] = [
      [isCompareOp, COMPARE_OPS, ['<>', '==', '=>', '']],
      [isArithmeticOp, ARITHMETIC_OPS, ['^', '**', 'mod']],
      [isTimeWord, TIME_WORDS, ['Now', 'tonight', 'yesterdays']],
      [isTimeUnit, TIME_UNITS, ['days', 'Day', 'fortnight']],
      [isAggregateFn, AGGREGATE_FNS, ['avg', 'Sum', 'total']],
      [isQuantifier, QUANTIFIERS, ['any', 'all', 'select']],
      [isOccursDirection, OCCURS_DIRECTIONS, ['since', 'until']],
      [isPeriod, PERIODS, ['previous', 'coming']],
    ];
    for (const [guard, members, strangers] of cases) {
      for (const m of members) expect(guard(m), m).toBe(true);
      for (const s of strangers) expect(guard(s), s).toBe(false);
    }
  });

  it('every vocabulary word is a keyword, so the printer quotes a field of that name', () => {
    const words = [
      ...TIME_WORDS,
      ...TIME_UNITS,
      ...TIME_UNITS.map((u) => `${u}s`),
      ...AGGREGATE_FNS,
      ...QUANTIFIERS,
      ...OCCURS_DIRECTIONS,
      ...PERIODS,
      ...OPERATOR_WORDS,
    ];
    for (const w of words) {
      expect(KEYWORDS.has(w), w).toBe(true);
      expect(print({ kind: 'Identifier', name: w, loc: { offset: 0, length: 0, line: 1, column: 1 } })).toBe(
        `\`${w}\``,
      );
    }
  });

  it('every comparison and arithmetic operator parses, prints and survives pql/json', () => {
    for (const op of COMPARE_OPS) {
      expect(roundTrip(`a ${op} 1`)).toMatchObject({ kind: 'Compare', op });
    }
    for (const op of ARITHMETIC_OPS) {
      expect(roundTrip(`a ${op} 1 > 0`)).toMatchObject({ kind: 'Compare', left: { kind: 'Arithmetic', op } });
    }
  });

  it('every time word, unit, direction and period parses, prints and survives pql/json', () => {
    for (const word of TIME_WORDS)
      expect(roundTrip(`t < ${word}`)).toMatchObject({ right: { kind: 'TimeWord', word } });
    for (const unit of TIME_UNITS) {
      for (const direction of OCCURS_DIRECTIONS) {
        expect(roundTrip(`t occurs < 3 ${unit}s ${direction} now`)).toMatchObject({
          tail: { form: 'relative', unit, direction, amount: 3 },
        });
      }
      for (const which of PERIODS) {
        expect(roundTrip(`t occurs ${which} ${unit}`)).toMatchObject({ tail: { form: 'period', which, unit } });
      }
    }
  });

  it('every aggregate and quantifier parses, prints and survives pql/json', () => {
    for (const fn of AGGREGATE_FNS) {
      expect(roundTrip(`(${fn} E.x over E from xs where E.y) > 1`)).toMatchObject({ left: { kind: 'Aggregate', fn } });
    }
    for (const quantifier of QUANTIFIERS) {
      expect(roundTrip(`${quantifier} E from xs where E.y`)).toMatchObject({ kind: 'Quantified', quantifier });
    }
  });

  it('pql/json names the allowed words when one is wrong', () => {
    const bad = toJson(parse('t occurs 3 days before now')) as { params: { params: unknown[] }[] };
    bad.params[1]!.params[2] = { nodeType: 'literal', literalType: 'String', value: 'fortnight' };
    expect(() => fromJson(bad)).toThrow(`expected one of ${TIME_UNITS.map((u) => `"${u}"`).join(', ')}`);
  });
});
