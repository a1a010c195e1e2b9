import type { Store } from '../../db/store.js';
import { badInput } from '../errors.js';
import { type SchemaField, schemaFieldsOf } from '../profile-schema.js';

/** How a column's values are written: scalars as themselves, arrays and maps as JSON text. */
export type ColumnKind = 'string' | 'number' | 'boolean' | 'datetime' | 'json';

/** One attribute column of an export: a leaf path of the profile schema. */
export interface AttributeColumn {
  path: string;
  kind: ColumnKind;
}

function kindOf(type: string): ColumnKind | 'object' {
  if (type === 'string' || type === 'number' || type === 'boolean' || type === 'datetime') return type;
  if (type === 'object') return 'object';
  return 'json';
}

/**
 * The attribute columns an export writes: every leaf of the profile schema a requested path
 * names (the path itself, or the leaves under an object path), in schema order; every leaf
 * when `fields` is null. Values inside arrays and maps are not columns of their own: the
 * array or map is one JSON column. An unknown path is BAD_USER_INPUT.
 */
export async function attributeColumns(
  conn: Store,
  sandboxId: number,
  fields: readonly string[] | null | undefined,
): Promise<AttributeColumn[]> {
  return columnsOfSchema(await schemaFieldsOf(conn, sandboxId), fields);
}

/** `attributeColumns` over a sandbox's schema fields however they were read (SQLite, or PostgreSQL on a cluster). */
export function columnsOfSchema(
  fieldsOfSandbox: readonly SchemaField[],
  fields: readonly string[] | null | undefined,
): AttributeColumn[] {
  const schema = fieldsOfSandbox.filter((f) => f.class === 'profile');
  const containers = schema.filter((f) => kindOf(f.type) === 'json').map((f) => `${f.path}.`);
  const leaves: AttributeColumn[] = [];
  for (const f of schema) {
    const kind = kindOf(f.type);
    if (kind === 'object' || containers.some((c) => f.path.startsWith(c))) continue;
    leaves.push({ path: f.path, kind });
  }
  if (fields == null) return leaves;
  const wanted = new Set<string>();
  fields.forEach((path, i) => {
    const matching = leaves.filter((c) => c.path === path || c.path.startsWith(`${path}.`));
    if (matching.length === 0) {
      const inside = containers.find((c) => path.startsWith(c));
      throw badInput(
        inside
          ? `"${path}" is inside "${inside.slice(0, -1)}", which is exported whole as JSON; ask for "${inside.slice(0, -1)}"`
          : `"${path}" is not a field of the profile schema (see profileSchema)`,
        `input.fields.${i}`,
      );
    }
    for (const c of matching) wanted.add(c.path);
  });
  return leaves.filter((c) => wanted.has(c.path));
}

/** The value at a dotted path of a document, or undefined. */
export function valueAt(doc: unknown, path: string): unknown {
  let cur = doc;
  for (const key of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/** Sets a dotted path in a nested object, creating the objects on the way. */
export function setAt(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let cur = target;
  for (const key of keys.slice(0, -1)) {
    let next = cur[key];
    if (next === null || typeof next !== 'object') {
      next = {};
      cur[key] = next;
    }
    cur = next as Record<string, unknown>;
  }
  cur[keys[keys.length - 1]!] = value;
}
