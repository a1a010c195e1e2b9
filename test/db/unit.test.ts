import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { writeInTurn, writeUnit } from '../../src/db/unit.js';
import { startTypeScriptWorker } from '../../src/domain/jobs/worker-thread.js';

let dir: string;
let file: string;
let conn: Connection;
const workers: Worker[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'segql-unit-'));
  file = join(dir, 'segql.db');
  conn = openDatabase(file, { migrate: false });
  conn.sqlite.exec('CREATE TABLE writes (id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE)');
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
  conn.close();
  rmSync(dir, { recursive: true, force: true });
});

const insert = (c: Connection, label: string) => c.sqlite.prepare('INSERT INTO writes (label) VALUES (?)').run(label);
const labels = () => (conn.sqlite.prepare('SELECT label FROM writes ORDER BY id').pluck().all() as string[]).join(',');
/**
 * A few turns of the microtask queue: what a unit's awaits take on SQLite, where a unit left open
 * past its turn of the event loop fails the tests (db/unit.ts).
 */
const tick = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('a write unit', () => {
  it('commits what a synchronous body wrote and resolves with its result', async () => {
    const pending = writeUnit(conn, (tx) => {
      insert(tx, 'a');
      return insert(tx, 'b').changes;
    });
    // The body ran and committed in the call itself: nothing could come between.
    expect(conn.sqlite.inTransaction).toBe(false);
    expect(labels()).toBe('a,b');
    await expect(pending).resolves.toBe(1);
  });

  it('rolls back everything a failing body wrote', async () => {
    await expect(
      writeUnit(conn, (tx) => {
        insert(tx, 'a');
        insert(tx, 'a');
      }),
    ).rejects.toThrow(/UNIQUE/);
    await expect(
      writeUnit(conn, async (tx) => {
        insert(tx, 'b');
        await tick();
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    expect(labels()).toBe('');
    expect(conn.sqlite.inTransaction).toBe(false);
  });

  it('makes a second unit wait for one that awaits, instead of joining it', async () => {
    const first = writeUnit(conn, async (tx) => {
      insert(tx, 'first');
      await tick();
      insert(tx, 'first again');
      await tick();
      throw new Error('first gives up');
    });
    const second = writeUnit(conn, (tx) => insert(tx, 'second'));
    const third = writeUnit(conn, async (tx) => {
      await tick();
      return insert(tx, 'third').changes;
    });
    await expect(first).rejects.toThrow('first gives up');
    await second;
    await expect(third).resolves.toBe(1);
    // Had the second joined the first's open transaction, the rollback would have taken it too.
    expect(labels()).toBe('second,third');
  });

  it('makes a synchronous writer wait for an open unit, and run at once when none is', async () => {
    expect(writeInTurn(conn, () => insert(conn, 'at once').changes)).toBe(1);
    const unit = writeUnit(conn, async (tx) => {
      insert(tx, 'unit');
      await tick();
      throw new Error('unit gives up');
    });
    const writer = writeInTurn(conn, () => conn.sqlite.transaction(() => insert(conn, 'writer').changes)());
    expect(writer).toBeInstanceOf(Promise);
    await expect(unit).rejects.toThrow('unit gives up');
    await expect(writer).resolves.toBe(1);
    // Run inside the open unit, the writer's transaction would have been a savepoint rolled back with it.
    expect(labels()).toBe('at once,writer');
  });

  it('runs a unit opened with the handle as a savepoint of the enclosing one', async () => {
    await writeUnit(conn, async (tx) => {
      insert(tx, 'outer');
      await expect(
        writeUnit(tx, async (inner) => {
          insert(inner, 'inner');
          await tick();
          insert(inner, 'outer');
        }),
      ).rejects.toThrow(/UNIQUE/);
      await writeUnit(tx, (inner) => insert(inner, 'kept'));
    });
    expect(labels()).toBe('outer,kept');
  });

  it('refuses a unit opened with the outer connection inside another, which would wait for ever', async () => {
    await expect(writeUnit(conn, async () => writeUnit(conn, (tx) => insert(tx, 'x')))).rejects.toThrow(
      /enclosing unit's handle/,
    );
    expect(labels()).toBe('');
  });

  it('lets work a unit started and did not wait for open units of its own once the unit has ended', async () => {
    let later: Promise<unknown> | undefined;
    await writeUnit(conn, async (tx) => {
      insert(tx, 'unit');
      later = nextTurn().then(() => writeUnit(conn, (other) => insert(other, 'later')));
    });
    await later;
    expect(labels()).toBe('unit,later');
  });

  it('fails at once with SQLITE_BUSY, not a busy wait, when told not to wait for another process', async () => {
    const other = new Database(file);
    try {
      other.exec('BEGIN IMMEDIATE');
      const started = Date.now();
      await expect(writeUnit(conn, (tx) => insert(tx, 'x'), { busyWait: false })).rejects.toMatchObject({
        code: 'SQLITE_BUSY',
      });
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(conn.sqlite.pragma('busy_timeout', { simple: true })).toBe(5000);
      other.exec('ROLLBACK');
      await writeUnit(conn, (tx) => insert(tx, 'after'), { busyWait: false });
      expect(labels()).toBe('after');
    } finally {
      other.close();
    }
  });

  it('starts once a job worker holding the write gate is done, without holding the event loop', async () => {
    const worker = startTypeScriptWorker(new URL('./write-gate-worker.ts', import.meta.url).href, {
      file,
      gate: conn.writeGate.buffer,
      holdMs: 300,
      label: 'worker',
    });
    workers.push(worker);
    await new Promise<void>((resolve) => worker.on('message', (step) => step === 'holding' && resolve()));
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    await writeUnit(conn, (tx) => insert(tx, 'main'));
    clearInterval(ticker);
    expect(ticks).toBeGreaterThan(5);
    expect(labels()).toBe('worker,main');
  });
});
