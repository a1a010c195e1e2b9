import { describe, expect, it } from 'vitest';
import { audienceReferences, parse } from '../../src/pql/index.js';

describe('audienceReferences', () => {
  it('lists every inSegment argument as written, once, in order of first use, at any depth', () => {
    const ast = parse(
      'inSegment("B") and (inSegment("a b").payload.tier = "gold" or not inSegment("B")) and xEvent[inSegment("Z")].count() > 0',
    );
    expect(audienceReferences(ast)).toEqual(['B', 'a b', 'Z']);
  });

  it('is empty for an expression that names no audience', () => {
    expect(audienceReferences(parse('loyalty.points > 10'))).toEqual([]);
  });
});
