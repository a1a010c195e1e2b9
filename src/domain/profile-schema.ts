import { and, eq } from 'drizzle-orm';
import { cacheKey } from '../db/connection-cache.js';
import type { Connection } from '../db/index.js';
import { schemaFields } from '../db/schema.js';
import { buildCatalog, DEFAULT_SCHEMA_FIELDS, type FieldCatalog, parseFieldType } from '../pql/index.js';
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

/** Users add fields under `_tenant.`; the default fields are the platform's (docs/domain.md). */
const TENANT_PATH = /^_tenant(\.[A-Za-z_][A-Za-z0-9_]*)+$/;

/** Names that address an object's prototype rather than a field of it. */
const RESERVED_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);

interface CachedCatalog {
  fields: SchemaField[];
  catalog: FieldCatalog;
}
const CATALOGS = cacheKey<Map<number, CachedCatalog>>('field catalogues');

function cacheFor(conn: Connection): Map<number, CachedCatalog> {
  return conn.cache.get(CATALOGS, () => new Map());
}

/** Drops a connection's cached catalogues: a connection that only reads cannot see another's schema changes. */
export function forgetCatalogs(conn: Connection): void {
  conn.cache.clear(CATALOGS);
}

export function installDefaultSchema(conn: Connection, sandboxId: number, now = Date.now()): void {
  conn.db
    .insert(schemaFields)
    .values(
      DEFAULT_SCHEMA_FIELDS.map((f) => ({ sandboxId, class: f.class, path: f.path, type: f.type, createdAt: now })),
    )
    .onConflictDoNothing()
    .run();
  cacheFor(conn).delete(sandboxId);
}

function load(conn: Connection, sandboxId: number): CachedCatalog {
  const cache = cacheFor(conn);
  const hit = cache.get(sandboxId);
  if (hit) return hit;
  const fields = conn.db
    .select({
      class: schemaFields.class,
      path: schemaFields.path,
      type: schemaFields.type,
      description: schemaFields.description,
    })
    .from(schemaFields)
    .where(eq(schemaFields.sandboxId, sandboxId))
    .orderBy(schemaFields.class, schemaFields.path)
    .all() as SchemaField[];
  const entry = { fields, catalog: buildCatalog(fields) };
  cache.set(sandboxId, entry);
  return entry;
}

export const schemaFieldsOf = (conn: Connection, sandboxId: number): SchemaField[] => load(conn, sandboxId).fields;
export const catalogOf = (conn: Connection, sandboxId: number): FieldCatalog => load(conn, sandboxId).catalog;

/**
 * Adds fields (safe: nothing stored changes meaning) or re-describes them. Changing the type
 * of an existing field is a CONFLICT when something uses it (`fieldInUse`), since stored data
 * and saved definitions were checked against the old type.
 */
export function updateProfileSchema(
  conn: Connection,
  sandboxId: number,
  input: SchemaFieldInput[],
  fieldInUse: (cls: FieldClass, path: string) => string[] = () => [],
  now = Date.now(),
): SchemaField[] {
  if (input.length === 0) throw badInput('Give at least one field', 'input.fields');
  const existing = new Map(schemaFieldsOf(conn, sandboxId).map((f) => [`${f.class}:${f.path}`, f]));
  input.forEach((f, i) => {
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
    const old = existing.get(`${f.class}:${f.path}`);
    if (!old && !TENANT_PATH.test(f.path)) {
      throw badInput(
        `New fields go under "_tenant." (e.g. "_tenant.loyaltyScore"); "${f.path}" is not allowed`,
        `${at}.path`,
      );
    }
    if (old && old.type !== f.type) {
      const users = fieldInUse(f.class, f.path);
      if (users.length > 0) {
        throw conflict(
          `Field "${f.path}" is used by ${users.join(', ')}; its type cannot change from ${old.type} to ${f.type}`,
          {
            dependents: users,
          },
        );
      }
    }
  });
  conn.sqlite
    .transaction(() => {
      for (const f of input) {
        conn.db
          .insert(schemaFields)
          .values({
            sandboxId,
            class: f.class,
            path: f.path,
            type: f.type,
            description: f.description ?? null,
            createdAt: now,
          })
          .onConflictDoUpdate({
            target: [schemaFields.sandboxId, schemaFields.class, schemaFields.path],
            set: { type: f.type, description: f.description ?? null },
          })
          .run();
      }
      // Reject a schema the catalogue cannot build (e.g. a scalar made a parent of another field).
      const rows = conn.db
        .select()
        .from(schemaFields)
        .where(and(eq(schemaFields.sandboxId, sandboxId)))
        .all();
      try {
        buildCatalog(rows as SchemaField[]);
      } catch (e) {
        throw badInput(`The schema would be inconsistent: ${(e as Error).message}`, 'input.fields');
      }
    })
    .immediate();
  cacheFor(conn).delete(sandboxId);
  return schemaFieldsOf(conn, sandboxId);
}
