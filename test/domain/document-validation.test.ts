import { describe, expect, it } from 'vitest';
import { validateDocument } from '../../src/domain/document-validation.js';
import { buildCatalog, DEFAULT_SCHEMA_FIELDS } from '../../src/pql/check/catalog.js';

const catalog = buildCatalog([
  ...DEFAULT_SCHEMA_FIELDS,
  { class: 'profile', path: '_tenant.visits', type: 'array<datetime>' },
  { class: 'profile', path: '_tenant.scores', type: 'map<number>' },
  { class: 'profile', path: '_tenant.orders', type: 'array<object>' },
  { class: 'profile', path: '_tenant.orders.placedAt', type: 'datetime' },
  { class: 'profile', path: '_tenant.orders.lines', type: 'array<object>' },
  { class: 'profile', path: '_tenant.orders.lines.qty', type: 'number' },
]);

const refusal = (value: unknown, type = catalog.profile) => {
  const checked = validateDocument(value, type);
  return checked.ok ? undefined : checked.message;
};

describe('validateDocument', () => {
  it('names the path of a wrong value, through objects, arrays and maps', () => {
    expect(refusal({ loyalty: { points: 'many' } })).toBe(
      'Field "loyalty.points" must be a number, got the string "many"',
    );
    expect(refusal({ _tenant: { orders: [{ lines: [{ qty: 1 }] }, { lines: [{ qty: 2 }, { qty: true }] }] } })).toBe(
      'Field "_tenant.orders[1].lines[1].qty" must be a number, got boolean true',
    );
    expect(refusal({ _tenant: { scores: { a: 1, b: 'x' } } })).toBe(
      'Field "_tenant.scores.b" must be a number, got the string "x"',
    );
    expect(refusal({ _tenant: { visits: ['2026-01-01T00:00:00.000Z', '2026-02-30'] } })).toBe(
      'Field "_tenant.visits[1]" must be an ISO-8601 datetime: 2026-02-30 is not a date in the calendar',
    );
    expect(refusal({ _tenant: { orders: [{ lines: {} }] } })).toBe(
      'Field "_tenant.orders[0].lines" must be an array, got an object',
    );
  });

  it('names an unknown field and a __proto__ key where they stand', () => {
    expect(refusal({ _tenant: { orders: [{ lines: [{ qty: 1, colour: 'red' }] }] } })).toBe(
      'Unknown field "_tenant.orders[0].lines[0].colour": it is not in the profile schema; add it with updateProfileSchema',
    );
    expect(refusal(JSON.parse('{"_tenant": {"scores": {"__proto__": 1}}}'))).toBe(
      'Field "_tenant.scores.__proto__": the key "__proto__" cannot be stored',
    );
    expect(refusal(JSON.parse('{"__proto__": {}}'))).toBe('Field "__proto__": the key "__proto__" cannot be stored');
  });

  it('returns a copy with every datetime in canonical form, nulls kept', () => {
    const input = {
      person: { birthDate: '1990-03-15', gender: null },
      _tenant: {
        visits: ['2026-01-01T10:00+02:00'],
        scores: { a: 1.5 },
        orders: [{ placedAt: '2026-11-28 09:30:00Z', lines: [{ qty: 2 }] }],
      },
    };
    const checked = validateDocument(input, catalog.profile);
    expect(checked).toEqual({
      ok: true,
      value: {
        person: { birthDate: '1990-03-15T00:00:00.000Z', gender: null },
        _tenant: {
          visits: ['2026-01-01T08:00:00.000Z'],
          scores: { a: 1.5 },
          orders: [{ placedAt: '2026-11-28T09:30:00.000Z', lines: [{ qty: 2 }] }],
        },
      },
    });
    expect(checked.ok && checked.value).not.toBe(input);
    expect(checked.ok && (checked.value._tenant as { orders: unknown[] }).orders).not.toBe(input._tenant.orders);
  });

  it('leaves the document as it is when nothing needs rewriting, and copies only what holds a rewrite', () => {
    const canonical = {
      loyalty: { tier: 'gold', points: 10 },
      _tenant: { visits: ['2026-01-01T08:00:00.000Z'], orders: [{ lines: [{ qty: 1 }] }] },
    };
    const same = validateDocument(canonical, catalog.profile);
    expect(same.ok && same.value).toBe(canonical);

    const orders = [{ placedAt: '2026-11-28T09:30:00.000Z' }, { placedAt: '2026-11-28T10:30Z' }, { lines: [] }];
    const input = { loyalty: { points: 1 }, _tenant: { scores: { a: 1 }, orders } };
    const before = structuredClone(input);
    const checked = validateDocument(input, catalog.profile);
    if (!checked.ok) throw new Error(checked.message);
    const out = checked.value as typeof input;
    expect(out).toEqual({
      ...before,
      _tenant: { ...before._tenant, orders: [orders[0], { placedAt: '2026-11-28T10:30:00.000Z' }, orders[2]] },
    });
    // The path to the rewrite is new; the rest is shared; the input is untouched.
    expect(out).not.toBe(input);
    expect(out._tenant).not.toBe(input._tenant);
    expect(out._tenant.orders).not.toBe(orders);
    expect(out._tenant.orders[1]).not.toBe(orders[1]);
    expect(out.loyalty).toBe(input.loyalty);
    expect(out._tenant.scores).toBe(input._tenant.scores);
    expect(out._tenant.orders[0]).toBe(orders[0]);
    expect(out._tenant.orders[2]).toBe(orders[2]);
    expect(input).toEqual(before);
    expect(Object.keys(out._tenant)).toEqual(['scores', 'orders']);
  });
});
