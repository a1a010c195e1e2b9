import type { FieldCatalog, ObjectType, PqlType } from './types.js';

/** One row of a profile schema: a dotted path of the profile or event document and its type name. */
export interface SchemaFieldRow {
  class: 'profile' | 'event';
  path: string;
  type: string;
}

/** The platform's default fields (docs/domain.md "Profiles, identities, events"). */
export const DEFAULT_SCHEMA_FIELDS: readonly SchemaFieldRow[] = Object.freeze([
  { class: 'profile', path: 'person.name.firstName', type: 'string' },
  { class: 'profile', path: 'person.name.lastName', type: 'string' },
  { class: 'profile', path: 'person.birthDate', type: 'datetime' },
  { class: 'profile', path: 'person.gender', type: 'string' },
  { class: 'profile', path: 'personalEmail.address', type: 'string' },
  { class: 'profile', path: 'mobilePhone.number', type: 'string' },
  { class: 'profile', path: 'homeAddress.city', type: 'string' },
  { class: 'profile', path: 'homeAddress.stateProvince', type: 'string' },
  { class: 'profile', path: 'homeAddress.postalCode', type: 'string' },
  { class: 'profile', path: 'homeAddress.countryCode', type: 'string' },
  { class: 'profile', path: 'loyalty.tier', type: 'string' },
  { class: 'profile', path: 'loyalty.points', type: 'number' },
  { class: 'profile', path: 'loyalty.joinDate', type: 'datetime' },
  { class: 'profile', path: 'preferences.categories', type: 'array<string>' },
  { class: 'profile', path: 'consents.marketing.email', type: 'boolean' },
  { class: 'profile', path: 'createdAt', type: 'datetime' },
  { class: 'event', path: 'timestamp', type: 'datetime' },
  { class: 'event', path: 'eventType', type: 'string' },
  { class: 'event', path: 'channel', type: 'string' },
  { class: 'event', path: 'web.webPageDetails.name', type: 'string' },
  { class: 'event', path: 'web.webPageDetails.URL', type: 'string' },
  { class: 'event', path: 'commerce.order.priceTotal', type: 'number' },
  { class: 'event', path: 'commerce.order.currencyCode', type: 'string' },
  { class: 'event', path: 'productListItems', type: 'array<object>' },
  { class: 'event', path: 'productListItems.SKU', type: 'string' },
  { class: 'event', path: 'productListItems.name', type: 'string' },
  { class: 'event', path: 'productListItems.category', type: 'string' },
  { class: 'event', path: 'productListItems.quantity', type: 'number' },
  { class: 'event', path: 'productListItems.priceTotal', type: 'number' },
  { class: 'event', path: 'marketing.campaignId', type: 'string' },
] satisfies SchemaFieldRow[]);

const SCALARS = new Set(['string', 'number', 'boolean', 'datetime']);

/**
 * Parses a schema type name: `string`, `number`, `boolean`, `datetime`, `object`, `array<T>`,
 * `map<T>` (also `map<string,T>`, the spelling of docs/pql.md §4), nested. Throws an Error saying
 * what is wrong otherwise.
 */
export function parseFieldType(text: string): PqlType {
  const src = text.replace(/\s+/g, '');
  let pos = 0;
  const fail = (why: string): never => {
    throw new Error(
      `${why} in type "${text}" (expected string, number, boolean, datetime, object, array<T> or map<T>)`,
    );
  };
  const parse = (): PqlType => {
    const m = /^[A-Za-z]+/.exec(src.slice(pos));
    if (!m) return fail(`expected a type name at position ${pos + 1}`);
    const name = m[0];
    pos += name.length;
    if (SCALARS.has(name)) return { kind: name as 'string' | 'number' | 'boolean' | 'datetime' };
    if (name === 'object') return { kind: 'object', fields: newFields() };
    if (name !== 'array' && name !== 'map') return fail(`unknown type "${name}"`);
    if (src[pos] !== '<') return fail(`${name} needs an element type, e.g. ${name}<string>`);
    pos++;
    let of = parse();
    // Map keys are always strings; `map<string,T>` only spells that out.
    if (name === 'map' && src[pos] === ',') {
      if (of.kind !== 'string') return fail('map keys must be string');
      pos++;
      of = parse();
    }
    if (src[pos] !== '>') return fail(`expected ">" at position ${pos + 1}`);
    pos++;
    return name === 'array' ? { kind: 'array', of } : { kind: 'map', of };
  };
  const type = parse();
  if (pos !== src.length) fail(`unexpected "${src.slice(pos)}"`);
  return type;
}

/** A PqlType as a type name (`array<object>`, `map<number>`); the inverse of `parseFieldType` up to object fields. */
export function typeToString(t: PqlType): string {
  switch (t.kind) {
    case 'array':
      return `array<${typeToString(t.of)}>`;
    case 'map':
      return `map<${typeToString(t.of)}>`;
    default:
      return t.kind;
  }
}

/**
 * Object fields live in null-prototype records: a field named `constructor` or `__proto__`
 * must neither be found on Object.prototype nor reshape the record.
 */
function newFields(): Record<string, PqlType> {
  return Object.create(null) as Record<string, PqlType>;
}

function ownField(obj: ObjectType, name: string): PqlType | undefined {
  return Object.hasOwn(obj.fields, name) ? obj.fields[name] : undefined;
}

/** Same type ignoring object fields (which rows below a path fill in). */
function sameShape(a: PqlType, b: PqlType): boolean {
  if (a.kind !== b.kind) return false;
  if ((a.kind === 'array' || a.kind === 'map') && (b.kind === 'array' || b.kind === 'map'))
    return sameShape(a.of, b.of);
  return true;
}

/** The object a child path descends into: the object itself, or the items/values of an array/map of objects. */
function containerObject(t: PqlType): ObjectType | undefined {
  if (t.kind === 'object') return t;
  if ((t.kind === 'array' || t.kind === 'map') && t.of.kind !== 'array' && t.of.kind !== 'map') {
    return t.of.kind === 'object' ? t.of : undefined;
  }
  return undefined;
}

/**
 * Builds the field catalogue from schema rows. A row `productListItems: array<object>` plus
 * `productListItems.SKU: string` make an array of objects with field SKU; objects between the
 * root and a path are implied. The event side always has `timestamp: datetime` and
 * `eventType: string`. Throws an Error for an inconsistent schema (a field below a scalar, or
 * one path with two types).
 */
export function buildCatalog(fields: readonly SchemaFieldRow[]): FieldCatalog {
  const profile: ObjectType = { kind: 'object', fields: newFields() };
  const event: ObjectType = { kind: 'object', fields: newFields() };
  const rows: SchemaFieldRow[] = [
    { class: 'event', path: 'timestamp', type: 'datetime' },
    { class: 'event', path: 'eventType', type: 'string' },
    ...fields,
  ];
  // Parents before children, so a declared `array<object>` exists before its item fields arrive
  // and an implied object is never mistaken for a declared one.
  const ordered = rows
    .map((row, index) => ({ row, index, depth: row.path.split('.').length }))
    .sort((a, b) => a.depth - b.depth || a.index - b.index);
  for (const { row } of ordered) {
    const type = parseFieldType(row.type);
    addField(row.class === 'event' ? event : profile, row.class, row.path, type);
  }
  return { profile, event };
}

function addField(root: ObjectType, cls: string, path: string, type: PqlType): void {
  const parts = path.split('.');
  if (parts.some((p) => p === '')) throw new Error(`${cls} field "${path}" has an empty path segment`);
  let obj = root;
  for (let i = 0; i < parts.length - 1; i++) {
    const name = parts[i]!;
    const existing = ownField(obj, name);
    if (!existing) {
      const implied: ObjectType = { kind: 'object', fields: newFields() };
      obj.fields[name] = implied;
      obj = implied;
      continue;
    }
    const inner = containerObject(existing);
    if (!inner) {
      const at = parts.slice(0, i + 1).join('.');
      throw new Error(`${cls} field "${path}" cannot be added: "${at}" is ${typeToString(existing)}, not an object`);
    }
    obj = inner;
  }
  const leaf = parts[parts.length - 1]!;
  const existing = ownField(obj, leaf);
  if (!existing) {
    obj.fields[leaf] = type;
    return;
  }
  if (!sameShape(existing, type)) {
    throw new Error(
      `${cls} field "${path}" is declared both as ${typeToString(existing)} and as ${typeToString(type)}`,
    );
  }
}

/** The catalogue of the default schema alone. */
export function defaultCatalog(): FieldCatalog {
  return buildCatalog(DEFAULT_SCHEMA_FIELDS);
}
