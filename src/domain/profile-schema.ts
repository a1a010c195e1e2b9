import { cacheKey } from '../db/connection-cache.js';
import type { Connection } from '../db/index.js';
import { preparedOn, type StatementRunner, statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import { writeUnit } from '../db/unit.js';
import {
  BUILT_IN_SCHEMA_FIELDS,
  buildCatalog,
  builtInConflict,
  DEFAULT_SCHEMA_FIELDS,
  type FieldCatalog,
  parseFieldType,
} from '../pql/index.js';
import { badInput, conflict } from './errors.js';

export const FIELD_CLASSES = ['profile', 'event'] as const;
export type FieldClass = (typeof FIELD_CLASSES)[number];

export interface SchemaField {
  class: FieldClass;
  path: string;
  type: string;
  description: string | null;
}

export interface SchemaFieldInput {
  class: FieldClass;
  path: string;
  type: string;
  description?: string | null;
}

/**
 * A field path users may declare: dotted identifiers. Any path is allowed (definitions copied
 * from the commercial documentation use `product.price` or `orders`), except one that conflicts
 * with a built-in field (`builtInConflict`).
 */
const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Names that address an object's prototype rather than a field of it. */
const RESERVED_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);

export interface SandboxCatalog {
  fields: SchemaField[];
  catalog: FieldCatalog;
}
const CATALOGS = cacheKey<Map<number, SandboxCatalog>>('field catalogues');

function cacheFor(conn: Pick<Store, 'cache'>): Map<number, SandboxCatalog> {
  return conn.cache.get(CATALOGS, () => new Map());
}

/** Drops a connection's cached catalogues: a connection that only reads cannot see another's schema changes. */
export function forgetCatalogs(conn: Pick<Store, 'cache'>): void {
  conn.cache.clear(CATALOGS);
}

/**
 * Fields arrive as one JSON array of `[class, path, type, description]` rows. SQLite's upsert
 * after a SELECT needs a WHERE to parse; PostgreSQL orders text by code point only when told.
 */
const q = statements('profile-schema', {
  /** A sandbox's stored fields by class and path. */
  fields: {
    sqlite: 'SELECT class, path, type, description FROM schema_fields WHERE sandbox_id = ? ORDER BY class, path',
    postgres: `SELECT class, path, type, description FROM schema_fields WHERE sandbox_id = $1
      ORDER BY class COLLATE "C", path COLLATE "C"`,
  },
  /** Parameters: sandbox, created at, the rows; a field already there is kept as it is. */
  insertMissing: {
    sqlite: `INSERT INTO schema_fields (sandbox_id, class, path, type, description, created_at)
      SELECT ?, value ->> 0, value ->> 1, value ->> 2, value ->> 3, ? FROM json_each(?) WHERE true
      ON CONFLICT (sandbox_id, class, path) DO NOTHING`,
    postgres: `INSERT INTO schema_fields (sandbox_id, class, path, type, description, created_at)
      SELECT $1, f ->> 0, f ->> 1, f ->> 2, f ->> 3, $2 FROM jsonb_array_elements(CAST($3 AS jsonb)) AS f
      ON CONFLICT (sandbox_id, class, path) DO NOTHING`,
  },
  /** Parameters: sandbox, created at, the rows (each field once); a field already there takes the type and description. */
  upsert: {
    sqlite: `INSERT INTO schema_fields (sandbox_id, class, path, type, description, created_at)
      SELECT ?, value ->> 0, value ->> 1, value ->> 2, value ->> 3, ? FROM json_each(?) WHERE true
      ON CONFLICT (sandbox_id, class, path) DO UPDATE SET type = excluded.type, description = excluded.description`,
    postgres: `INSERT INTO schema_fields (sandbox_id, class, path, type, description, created_at)
      SELECT $1, f ->> 0, f ->> 1, f ->> 2, f ->> 3, $2 FROM jsonb_array_elements(CAST($3 AS jsonb)) AS f
      ON CONFLICT (sandbox_id, class, path) DO UPDATE SET type = excluded.type, description = excluded.description`,
  },
});

/** The default fields of a new sandbox (inside the unit that creates it). */
export async function installDefaultSchema(conn: Store, sandboxId: number, now = Date.now()): Promise<void> {
  const rows = DEFAULT_SCHEMA_FIELDS.map((f) => [f.class, f.path, f.type, null]);
  await conn.run(q.insertMissing, [sandboxId, now, JSON.stringify(rows)]);
  cacheFor(conn).delete(sandboxId);
}

/**
 * The sandbox's catalogue, read once per connection and kept: synchronous, as the PQL checker
 * and the ingest path that call it are (the same statement, prepared on the connection).
 */
function load(conn: Connection, sandboxId: number): SandboxCatalog {
  const cache = cacheFor(conn);
  const hit = cache.get(sandboxId);
  if (hit) return hit;
  const fields = preparedOn(conn.sqlite, q.fields).all(sandboxId) as SchemaField[];
  const entry = sandboxCatalog(fields);
  cache.set(sandboxId, entry);
  return entry;
}

/**
 * A sandbox's fields and catalogue from its stored `schema_fields` rows, however they were read
 * (SQLite here, PostgreSQL in pg-expressions.ts), so both databases type an expression alike.
 */
export function sandboxCatalog(stored: readonly SchemaField[]): SandboxCatalog {
  const fields = [...stored];
  // Built-in fields added after a sandbox was created are not stored for it, yet belong to it.
  const known = new Set(fields.map((f) => `${f.class}:${f.path}`));
  for (const f of BUILT_IN_SCHEMA_FIELDS) {
    if (!known.has(`${f.class}:${f.path}`))
      fields.push({ class: f.class, path: f.path, type: f.type, description: null });
  }
  fields.sort((a, b) =>
    a.class === b.class ? (a.path < b.path ? -1 : a.path > b.path ? 1 : 0) : a.class < b.class ? -1 : 1,
  );
  return { fields, catalog: buildCatalog(fields) };
}

/** A sandbox's stored fields through a statement runner of either database (its transaction's snapshot). */
export function readSchemaFields(runner: StatementRunner, sandboxId: number): Promise<SchemaField[]> {
  return runner.all<SchemaField>(q.fields, [sandboxId]);
}

/**
 * A sandbox's fields, the built-in ones included, read through either database's handle: fresh,
 * since on a cluster another node may have changed them (the synchronous catalogue is cached per
 * connection and told of changes by its path's own means).
 */
export async function schemaFieldsOf(store: StatementRunner, sandboxId: number): Promise<SchemaField[]> {
  return sandboxCatalog(await readSchemaFields(store, sandboxId)).fields;
}

/**
 * The sandbox's catalogue read through either database's handle (streaming on a pooled
 * database, inside its unit); not cached: the caller keeps what it builds from it.
 */
export async function readCatalog(store: StatementRunner, sandboxId: number): Promise<FieldCatalog> {
  return sandboxCatalog(await readSchemaFields(store, sandboxId)).catalog;
}
export const catalogOf = (conn: Connection, sandboxId: number): FieldCatalog => load(conn, sandboxId).catalog;

/**
 * Adds fields (safe: nothing stored changes meaning) or re-describes them. Changing the type
 * of an existing field is a CONFLICT when something uses it (`fieldInUse`), since stored data
 * and saved definitions were checked against the old type.
 */
export async function updateProfileSchema(
  conn: Store,
  sandboxId: number,
  input: SchemaFieldInput[],
  fieldInUse: (cls: FieldClass, path: string) => string[] | Promise<string[]> = () => [],
  now = Date.now(),
): Promise<SchemaField[]> {
  if (input.length === 0) throw badInput('Give at least one field', 'input.fields');
  const existing = new Map((await schemaFieldsOf(conn, sandboxId)).map((f) => [`${f.class}:${f.path}`, f]));
  // In input order, so the first bad field is the one reported, as before.
  for (const [i, f] of input.entries()) {
    const at = `input.fields.${i}`;
    if (f.class !== 'profile' && f.class !== 'event') throw badInput('class must be profile or event', `${at}.class`);
    try {
      parseFieldType(f.type);
    } catch (e) {
      throw badInput(`Unknown field type "${f.type}": ${(e as Error).message}`, `${at}.type`);
    }
    const reserved = String(f.path)
      .split('.')
      .find((segment) => RESERVED_SEGMENTS.has(segment));
    if (reserved !== undefined) {
      throw badInput(
        `"${reserved}" cannot be a path segment ("${f.path}"): JavaScript objects reserve it, so values under it could not be stored`,
        `${at}.path`,
      );
    }
    if (!FIELD_PATH.test(f.path)) {
      throw badInput(
        `"${f.path}" is not a field path: write names of letters, digits and _ joined by dots (e.g. "product.price")`,
        `${at}.path`,
      );
    }
    const clash = builtInConflict(f);
    if (clash !== undefined) throw badInput(clash, `${at}.path`);
    const old = existing.get(`${f.class}:${f.path}`);
    if (old && old.type !== f.type) {
      const users = await fieldInUse(f.class, f.path);
      if (users.length > 0) {
        throw conflict(
          `Field "${f.path}" is used by ${users.join(', ')}; its type cannot change from ${old.type} to ${f.type}`,
          {
            dependents: users,
          },
        );
      }
    }
  }
  // Each field once, the last given winning, as writing them one after another did.
  const rows = new Map(input.map((f) => [`${f.class}:${f.path}`, [f.class, f.path, f.type, f.description ?? null]]));
  await writeUnit(conn, async (tx) => {
    await tx.run(q.upsert, [sandboxId, now, JSON.stringify([...rows.values()])]);
    // Reject a schema the catalogue cannot build (e.g. a scalar made a parent of another field).
    const stored = await tx.all<SchemaField>(q.fields, [sandboxId]);
    try {
      buildCatalog(stored);
    } catch (e) {
      throw badInput(`The schema would be inconsistent: ${(e as Error).message}`, 'input.fields');
    }
  });
  cacheFor(conn).delete(sandboxId);
  return await schemaFieldsOf(conn, sandboxId);
}
