import { describe, expect, it } from 'vitest';
import { encodeCursor, integerBounds, pageQuery } from '../../src/domain/paging.js';

describe('integer bounds of a page newest first', () => {
  it('passes every key without a cursor, and bounds by the cursors given', () => {
    expect(integerBounds(pageQuery({ first: 5 }))).toEqual({
      below: Number.MAX_SAFE_INTEGER,
      above: Number.MIN_SAFE_INTEGER,
    });
    expect(integerBounds(pageQuery({ first: 5, after: encodeCursor([42]) }))).toEqual({
      below: 42,
      above: Number.MIN_SAFE_INTEGER,
    });
    expect(integerBounds(pageQuery({ last: 5, before: encodeCursor([7]) }))).toEqual({
      below: Number.MAX_SAFE_INTEGER,
      above: 7,
    });
  });

  it('lets no key through for a cursor that is not an integer, rather than bind NaN', () => {
    for (const key of ['x', 1.5, '1e400']) {
      const { below, above } = integerBounds(pageQuery({ first: 5, after: encodeCursor([key]) }));
      expect(below).toBeLessThan(above);
    }
  });

  it('bounds the other way for a list oldest first', () => {
    expect(integerBounds(pageQuery({ first: 5, after: encodeCursor([42]) }), 'ascending')).toEqual({
      above: 42,
      below: Number.MAX_SAFE_INTEGER,
    });
    expect(integerBounds(pageQuery({ last: 5, before: encodeCursor([7]) }), 'ascending')).toEqual({
      above: Number.MIN_SAFE_INTEGER,
      below: 7,
    });
  });
});
