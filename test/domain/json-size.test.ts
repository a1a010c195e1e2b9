import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { jsonByteLength, jsonBytesBound, jsonLongerThan, jsonSurelyWithin } from '../../src/domain/json-size.js';

/** Strings of the characters JSON writes longest: controls, quotes, lone surrogates, astral ones. */
const awkward = fc.string({
  unit: fc.constantFrom('\u0000', '\u001f', '"', '\\', '\n', '\ud800', '\udfff', '😀', 'é', '\u2028', 'a', '~'),
  maxLength: 80,
});
/** Long ASCII strings, mostly plain (counted as written on a second look), some with a character that is not. */
const ascii = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7f }).map((c) => String.fromCharCode(c)),
  maxLength: 120,
});
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    awkward,
    ascii,
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
        const bytes = jsonByteLength(value);
        expect(jsonBytesBound(value, Number.POSITIVE_INFINITY)).toBeGreaterThanOrEqual(bytes);
        expect(jsonBytesBound(value, Number.POSITIVE_INFINITY, true)).toBeGreaterThanOrEqual(bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it('holds for the characters that serialise longest, one by one', () => {
    for (const s of ['\u0000', '\u001f', '\ud800', '\udfff', '"', '\\', '😀', '\u2028', 'é']) {
      const value = { [s]: [s.repeat(50)] };
      expect(jsonBytesBound(value, Number.POSITIVE_INFINITY)).toBeGreaterThanOrEqual(jsonByteLength(value));
      expect(jsonBytesBound(value, Number.POSITIVE_INFINITY, true)).toBeGreaterThanOrEqual(jsonByteLength(value));
    }
  });

  it('counts plain strings as written when asked to look, others at six bytes a unit', () => {
    const plain = 'https://shop.example.com/products/apparel?id=12345&ref=campaign';
    expect(jsonBytesBound(plain, Number.POSITIVE_INFINITY)).toBe(6 * plain.length + 2);
    expect(jsonBytesBound(plain, Number.POSITIVE_INFINITY, true)).toBe(jsonByteLength(plain));
    const record = { [plain]: plain };
    expect(jsonBytesBound(record, Number.POSITIVE_INFINITY, true)).toBe(jsonByteLength(record) + 1);
    const quoted = `${plain}"`;
    expect(jsonBytesBound(quoted, Number.POSITIVE_INFINITY, true)).toBe(6 * quoted.length + 2);
    const del = '\u007f'.repeat(40);
    expect(jsonBytesBound(del, Number.POSITIVE_INFINITY, true)).toBeGreaterThanOrEqual(jsonByteLength(del));
  });

  it('settles a kilobyte of names and URLs on the second bound, without serialising', () => {
    const items = Array.from({ length: 30 }, (_, k) => ({
      SKU: `AP-${k}`,
      name: `apparel item number ${k} of the order`,
      URL: `https://shop.example.com/products/apparel/${k}`,
    }));
    const limit = 3 * jsonByteLength(items);
    expect(jsonBytesBound(items, limit)).toBe(Number.POSITIVE_INFINITY);
    const stringify = vi.spyOn(JSON, 'stringify');
    try {
      expect(jsonSurelyWithin(items, limit)).toBe(true);
      expect(jsonLongerThan(items, limit)).toBe(false);
      expect(stringify).not.toHaveBeenCalled();
    } finally {
      stringify.mockRestore();
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
