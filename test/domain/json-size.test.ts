import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonByteLength, jsonBytesBound, jsonLongerThan } from '../../src/domain/json-size.js';

/** Strings of the characters JSON writes longest: controls, quotes, lone surrogates, astral ones. */
const awkward = fc.string({
  unit: fc.constantFrom('\u0000', '\u001f', '"', '\\', '\n', '\ud800', '\udfff', '😀', 'é', '\u2028', 'a'),
});
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    awkward,
    fc.string(),
    fc.double(),
    fc.integer(),
    fc.constantFrom(-0, Number.MAX_VALUE, -Number.MIN_VALUE, 1e21, -1e-5 / 3, -1e-7 / 3, Number.NaN),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.oneof(awkward, fc.string()), tie('value'), { maxKeys: 5 }),
  ),
})).value;

describe('jsonBytesBound', () => {
  it('is never below what JSON.stringify writes, in UTF-8 bytes', () => {
    fc.assert(
      fc.property(json, (value) => {
        expect(jsonBytesBound(value, Number.POSITIVE_INFINITY)).toBeGreaterThanOrEqual(jsonByteLength(value));
      }),
      { numRuns: 2000 },
    );
  });

  it('holds for the characters that serialise longest, one by one', () => {
    for (const s of ['\u0000', '\u001f', '\ud800', '\udfff', '"', '\\', '😀', '\u2028', 'é']) {
      const value = { [s]: [s.repeat(50)] };
      expect(jsonBytesBound(value, Number.POSITIVE_INFINITY)).toBeGreaterThanOrEqual(jsonByteLength(value));
    }
  });

  it('stops counting past its stop, and leaves values with rules of their own to serialising', () => {
    expect(jsonBytesBound({ a: 'x'.repeat(100) }, 50)).toBe(Number.POSITIVE_INFINITY);
    expect(jsonBytesBound({ a: 'x'.repeat(100) }, 1000)).toBeLessThan(1000);
    for (const odd of [new Date(0), new Map(), { at: new Date(0) }, [1n], () => 1]) {
      expect(jsonBytesBound(odd, 1_000_000)).toBe(Number.POSITIVE_INFINITY);
    }
  });

  it('walks a hostile depth without overflowing the stack', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(jsonBytesBound(deep, Number.POSITIVE_INFINITY)).toBeGreaterThan(400_000);
    expect(jsonBytesBound(deep, 10_240)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('jsonLongerThan', () => {
  it('answers what serialising and counting answer, at every limit around the size', () => {
    fc.assert(
      fc.property(json, fc.integer({ min: -3, max: 3 }), (value, offset) => {
        const bytes = jsonByteLength(value);
        const limit = Math.max(0, bytes + offset);
        expect(jsonLongerThan(value, limit)).toBe(bytes > limit);
      }),
      { numRuns: 2000 },
    );
  });

  it('measures exactly what the bound cannot settle', () => {
    // 300 characters of a lone surrogate: bounded at 1,802 bytes, written in 1,802; a limit of
    // 1,801 must refuse it and one of 1,802 take it, however close the bound runs.
    const value = '\ud800'.repeat(300);
    expect(jsonByteLength(value)).toBe(1802);
    expect(jsonLongerThan(value, 1801)).toBe(true);
    expect(jsonLongerThan(value, 1802)).toBe(false);
    // ASCII the bound counts six times over: 10,002 bytes written, bounded at 60,002.
    const plain = 'x'.repeat(10_000);
    expect(jsonLongerThan(plain, 10_002)).toBe(false);
    expect(jsonLongerThan(plain, 10_001)).toBe(true);
  });
});
