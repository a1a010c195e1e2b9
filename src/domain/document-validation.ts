import type { ObjectType, PqlType } from '../pql/types.js';

/**
 * Checks an ingested document against the field catalogue and returns a normalised copy:
 * datetimes become canonical ISO-8601 UTC with milliseconds (so stored string order is time
 * order, docs/pql-semantics.md). Wrong types and unknown fields are errors, never coerced or
 * dropped. `null` is kept: on merge it clears the field.
 */
export function validateDocument(
  value: unknown,
  type: ObjectType,
  prefix = '',
): { ok: true; value: Record<string, unknown> } | { ok: false; message: string } {
  if (!isPlainObject(value)) return { ok: false, message: `${prefix || 'attributes'} must be an object` };
  try {
    return { ok: true, value: normaliseObject(value, type, prefix) };
  } catch (e) {
    if (e instanceof InvalidField) return { ok: false, message: e.message };
    throw e;
  }
}

class InvalidField extends Error {}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function join(prefix: string, key: string): string {
  return prefix ? `${prefix}.${key}` : key;
}

function normaliseObject(obj: Record<string, unknown>, type: ObjectType, prefix: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(obj)) {
    const path = join(prefix, key);
    const fieldType = Object.hasOwn(type.fields, key) ? type.fields[key] : undefined;
    if (!fieldType) {
      throw new InvalidField(
        `Unknown field "${path}": it is not in the profile schema; add it with updateProfileSchema (user fields go under "_tenant.")`,
      );
    }
    out[key] = normaliseValue(v, fieldType, path);
  }
  return out;
}

function normaliseValue(v: unknown, type: PqlType, path: string): unknown {
  if (v === null) return null;
  const wrong = (expected: string) => new InvalidField(`Field "${path}" must be ${expected}, got ${describe(v)}`);
  switch (type.kind) {
    case 'string':
      if (typeof v !== 'string') throw wrong('a string');
      return v;
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v)) throw wrong('a number');
      return v;
    case 'boolean':
      if (typeof v !== 'boolean') throw wrong('a boolean');
      return v;
    case 'datetime': {
      const ms = typeof v === 'string' ? parseIngestDatetime(v) : undefined;
      if (ms === undefined) throw wrong('an ISO-8601 datetime (e.g. "2026-11-28T09:30:00.000Z")');
      return new Date(ms).toISOString();
    }
    case 'array':
      if (!Array.isArray(v)) throw wrong('an array');
      return v.map((item, i) => normaliseValue(item, type.of, `${path}[${i}]`));
    case 'map': {
      if (!isPlainObject(v)) throw wrong('an object (map)');
      const out: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v)) out[k] = normaliseValue(item, type.of, `${path}.${k}`);
      return out;
    }
    case 'object':
      if (!isPlainObject(v)) throw wrong('an object');
      return normaliseObject(v, type, path);
    default:
      return v;
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * Parses an ISO-8601 date or datetime as clients send it (`2024-03-14`, `…T10:00Z`,
 * `…T10:00:00.123+02:00`; no offset means UTC); undefined when it is not one, including
 * impossible dates such as February 30.
 */
export function parseIngestDatetime(text: string): number | undefined {
  const m = ISO.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h = '00', mi = '00', s = '00', frac = '0', zone] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const base = Date.UTC(
    year,
    month - 1,
    day,
    Number(h),
    Number(mi),
    Number(s),
    Number(frac.padEnd(3, '0').slice(0, 3)),
  );
  const check = new Date(Date.UTC(year, month - 1, day));
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day)
    return undefined;
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return undefined;
  let offset = 0;
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    offset = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4))) * 60_000;
  }
  const ms = base - offset;
  return Number.isFinite(ms) && ms >= -62135596800000 && ms <= 253402300799999 ? ms : undefined;
}
