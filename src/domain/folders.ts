import { and, eq, inArray } from 'drizzle-orm';
import type { Connection } from '../db/index.js';
import { folders } from '../db/schema.js';
import { writeUnit } from '../db/unit.js';
import { badInput, conflict, notFound } from './errors.js';

export interface Folder {
  id: number;
  sandboxId: number;
  name: string;
  parentId: number | null;
  createdAt: number;
}

const FOLDER_NAME_MAX = 128;

async function foldersByIds(conn: Connection, sandboxId: number, ids: readonly number[]): Promise<Map<number, Folder>> {
  const out = new Map<number, Folder>();
  if (ids.length === 0) return out;
  for (const row of conn.db
    .select()
    .from(folders)
    .where(and(eq(folders.sandboxId, sandboxId), inArray(folders.id, [...ids])))
    .all())
    out.set(row.id, row);
  return out;
}

export async function requireFolder(conn: Connection, sandboxId: number, id: number): Promise<Folder> {
  const folder = (await foldersByIds(conn, sandboxId, [id])).get(id);
  if (!folder) throw notFound(`No folder with id ${id} in this sandbox`, String(id));
  return folder;
}

/** Every folder of the sandbox, for building paths (folders are few: a taxonomy, not data). */
export async function allFolders(conn: Connection, sandboxId: number): Promise<Map<number, Folder>> {
  return new Map(
    conn.db
      .select()
      .from(folders)
      .where(eq(folders.sandboxId, sandboxId))
      .all()
      .map((f) => [f.id, f]),
  );
}

/** `/Marketing/Nordics`: the names from the root down. */
export function folderPath(all: Map<number, Folder>, id: number): string {
  const names: string[] = [];
  let current = all.get(id);
  const seen = new Set<number>();
  while (current && !seen.has(current.id)) {
    seen.add(current.id);
    names.unshift(current.name);
    current = current.parentId == null ? undefined : all.get(current.parentId);
  }
  return `/${names.join('/')}`;
}

export async function createFolder(
  conn: Connection,
  sandboxId: number,
  input: { name: string; parentId?: number | null },
  now = Date.now(),
): Promise<Folder> {
  const name = input.name.trim();
  if (name === '' || name.length > FOLDER_NAME_MAX || name.includes('/')) {
    throw badInput(`Folder names are 1 to ${FOLDER_NAME_MAX} characters without "/"`, 'input.name');
  }
  return writeUnit(conn, async (tx) => {
    const parentId = input.parentId ?? null;
    if (parentId !== null) await requireFolder(tx, sandboxId, parentId);
    const siblings = tx.db
      .select({ name: folders.name, parentId: folders.parentId })
      .from(folders)
      .where(eq(folders.sandboxId, sandboxId))
      .all()
      .filter((f) => f.parentId === parentId);
    if (siblings.some((f) => f.name.toLowerCase() === name.toLowerCase())) {
      throw conflict(`A folder named "${name}" already exists there`);
    }
    return tx.db.insert(folders).values({ sandboxId, name, parentId, createdAt: now }).returning().get();
  });
}
