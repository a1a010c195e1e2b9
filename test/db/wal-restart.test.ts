import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { WalRestarts } from '../../src/db/wal-restart.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function store() {
  const dir = mkdtempSync(join(tmpdir(), 'segql-walr-'));
  dirs.push(dir);
  const file = join(dir, 'segql.db');
  const conn = openDatabase(file, { migrate: false });
  conn.sqlite.exec('CREATE TABLE blobs (b BLOB)');
  const insert = conn.sqlite.prepare('INSERT INTO blobs VALUES (randomblob(3000))');
  // One page per row: a commit of n rows adds about n frames to the log.
  const commit = (rows: number) =>
    conn.sqlite.transaction(() => {
      for (let i = 0; i < rows; i++) insert.run();
    })();
  return { file, conn, commit };
}

describe('the log restarting between groups', () => {
  it('never checkpoints inside a commit, and starts the log over after the group that passes the threshold', () => {
    const { conn, commit } = store();
    const restarts = new WalRestarts(conn.sqlite, 200);
    expect(conn.sqlite.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    commit(150);
    restarts.afterGroup();
    const below = restarts.frames();
    expect(below).toBeGreaterThan(150);
    // Past the threshold inside the commit: SQLite's own checkpoint would have run there; the
    // log is still all there when the commit returns.
    commit(150);
    expect(restarts.frames()).toBeGreaterThan(below + 150);
    restarts.afterGroup();
    // The checkpoint between groups copied it all, so the next commit writes from the log's start.
    commit(10);
    expect(restarts.frames()).toBeLessThan(30);
    restarts.close();
    conn.close();
  });

  it('checks again a quarter of the threshold on while a reader keeps the log from starting over', () => {
    const { file, conn, commit } = store();
    const restarts = new WalRestarts(conn.sqlite, 200);
    commit(10);
    // A reader on another connection, its snapshot open on the first frames.
    const reader = new Database(file, { readonly: true });
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) FROM blobs').get();
    let checkpoints = 0;
    const pragma = conn.sqlite.pragma.bind(conn.sqlite);
    conn.sqlite.pragma = ((source: string, options?: Database.PragmaOptions) => {
      if (source.startsWith('wal_checkpoint')) checkpoints++;
      return pragma(source, options);
    }) as typeof conn.sqlite.pragma;
    // The log's size after each group, and the groups after which a checkpoint was taken.
    const sizes: number[] = [];
    const checked: number[] = [];
    for (let group = 0; group < 15; group++) {
      commit(20);
      const before = checkpoints;
      restarts.afterGroup();
      sizes.push(restarts.frames());
      if (checkpoints > before) checked.push(group);
    }
    // Never started over: the reader holds the first frames.
    expect(sizes.at(-1)).toBeGreaterThan(300);
    const first = sizes.findIndex((frames) => frames > 200);
    const second = sizes.findIndex((frames) => frames > sizes[first]! + 50);
    expect(first).toBeGreaterThan(0);
    expect(second).toBeGreaterThan(first + 1);
    expect(checked.slice(0, 2)).toEqual([first, second]);
    // Once the reader is gone, the next checkpoint (a quarter on again) lets the log start over.
    reader.exec('COMMIT');
    reader.close();
    for (let group = 0; group < 3; group++) {
      commit(20);
      restarts.afterGroup();
    }
    expect(checkpoints).toBe(4);
    commit(5);
    expect(restarts.frames()).toBeLessThan(30);
    restarts.close();
    conn.close();
  });
});
