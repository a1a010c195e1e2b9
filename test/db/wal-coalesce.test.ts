import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, sqlStatementsTotal } from '../../src/db/index.js';
import { installWalCoalescing, WAL_COALESCE_LIBRARY, walCoalesceStats } from '../../src/db/wal-coalesce.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function scratchFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'segql-walc-'));
  dirs.push(dir);
  return join(dir, 'segql.db');
}

/** A raw connection as SegQL opens its files (the VFS is the process's default once installed). */
function open(file: string, cachePages = 2000): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma(`cache_size = ${cachePages}`);
  db.pragma('wal_autocheckpoint = 0');
  return db;
}

const rowsOf = (db: Database.Database, table = 'rows') =>
  (db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number) ?? 0;

/**
 * Runs `body` (ES module text, `db` open on `file` with the VFS loaded) in a child process that
 * prints "ready" when done and then waits, touching nothing, until it is killed with SIGKILL: what
 * it committed must be in the file without any later call flushing it.
 */
async function commitThenDie(file: string, body: string): Promise<void> {
  const script = `
    import Database from 'better-sqlite3';
    const loader = new Database(':memory:');
    loader.loadExtension(${JSON.stringify(WAL_COALESCE_LIBRARY)}, 'sqlite3_walcoalesce_init');
    loader.close();
    const db = new Database(${JSON.stringify(file)});
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('wal_autocheckpoint = 0');
    ${body}
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: process.cwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`child exited with ${code} before it was ready: ${err}`)));
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

beforeAll(() => {
  // npm ci builds it (scripts/build-native.ts); a machine where it could not be built runs the
  // plain VFS, and these tests would prove nothing there.
  expect(installWalCoalescing()).toEqual({ on: true });
});

describe('the WAL write-coalescing VFS', () => {
  it('carries a commit’s frames in a few writes on the connections openDatabase opens', () => {
    const conn = openDatabase(scratchFile(), { migrate: false });
    conn.sqlite.exec('CREATE TABLE rows (b BLOB)');
    const before = walCoalesceStats()!;
    const insert = conn.sqlite.prepare('INSERT INTO rows VALUES (randomblob(3000))');
    // One page a row: about 300 frames in one commit.
    conn.sqlite.transaction(() => {
      for (let i = 0; i < 300; i++) insert.run();
    })();
    const after = walCoalesceStats()!;
    const frames = after.frames - before.frames;
    const writes = after.writes - before.writes;
    expect(frames).toBeGreaterThanOrEqual(300);
    // 31 frames of 4 KiB a write (the unix VFS's largest), not two writes a frame.
    expect(writes).toBeLessThanOrEqual(Math.ceil(frames / 31) + 1);
    expect(rowsOf(conn.sqlite)).toBe(300);
    conn.close();
  });

  it('reads its counts without adding to the statements /metrics counts', () => {
    const conn = openDatabase(scratchFile(), { migrate: false });
    conn.sqlite.exec('CREATE TABLE rows (b BLOB)');
    walCoalesceStats();
    const before = sqlStatementsTotal();
    for (let i = 0; i < 5; i++) expect(walCoalesceStats()!.writes).toBeGreaterThan(0);
    expect(sqlStatementsTotal()).toBe(before);
    conn.sqlite.prepare('SELECT 1').get();
    expect(sqlStatementsTotal()).toBe(before + 1);
    conn.close();
  });

  it('has every commit readable by another connection as soon as it returns', () => {
    const file = scratchFile();
    const writer = open(file);
    writer.exec('CREATE TABLE rows (b BLOB)');
    const reader = new Database(file, { readonly: true });
    const insert = writer.prepare('INSERT INTO rows VALUES (randomblob(?))');
    for (let commit = 1; commit <= 40; commit++) {
      writer.transaction(() => {
        for (let i = 0; i < commit; i++) insert.run(100 + 97 * i);
      })();
      expect(rowsOf(reader)).toBe((commit * (commit + 1)) / 2);
    }
    expect(reader.pragma('integrity_check', { simple: true })).toBe('ok');
    reader.close();
    writer.close();
  });

  it('leaves a commit in the file when the process is killed right after it returns', async () => {
    const file = scratchFile();
    await commitThenDie(
      file,
      `db.exec('CREATE TABLE rows (n INTEGER, b BLOB)');
       const insert = db.prepare('INSERT INTO rows VALUES (?, randomblob(2000))');
       for (let c = 0; c < 5; c++) db.transaction(() => { for (let i = 0; i < 100; i++) insert.run(c * 100 + i); })();`,
    );
    const db = open(file);
    expect(rowsOf(db)).toBe(500);
    expect(db.prepare('SELECT max(n) FROM rows').pluck().get()).toBe(499);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  });

  it('keeps a commit whose spilled pages were written again (checksums rewritten) across a kill', async () => {
    const file = scratchFile();
    // A cache of 10 pages: the transaction spills pages to the log and rewrites them in place as
    // it updates the same rows, so the commit rewrites those frames' checksums.
    await commitThenDie(
      file,
      `db.pragma('cache_size = 10');
       db.exec('CREATE TABLE rows (n INTEGER PRIMARY KEY, b BLOB)');
       db.transaction(() => {
         const insert = db.prepare('INSERT INTO rows VALUES (?, randomblob(1500))');
         for (let i = 0; i < 400; i++) insert.run(i);
         const update = db.prepare('UPDATE rows SET b = randomblob(1500) WHERE n % 3 = ?');
         for (let round = 0; round < 3; round++) update.run(round);
       })();`,
    );
    const db = open(file);
    expect(rowsOf(db)).toBe(400);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  });

  it('never writes a rolled-back transaction’s spilled frames over what another connection committed since', () => {
    const file = scratchFile();
    const a = open(file, 10);
    a.exec('CREATE TABLE rows (who TEXT, b BLOB)');
    const b = open(file);
    a.pragma('wal_checkpoint(TRUNCATE)');
    // A spills frames from the log's start, then rolls back: nothing of it may reach the file later.
    a.exec('BEGIN IMMEDIATE');
    const aInsert = a.prepare("INSERT INTO rows VALUES ('a', randomblob(3000))");
    for (let i = 0; i < 200; i++) aInsert.run();
    a.exec('ROLLBACK');
    // B starts the log over and commits past the same offsets.
    expect(b.pragma('wal_checkpoint(TRUNCATE)', { simple: true })).toBe(0);
    const bInsert = b.prepare("INSERT INTO rows VALUES ('b', randomblob(3000))");
    b.transaction(() => {
      for (let i = 0; i < 400; i++) bInsert.run();
    })();
    // A writes again: its first write to the log must not carry the old frames with it.
    a.transaction(() => {
      for (let i = 0; i < 5; i++) aInsert.run();
    })();
    a.close();
    b.close();
    const check = open(file);
    expect(check.prepare('SELECT who, count(*) AS n FROM rows GROUP BY who ORDER BY who').all()).toEqual([
      { who: 'a', n: 5 },
      { who: 'b', n: 400 },
    ]);
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
    check.close();
  });
});
