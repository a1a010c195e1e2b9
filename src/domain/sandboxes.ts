import { eq } from 'drizzle-orm';
import { cacheKey } from '../db/connection-cache.js';
import type { Connection } from '../db/index.js';
import { sandboxes } from '../db/schema.js';
import { badInput, conflict } from './errors.js';
import { installDefaultSchema } from './profile-schema.js';

export interface Sandbox {
  id: number;
  name: string;
  createdAt: number;
}

export const DEFAULT_SANDBOX = 'prod';
const NAME = /^[a-z0-9-]{1,64}$/;

// Sandboxes are few and never renamed: cache them so every request's lookup is a map hit.
const SANDBOXES = cacheKey<Map<string, Sandbox>>('sandboxes');

function sandboxCache(conn: Connection): Map<string, Sandbox> {
  return conn.cache.get(SANDBOXES, () => new Map());
}

export function findSandbox(conn: Connection, name: string): Sandbox | undefined {
  const map = sandboxCache(conn);
  const hit = map.get(name);
  if (hit) return hit;
  const row = conn.db.select().from(sandboxes).where(eq(sandboxes.name, name)).get();
  if (row) map.set(name, row);
  return row;
}

export function createSandbox(conn: Connection, name: string, now = Date.now()): Sandbox {
  if (!NAME.test(name)) {
    throw badInput('Sandbox names are 1 to 64 characters of a-z, 0-9 and "-"', 'name');
  }
  return conn.sqlite
    .transaction(() => {
      if (findSandbox(conn, name)) throw conflict(`Sandbox "${name}" already exists`);
      const row = conn.db.insert(sandboxes).values({ name, createdAt: now }).returning().get();
      installDefaultSchema(conn, row.id, now);
      return row;
    })
    .immediate();
}

/** Creates the sandbox if missing (start-up creates `prod`). */
export function ensureSandbox(conn: Connection, name: string): Sandbox {
  return findSandbox(conn, name) ?? createSandbox(conn, name);
}
