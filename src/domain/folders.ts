import { statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
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

const COLUMNS = 'id, sandbox_id AS "sandboxId", name, parent_id AS "parentId", created_at AS "createdAt"';

const q = statements('folders', {
  /**
   * The sandbox's folders among the ids of the JSON array, by id. `+sandbox_id` and `ORDER BY id`:
   * see audiences' byIds (src/domain/audiences.ts).
   */
  byIds: {
    sqlite: `SELECT ${COLUMNS} FROM folders WHERE +sandbox_id = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id`,
    postgres: `SELECT ${COLUMNS} FROM folders WHERE sandbox_id = $1
      AND id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb))) ORDER BY id`,
  },
  ofSandbox: {
    sqlite: `SELECT ${COLUMNS} FROM folders WHERE sandbox_id = ?`,
    postgres: `SELECT ${COLUMNS} FROM folders WHERE sandbox_id = $1`,
  },
  insert: {
    sqlite: `INSERT INTO folders (sandbox_id, name, parent_id, created_at) VALUES (?, ?, ?, ?) RETURNING ${COLUMNS}`,
    postgres: `INSERT INTO folders (sandbox_id, name, parent_id, created_at) VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}`,
  },
});

async function foldersByIds(conn: Store, sandboxId: number, ids: readonly number[]): Promise<Map<number, Folder>> {
  const out = new Map<number, Folder>();
  if (ids.length === 0) return out;
  for (const row of await conn.all<Folder>(q.byIds, [sandboxId, JSON.stringify(ids)])) out.set(row.id, row);
  return out;
}

export async function requireFolder(conn: Store, sandboxId: number, id: number): Promise<Folder> {
  const folder = (await foldersByIds(conn, sandboxId, [id])).get(id);
  if (!folder) throw notFound(`No folder with id ${id} in this sandbox`, String(id));
  return folder;
}

/** Every folder of the sandbox, for building paths (folders are few: a taxonomy, not data). */
export async function allFolders(conn: Store, sandboxId: number): Promise<Map<number, Folder>> {
  return new Map((await conn.all<Folder>(q.ofSandbox, [sandboxId])).map((f) => [f.id, f]));
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
  conn: Store,
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
    const siblings = (await tx.all<Folder>(q.ofSandbox, [sandboxId])).filter((f) => f.parentId === parentId);
    if (siblings.some((f) => f.name.toLowerCase() === name.toLowerCase())) {
      throw conflict(`A folder named "${name}" already exists there`);
    }
    return (await tx.get<Folder>(q.insert, [sandboxId, name, parentId, now]))!;
  });
}
