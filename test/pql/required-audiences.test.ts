/**
 * requiredAudiences: the audiences named by an inSegment that is a top-level conjunct, and no
 * others (an inSegment under `or` or `not` does not make membership necessary).
 */
import { describe, expect, it } from 'vitest';
import { buildCatalog, DEFAULT_SCHEMA_FIELDS } from '../../src/pql/check/catalog.js';
import { checkSource } from '../../src/pql/check/checker.js';
import { requiredAudiences } from '../../src/pql/index.js';

const audiences = new Map([
  ['gold', { id: 1, name: 'gold' }],
  ['silver', { id: 2, name: 'silver' }],
  ['bronze', { id: 3, name: 'bronze' }],
]);

function required(source: string): number[] {
  const checked = checkSource(source, {
    catalog: buildCatalog(DEFAULT_SCHEMA_FIELDS),
    resolveAudience: (ref: string) => audiences.get(ref),
  });
  return requiredAudiences(checked).sort();
}

describe('requiredAudiences', () => {
  it('names the inSegment conjuncts at the top of the expression', () => {
    expect(required('inSegment("gold")')).toEqual([1]);
    expect(required('inSegment("gold") and loyalty.points > 3 and inSegment("silver")')).toEqual([1, 2]);
    expect(required('(inSegment("gold") and inSegment("bronze")) and loyalty.points > 3')).toEqual([1, 3]);
  });

  it('does not count an inSegment under or, not, or inside a value', () => {
    expect(required('inSegment("gold") or loyalty.points > 3')).toEqual([]);
    expect(required('not inSegment("gold") and inSegment("silver")')).toEqual([2]);
    expect(required('loyalty.points > 3')).toEqual([]);
  });
});
