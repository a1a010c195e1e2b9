/**
 * One row of a list checked against the external audience's fields: the identity it names and
 * its other values, typed. A row that does not fit says why, in words a person can act on.
 */
import { parseDatetime } from '../document-validation.js';
import { identityProblem } from '../profile-ingest.js';
import { type ExternalAudienceField, MAX_EXTERNAL_FIELDS } from './external-audiences.js';

export type RowResult =
  | { ok: true; identity: string; payload: Record<string, unknown> }
  | { ok: false; message: string };

export interface ListShape {
  fields: ExternalAudienceField[];
  identityField: string;
  identityNamespace: string;
}

/** Checks a CSV header against the fields: every field once, nothing else; returns the field of each column. */
export function csvColumns(header: string[], shape: ListShape): ExternalAudienceField[] | string {
  if (header.length > MAX_EXTERNAL_FIELDS) {
    return `The header has ${header.length} columns; at most ${MAX_EXTERNAL_FIELDS} are allowed`;
  }
  const byName = new Map(shape.fields.map((f) => [f.name, f]));
  const columns: ExternalAudienceField[] = [];
  const seen = new Set<string>();
  for (const raw of header) {
    const name = raw.trim();
    const field = byName.get(name);
    if (!field) {
      return `The header names "${name}", which is not a field of this audience (fields: ${shape.fields.map((f) => f.name).join(', ')})`;
    }
    if (seen.has(name)) return `The header names "${name}" twice`;
    seen.add(name);
    columns.push(field);
  }
  const missing = shape.fields.filter((f) => !seen.has(f.name)).map((f) => f.name);
  if (missing.length > 0) return `The header lacks the field${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
  return columns;
}

/** A CSV cell as its field's type; an empty cell is null. */
function fromText(
  field: ExternalAudienceField,
  text: string,
): { ok: true; value: unknown } | { ok: false; message: string } {
  if (text === '') return { ok: true, value: null };
  switch (field.type) {
    case 'STRING':
      return { ok: true, value: text };
    case 'NUMBER': {
      const n = Number(text);
      return /^\s*-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(text) && Number.isFinite(n)
        ? { ok: true, value: n }
        : { ok: false, message: `"${text}" in column "${field.name}" is not a NUMBER` };
    }
    case 'BOOLEAN': {
      const t = text.trim().toLowerCase();
      if (t === 'true' || t === '1') return { ok: true, value: true };
      if (t === 'false' || t === '0') return { ok: true, value: false };
      return { ok: false, message: `"${text}" in column "${field.name}" is not a BOOLEAN (true, false, 1 or 0)` };
    }
    case 'DATE':
      return asDate(field, text);
  }
}

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;

function asDate(
  field: ExternalAudienceField,
  text: string,
): { ok: true; value: unknown } | { ok: false; message: string } {
  // Most list dates are plain days: checked by arithmetic, much cheaper than a full ISO-8601 parse.
  const day = DATE_ONLY.exec(text);
  if (day) {
    const [y, m, d] = [Number(day[1]), Number(day[2]), Number(day[3])];
    const date = new Date(Date.UTC(y, m - 1, d));
    if (date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d) {
      return { ok: true, value: `${text}T00:00:00.000Z` };
    }
    return { ok: false, message: `"${text}" in column "${field.name}" is not a DATE: there is no such day` };
  }
  const parsed = parseDatetime(text);
  return parsed.ok
    ? { ok: true, value: new Date(parsed.ms).toISOString() }
    : { ok: false, message: `"${text}" in column "${field.name}" is not a DATE (ISO-8601): ${parsed.reason}` };
}

/** A JSON value as its field's type: the JSON type must match (a DATE is an ISO-8601 string). */
function fromJson(
  field: ExternalAudienceField,
  value: unknown,
): { ok: true; value: unknown } | { ok: false; message: string } {
  if (value === null || value === undefined) return { ok: true, value: null };
  const wrong = { ok: false as const, message: `${JSON.stringify(value)} in "${field.name}" is not a ${field.type}` };
  switch (field.type) {
    case 'STRING':
      return typeof value === 'string' ? { ok: true, value } : wrong;
    case 'NUMBER':
      return typeof value === 'number' && Number.isFinite(value) ? { ok: true, value } : wrong;
    case 'BOOLEAN':
      return typeof value === 'boolean' ? { ok: true, value } : wrong;
    case 'DATE':
      return typeof value === 'string' ? asDate(field, value) : wrong;
  }
}

function finish(shape: ListShape, identity: unknown, payload: Record<string, unknown>): RowResult {
  if (identity === null || identity === undefined || identity === '') {
    return { ok: false, message: `The identity column "${shape.identityField}" is empty` };
  }
  if (typeof identity !== 'string')
    return { ok: false, message: `The identity "${shape.identityField}" is not a string` };
  const problem = identityProblem({ namespace: shape.identityNamespace, id: identity });
  if (problem) return { ok: false, message: `Invalid identity: ${problem}` };
  return { ok: true, identity, payload };
}

export function rowFromCsv(values: string[], columns: ExternalAudienceField[], shape: ListShape): RowResult {
  if (values.length !== columns.length) {
    return { ok: false, message: `The row has ${values.length} columns; the header has ${columns.length}` };
  }
  const payload: Record<string, unknown> = {};
  let identity: unknown;
  for (let i = 0; i < columns.length; i++) {
    const field = columns[i]!;
    if (field.name === shape.identityField) {
      identity = values[i]!.trim();
      continue;
    }
    const typed = fromText(field, values[i]!);
    if (!typed.ok) return typed;
    payload[field.name] = typed.value;
  }
  return finish(shape, identity, payload);
}

export function rowFromObject(object: unknown, shape: ListShape): RowResult {
  if (typeof object !== 'object' || object === null || Array.isArray(object)) {
    return { ok: false, message: 'The line is not a JSON object' };
  }
  const entries = Object.entries(object);
  if (entries.length > MAX_EXTERNAL_FIELDS) {
    return { ok: false, message: `The object has ${entries.length} keys; at most ${MAX_EXTERNAL_FIELDS} are allowed` };
  }
  const byName = new Map(shape.fields.map((f) => [f.name, f]));
  const payload: Record<string, unknown> = {};
  let identity: unknown;
  for (const [key, value] of entries) {
    const field = byName.get(key);
    if (!field) return { ok: false, message: `"${key}" is not a field of this audience` };
    if (key === shape.identityField) {
      identity = typeof value === 'string' ? value.trim() : value;
      continue;
    }
    const typed = fromJson(field, value);
    if (!typed.ok) return typed;
    payload[key] = typed.value;
  }
  return finish(shape, identity, payload);
}
