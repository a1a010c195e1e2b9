/**
 * Checks an ingested document against the field catalogue and returns it normalised: datetimes
 * become canonical ISO-8601 UTC with milliseconds (so stored string order is time order,
 * docs/pql-semantics.md), in a copy of what holds them; a document with nothing to rewrite is
 * returned as it is, so neither it nor the result may be changed after. Wrong types and unknown
 * fields are errors, never coerced or dropped. `null` is kept: on merge it clears the field.
 */

import type { ObjectType, PqlType } from '../pql/index.js';
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

/** Assigning `__proto__` replaces an object's prototype instead of adding a key: the value would vanish. */
const unstorableKey = (path: string) => new InvalidField(`Field "${path}": the key "__proto__" cannot be stored`);

function join(prefix: string, key: string): string {
  return prefix ? `${prefix}.${key}` : key;
}

/**
 * A value's path for messages, made only when one is written: `key` under `parent`, a number
 * being an array index. Every field's path built up front cost more than checking it.
 */
function pathOf(parent: string, key: string | number): string {
  return typeof key === 'number' ? `${parent}[${key}]` : join(parent, key);
}

/**
 * `obj` checked against `type`: itself when nothing in it changed (most documents hold no
 * datetime to rewrite), else a copy. Copying every object and array of every document cost more
 * than checking it.
 */
function normaliseObject(obj: Record<string, unknown>, type: ObjectType, prefix: string): Record<string, unknown> {
  const keys = Object.keys(obj);
  let out: Record<string, unknown> | undefined;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (key === '__proto__') throw unstorableKey(join(prefix, key));
    const fieldType = Object.hasOwn(type.fields, key) ? type.fields[key] : undefined;
    if (!fieldType) {
      throw new InvalidField(
        `Unknown field "${join(prefix, key)}": it is not in the profile schema; add it with updateProfileSchema`,
      );
    }
    const v = obj[key];
    const normalised = normaliseValue(v, fieldType, prefix, key);
    if (out === undefined && normalised !== v) out = copyOfKeys(obj, keys, i);
    if (out !== undefined) out[key] = normalised;
  }
  return out ?? obj;
}

/** A new object with the first `n` of `keys` of `obj`. */
function copyOfKeys(obj: Record<string, unknown>, keys: readonly string[], n: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let j = 0; j < n; j++) out[keys[j]!] = obj[keys[j]!];
  return out;
}

// A top-level function, not a closure per value: tsx (keepNames) names every closure it creates,
// which cost more than the checks themselves on the ingest path.
function wrongType(path: string, v: unknown, expected: string): InvalidField {
  return new InvalidField(`Field "${path}" must be ${expected}, got ${describe(v)}`);
}

/** `v`, the value at `key` under `parent`, checked against `type` and normalised. */
function normaliseValue(v: unknown, type: PqlType, parent: string, key: string | number): unknown {
  if (v === null) return null;
  switch (type.kind) {
    case 'string':
      if (typeof v !== 'string') throw wrongType(pathOf(parent, key), v, 'a string');
      return v;
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v)) throw wrongType(pathOf(parent, key), v, 'a number');
      return v;
    case 'boolean':
      if (typeof v !== 'boolean') throw wrongType(pathOf(parent, key), v, 'a boolean');
      return v;
    case 'datetime': {
      if (typeof v !== 'string') {
        throw wrongType(pathOf(parent, key), v, `an ISO-8601 datetime (e.g. ${DATETIME_EXAMPLE})`);
      }
      const parsed = parseDatetime(v);
      if (!parsed.ok) {
        throw new InvalidField(`Field "${pathOf(parent, key)}" must be an ISO-8601 datetime: ${parsed.reason}`);
      }
      return new Date(parsed.ms).toISOString();
    }
    case 'array': {
      if (!Array.isArray(v)) throw wrongType(pathOf(parent, key), v, 'an array');
      const path = pathOf(parent, key);
      let out: unknown[] | undefined;
      for (let i = 0; i < v.length; i++) {
        const item = v[i];
        const normalised = normaliseValue(item, type.of, path, i);
        if (out === undefined && normalised !== item) out = v.slice(0, i);
        if (out !== undefined) out.push(normalised);
      }
      return out ?? v;
    }
    case 'map': {
      if (!isPlainObject(v)) throw wrongType(pathOf(parent, key), v, 'an object (map)');
      const path = pathOf(parent, key);
      const keys = Object.keys(v);
      let out: Record<string, unknown> | undefined;
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        if (k === '__proto__') throw unstorableKey(`${path}.${k}`);
        const item = v[k];
        const normalised = normaliseValue(item, type.of, path, k);
        if (out === undefined && normalised !== item) out = copyOfKeys(v, keys, i);
        if (out !== undefined) out[k] = normalised;
      }
      return out ?? v;
    }
    case 'object':
      if (!isPlainObject(v)) throw wrongType(pathOf(parent, key), v, 'an object');
      return normaliseObject(v, type, pathOf(parent, key));
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

const DATETIME_EXAMPLE = '"2026-11-28T09:30:00.000Z"';

/** The widest UTC offsets in use (Pacific/Kiritimati +14:00, Etc/GMT+12 −12:00), rounded to ±14:00. */
const MAX_OFFSET_MINUTES = 14 * 60;

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** The number the two digits of `text` at `i` write, or -1 when either is not a digit. */
function twoDigitsAt(text: string, i: number): number {
  const a = text.charCodeAt(i) - 48;
  const b = text.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

/**
 * `YYYY-MM-DDTHH:MM:SS.sssZ` (what `toISOString` writes, and what almost every event carries)
 * read without the regular expression, or undefined for any other text, which the general parser
 * reads and explains. Its answers are the general parser's (test/domain/datetime-parsing.test.ts
 * compares them): this form was a tenth of the main thread's work per streamed event. No closures
 * inside: under tsx each one costs a defineProperty (its name) per call.
 */
function canonicalInstant(text: string): number | undefined {
  if (text.length !== 24 || text.charCodeAt(23) !== 90 /* Z */) return undefined;
  if (text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || text.charCodeAt(10) !== 84) return undefined;
  if (text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58 || text.charCodeAt(19) !== 46) return undefined;
  const century = twoDigitsAt(text, 0);
  const yy = twoDigitsAt(text, 2);
  const month = twoDigitsAt(text, 5);
  const day = twoDigitsAt(text, 8);
  const hour = twoDigitsAt(text, 11);
  const minute = twoDigitsAt(text, 14);
  const second = twoDigitsAt(text, 17);
  const hundreds = twoDigitsAt(text, 20);
  const last = text.charCodeAt(22) - 48;
  // Years before 100 (Date.UTC reads them as 1900s) and anything out of range: the general parser.
  if (century < 1 || yy < 0 || hundreds < 0 || last < 0 || last > 9) return undefined;
  if (month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23) return undefined;
  if (minute < 0 || minute > 59 || second < 0 || second > 59) return undefined;
  const year = century * 100 + yy;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > (month === 2 && !leap ? 28 : DAYS_IN_MONTH[month - 1]!)) return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, second, hundreds * 10 + last);
}

/**
 * Parses an ISO-8601 date or datetime as clients send it (`2024-03-14`, `…T10:00Z`,
 * `…T10:00:00.123+02:00`; no offset means UTC) into epoch milliseconds, or says why it is not
 * one: impossible dates (February 30), hours past 23, minutes or seconds past 59 and offsets
 * outside ±14:00 are refused rather than rolled over into another instant.
 */
export function parseDatetime(text: string): { ok: true; ms: number } | { ok: false; reason: string } {
  const canonical = canonicalInstant(text);
  if (canonical !== undefined) return { ok: true, ms: canonical };
  const m = ISO.exec(text);
  if (!m) return { ok: false, reason: `it is not an ISO-8601 datetime such as ${DATETIME_EXAMPLE}` };
  const [, y, mo, d, h = '00', mi = '00', s = '00', frac = '0', zone] = m;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (hour > 23) return { ok: false, reason: `hour ${h} is past 23` };
  if (minute > 59) return { ok: false, reason: `minute ${mi} is past 59` };
  if (second > 59) return { ok: false, reason: `second ${s} is past 59` };
  // setUTCFullYear, because Date.UTC reads the years 0–99 as 1900–1999.
  const at = new Date(Date.UTC(2000, 0, 1, hour, minute, second, Number(frac.padEnd(3, '0').slice(0, 3))));
  at.setUTCFullYear(year, month - 1, day);
  if (at.getUTCFullYear() !== year || at.getUTCMonth() !== month - 1 || at.getUTCDate() !== day)
    return { ok: false, reason: `${y}-${mo}-${d} is not a date in the calendar` };
  let offsetMinutes = 0;
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offsetHours = Number(digits.slice(0, 2));
    const offsetMins = Number(digits.slice(2, 4));
    if (offsetMins > 59 || offsetHours * 60 + offsetMins > MAX_OFFSET_MINUTES)
      return { ok: false, reason: `the UTC offset ${zone} is outside -14:00 to +14:00` };
    offsetMinutes = sign * (offsetHours * 60 + offsetMins);
  }
  return instantOfMs(at.getTime() - offsetMinutes * 60_000);
}

/**
 * Epoch ms as an instant datetimes may hold: a whole millisecond of the years 0001 to 9999 in
 * UTC (what parseDatetime reads, and what ingestion takes already read).
 */
export function instantOfMs(ms: number): { ok: true; ms: number } | { ok: false; reason: string } {
  if (!Number.isInteger(ms) || ms < -62135596800000 || ms > 253402300799999)
    return { ok: false, reason: 'it is outside the years 0001 to 9999 in UTC' };
  return { ok: true, ms };
}
