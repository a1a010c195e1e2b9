import { describe, expect, it } from 'vitest';
import {
  buildCatalog,
  DEFAULT_SCHEMA_FIELDS,
  defaultCatalog,
  parseFieldType,
  type SchemaFieldRow,
  typeToString,
} from '../../src/pql/check/catalog.js';
import type { PqlType } from '../../src/pql/check/types.js';

/** The type at a dotted path, descending into arrays/maps of objects like schema rows do. */
function typeAt(root: PqlType, path: string): PqlType | undefined {
  let t: PqlType | undefined = root;
  for (const name of path.split('.')) {
    if (t?.kind === 'array' || t?.kind === 'map') t = t.of;
    if (t?.kind !== 'object' || !Object.hasOwn(t.fields, name)) return undefined;
    t = t.fields[name];
  }
  return t;
}

describe('parseFieldType', () => {
  it('parses the scalar type names', () => {
    for (const name of ['string', 'number', 'boolean', 'datetime'] as const) {
      expect(parseFieldType(name)).toEqual({ kind: name });
    }
  });

  it('parses object as an object without fields', () => {
    const t = parseFieldType('object');
    expect(t.kind).toBe('object');
    expect(t.kind === 'object' && Object.keys(t.fields)).toEqual([]);
  });

  it('parses array<T> and map<T>, nested and with spaces', () => {
    expect(parseFieldType('array<string>')).toEqual({ kind: 'array', of: { kind: 'string' } });
    expect(parseFieldType('map<number>')).toEqual({ kind: 'map', of: { kind: 'number' } });
    expect(parseFieldType('array< array<datetime> >')).toEqual({
      kind: 'array',
      of: { kind: 'array', of: { kind: 'datetime' } },
    });
    expect(typeToString(parseFieldType('array<object>'))).toBe('array<object>');
    expect(typeToString(parseFieldType('map<array<boolean>>'))).toBe('map<array<boolean>>');
  });

  it('accepts map<string,T>, the spelling of docs/pql.md §4, as map<T>', () => {
    expect(parseFieldType('map<string, number>')).toEqual({ kind: 'map', of: { kind: 'number' } });
    expect(() => parseFieldType('map<number,string>')).toThrow('map keys must be string');
  });

  it('rejects unknown and malformed type names, saying what is wrong', () => {
    expect(() => parseFieldType('int')).toThrow('unknown type "int"');
    expect(() => parseFieldType('array')).toThrow('array needs an element type');
    expect(() => parseFieldType('array<string')).toThrow('expected ">"');
    expect(() => parseFieldType('string>')).toThrow('unexpected ">"');
    expect(() => parseFieldType('')).toThrow('expected a type name');
    expect(() => parseFieldType('String')).toThrow('unknown type "String"');
  });
});

describe('typeToString', () => {
  it('names every kind of type', () => {
    expect(typeToString({ kind: 'null' })).toBe('null');
    expect(typeToString({ kind: 'any' })).toBe('any');
    expect(typeToString({ kind: 'object', fields: { a: { kind: 'string' } } })).toBe('object');
    expect(typeToString({ kind: 'array', of: { kind: 'map', of: { kind: 'datetime' } } })).toBe('array<map<datetime>>');
  });
});

describe('buildCatalog', () => {
  it('turns dotted paths into nested objects with implied intermediate objects', () => {
    const c = buildCatalog([{ class: 'profile', path: 'a.b.c', type: 'number' }]);
    expect(typeAt(c.profile, 'a')?.kind).toBe('object');
    expect(typeAt(c.profile, 'a.b')?.kind).toBe('object');
    expect(typeAt(c.profile, 'a.b.c')).toEqual({ kind: 'number' });
  });

  it('makes an array<object> row plus item rows an array of objects with those fields', () => {
    const c = buildCatalog([
      { class: 'event', path: 'productListItems', type: 'array<object>' },
      { class: 'event', path: 'productListItems.SKU', type: 'string' },
    ]);
    const items = c.event.fields.productListItems;
    expect(items?.kind === 'array' && items.of).toEqual({ kind: 'object', fields: { SKU: { kind: 'string' } } });
  });

  it('does not depend on row order (item fields before their array)', () => {
    const c = buildCatalog([
      { class: 'event', path: 'productListItems.SKU', type: 'string' },
      { class: 'event', path: 'productListItems', type: 'array<object>' },
    ]);
    expect(typeAt(c.event, 'productListItems')?.kind).toBe('array');
    expect(typeAt(c.event, 'productListItems.SKU')).toEqual({ kind: 'string' });
  });

  it('gives maps of objects fields too', () => {
    const c = buildCatalog([
      { class: 'profile', path: '_tenant.stores', type: 'map<object>' },
      { class: 'profile', path: '_tenant.stores.visits', type: 'number' },
    ]);
    expect(typeAt(c.profile, '_tenant.stores.visits')).toEqual({ kind: 'number' });
  });

  it('always gives events timestamp: datetime and eventType: string', () => {
    const c = buildCatalog([]);
    expect(c.event.fields.timestamp).toEqual({ kind: 'datetime' });
    expect(c.event.fields.eventType).toEqual({ kind: 'string' });
    expect(Object.keys(c.profile.fields)).toEqual([]);
  });

  it('keeps profile and event fields apart', () => {
    const c = buildCatalog([
      { class: 'profile', path: 'x', type: 'string' },
      { class: 'event', path: 'y', type: 'number' },
    ]);
    expect(Object.keys(c.profile.fields)).toEqual(['x']);
    expect(Object.keys(c.event.fields).sort()).toEqual(['eventType', 'timestamp', 'y']);
  });

  it('accepts a row repeated with the same type', () => {
    const rows: SchemaFieldRow[] = [
      { class: 'profile', path: 'a', type: 'string' },
      { class: 'profile', path: 'a', type: 'string' },
      { class: 'event', path: 'timestamp', type: 'datetime' },
    ];
    expect(buildCatalog(rows).profile.fields.a).toEqual({ kind: 'string' });
  });

  it('rejects a field below a scalar', () => {
    expect(() =>
      buildCatalog([
        { class: 'profile', path: 'loyalty', type: 'string' },
        { class: 'profile', path: 'loyalty.points', type: 'number' },
      ]),
    ).toThrow('profile field "loyalty.points" cannot be added: "loyalty" is string, not an object');
  });

  it('rejects one path declared with two types, including the built-in event fields', () => {
    expect(() =>
      buildCatalog([
        { class: 'profile', path: 'a', type: 'string' },
        { class: 'profile', path: 'a', type: 'number' },
      ]),
    ).toThrow('profile field "a" is declared both as string and as number');
    expect(() => buildCatalog([{ class: 'event', path: 'timestamp', type: 'string' }])).toThrow(
      'event field "timestamp" is declared both as datetime and as string',
    );
  });

  it('rejects bad type names and empty path segments', () => {
    expect(() => buildCatalog([{ class: 'profile', path: 'a', type: 'text' }])).toThrow('unknown type "text"');
    expect(() => buildCatalog([{ class: 'profile', path: 'a..b', type: 'string' }])).toThrow('empty path segment');
  });

  it('stores field names like constructor and __proto__ as plain own fields', () => {
    const c = buildCatalog([
      { class: 'profile', path: '__proto__.x', type: 'string' },
      { class: 'profile', path: 'constructor', type: 'number' },
    ]);
    expect(Object.hasOwn(c.profile.fields, '__proto__')).toBe(true);
    expect(typeAt(c.profile, '__proto__.x')).toEqual({ kind: 'string' });
    expect(c.profile.fields.constructor).toEqual({ kind: 'number' });
    expect(Object.hasOwn(buildCatalog([]).profile.fields, 'constructor')).toBe(false);
  });
});

describe('DEFAULT_SCHEMA_FIELDS', () => {
  it('lists the default profile fields of docs/domain.md with their types', () => {
    const profile = Object.fromEntries(
      DEFAULT_SCHEMA_FIELDS.filter((f) => f.class === 'profile').map((f) => [f.path, f.type]),
    );
    expect(profile).toEqual({
      'person.name.firstName': 'string',
      'person.name.lastName': 'string',
      'person.birthDate': 'datetime',
      'person.gender': 'string',
      'personalEmail.address': 'string',
      'mobilePhone.number': 'string',
      'homeAddress.city': 'string',
      'homeAddress.stateProvince': 'string',
      'homeAddress.postalCode': 'string',
      'homeAddress.countryCode': 'string',
      'loyalty.tier': 'string',
      'loyalty.points': 'number',
      'loyalty.joinDate': 'datetime',
      'preferences.categories': 'array<string>',
      'consents.marketing.email': 'boolean',
      createdAt: 'datetime',
    });
  });

  it('lists the default event fields of docs/domain.md with their types', () => {
    const event = Object.fromEntries(
      DEFAULT_SCHEMA_FIELDS.filter((f) => f.class === 'event').map((f) => [f.path, f.type]),
    );
    expect(event).toEqual({
      timestamp: 'datetime',
      eventType: 'string',
      channel: 'string',
      'web.webPageDetails.name': 'string',
      'web.webPageDetails.URL': 'string',
      'commerce.order.priceTotal': 'number',
      'commerce.order.currencyCode': 'string',
      productListItems: 'array<object>',
      'productListItems.SKU': 'string',
      'productListItems.name': 'string',
      'productListItems.category': 'string',
      'productListItems.quantity': 'number',
      'productListItems.priceTotal': 'number',
      'marketing.campaignId': 'string',
    });
  });

  it('builds into the default catalogue', () => {
    const c = defaultCatalog();
    expect(typeAt(c.profile, 'person.name.firstName')).toEqual({ kind: 'string' });
    expect(typeAt(c.profile, 'preferences.categories')).toEqual({ kind: 'array', of: { kind: 'string' } });
    expect(typeAt(c.event, 'commerce.order.priceTotal')).toEqual({ kind: 'number' });
    const item = typeAt(c.event, 'productListItems');
    expect(item?.kind === 'array' && item.of.kind === 'object' && Object.keys(item.of.fields)).toEqual([
      'SKU',
      'name',
      'category',
      'quantity',
      'priceTotal',
    ]);
  });
});
