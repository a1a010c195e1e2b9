import { cacheKey } from '../db/connection-cache.js';
import { statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import { writeUnit } from '../db/unit.js';
import { badInput, conflict } from './errors.js';
import { installDefaultSchema } from './profile-schema.js';

export interface Sandbox {
  id: number;
  name: string;
  createdAt: number;
}

export const DEFAULT_SANDBOX = 'prod';
const NAME = /^[a-z0-9-]{1,64}$/;

// Every column, as Drizzle's select() gave them (profileCount included).
const COLUMNS = 'id, name, created_at AS "createdAt", profile_count AS "profileCount"';

const q = statements('sandboxes', {
  byName: {
    sqlite: `SELECT ${COLUMNS} FROM sandboxes WHERE name = ?`,
    postgres: `SELECT ${COLUMNS} FROM sandboxes WHERE name = $1`,
  },
  insert: {
    sqlite: `INSERT INTO sandboxes (name, created_at) VALUES (?, ?) RETURNING ${COLUMNS}`,
    postgres: `INSERT INTO sandboxes (name, created_at) VALUES ($1, $2) RETURNING ${COLUMNS}`,
  },
});

// Sandboxes are few and never renamed: cache them so every request's lookup is a map hit.
const SANDBOXES = cacheKey<Map<string, Sandbox>>('sandboxes');

function sandboxCache(conn: Store): Map<string, Sandbox> {
  return conn.cache.get(SANDBOXES, () => new Map());
}

export async function findSandbox(conn: Store, name: string): Promise<Sandbox | undefined> {
  const map = sandboxCache(conn);
  const hit = map.get(name);
  if (hit) return hit;
  const row = await conn.get<Sandbox>(q.byName, [name]);
  if (row) map.set(name, row);
  return row;
}

export async function createSandbox(conn: Store, name: string, now = Date.now()): Promise<Sandbox> {
  if (!NAME.test(name)) {
    throw badInput('Sandbox names are 1 to 64 characters of a-z, 0-9 and "-"', 'name');
  }
  return writeUnit(conn, async (tx) => {
    if (await findSandbox(tx, name)) throw conflict(`Sandbox "${name}" already exists`);
    const row = (await tx.get<Sandbox>(q.insert, [name, now]))!;
    await installDefaultSchema(tx, row.id, now);
    return row;
  });
}

/** Creates the sandbox if missing (start-up creates `prod`). */
export async function ensureSandbox(conn: Store, name: string): Promise<Sandbox> {
  return (await findSandbox(conn, name)) ?? createSandbox(conn, name);
}
