import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKSTOP_PAGES, startCheckpointer } from '../../src/db/checkpointer.js';
import { openDatabase } from '../../src/db/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('the checkpoint thread', () => {
  it('copies committed log pages into the database file without the writer checkpointing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segql-ckpt-'));
    dirs.push(dir);
    const file = join(dir, 'segql.db');
    const conn = openDatabase(file, { migrate: false });
    const errors: string[] = [];
    const checkpointer = startCheckpointer(conn, 20, (m) => errors.push(m));
    expect(checkpointer).toBeDefined();
    expect(conn.sqlite.pragma('wal_autocheckpoint', { simple: true })).toBe(BACKSTOP_PAGES);
    const before = statSync(file).size;
    // About 500 pages: well under the writer's own threshold, so only the thread moves them.
    conn.sqlite.exec('CREATE TABLE blobs (b BLOB)');
    const insert = conn.sqlite.prepare('INSERT INTO blobs VALUES (randomblob(4000))');
    conn.sqlite.transaction(() => {
      for (let i = 0; i < 500; i++) insert.run();
    })();
    let size = before;
    for (let waited = 0; waited < 5000 && size < before + 1_500_000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      size = statSync(file).size;
    }
    expect(size).toBeGreaterThan(before + 1_500_000);
    await checkpointer!.stop();
    expect(conn.sqlite.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    expect(errors).toEqual([]);
    conn.close();
  });

  it('is not started for an in-memory database', () => {
    const conn = openDatabase(':memory:');
    expect(startCheckpointer(conn, 20, () => {})).toBeUndefined();
    conn.close();
  });
});
