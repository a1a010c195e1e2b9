import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Connection, openDatabase, sqlStatementsTotal } from '../../src/db/index.js';
import { writeStamp } from '../../src/db/write-stamp.js';

let dir: string;
let file: string;
let conn: Connection;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'segql-stamp-'));
  file = join(dir, 'segql.db');
  conn = openDatabase(file, { migrate: false });
  conn.sqlite.exec('CREATE TABLE things (id INTEGER PRIMARY KEY, v TEXT)');
});
afterEach(() => {
  conn.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the write stamp', () => {
  it('stays put while the database is only read', () => {
    const stamp = writeStamp(conn);
    conn.sqlite.prepare('SELECT count(*) FROM things').get();
    expect(writeStamp(conn)).toBe(stamp);
  });

  it("moves with each of its own connection's inserts, updates and deletes", () => {
    const seen = [writeStamp(conn)];
    conn.sqlite.prepare("INSERT INTO things (v) VALUES ('a')").run();
    seen.push(writeStamp(conn));
    conn.sqlite.transaction(() => conn.sqlite.prepare("UPDATE things SET v = 'b'").run()).immediate();
    seen.push(writeStamp(conn));
    conn.sqlite.prepare('DELETE FROM things').run();
    seen.push(writeStamp(conn));
    expect(new Set(seen).size).toBe(4);
  });

  it('moves when another connection of the process commits', () => {
    const stamp = writeStamp(conn);
    const other = openDatabase(file, { migrate: false });
    try {
      other.sqlite.prepare("INSERT INTO things (v) VALUES ('elsewhere')").run();
    } finally {
      other.close();
    }
    expect(writeStamp(conn)).not.toBe(stamp);
  });

  it('moves when a worker thread commits on its own connection', async () => {
    const stamp = writeStamp(conn);
    const worker = new Worker(
      `const Database = require('better-sqlite3');
       const { workerData } = require('node:worker_threads');
       const db = new Database(workerData);
       db.prepare("INSERT INTO things (v) VALUES ('from a worker')").run();
       db.close();`,
      { eval: true, workerData: file },
    );
    await new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited ${code}`))));
    });
    expect(conn.sqlite.prepare('SELECT count(*) AS n FROM things').get()).toEqual({ n: 1 });
    expect(writeStamp(conn)).not.toBe(stamp);
  });

  it('is one statement', () => {
    const before = sqlStatementsTotal();
    writeStamp(conn);
    expect(sqlStatementsTotal() - before).toBe(1);
  });
});
