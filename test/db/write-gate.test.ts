import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { startTypeScriptWorker } from '../../src/domain/jobs/worker-thread.js';

let dir: string;
let file: string;
let conn: Connection;
const workers: Worker[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'segql-gate-'));
  file = join(dir, 'segql.db');
  conn = openDatabase(file, { migrate: false });
  conn.sqlite.exec('CREATE TABLE writes (id INTEGER PRIMARY KEY, label TEXT NOT NULL)');
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
  conn.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a worker that writes `label` holding the gate and the write lock for `holdMs`. */
function writer(
  label: string,
  holdMs: number,
): { worker: Worker; seen: Set<string>; reached: (step: string) => Promise<void> } {
  const worker = startTypeScriptWorker(new URL('./write-gate-worker.ts', import.meta.url).href, {
    file,
    gate: conn.writeGate.buffer,
    holdMs,
    label,
  });
  workers.push(worker);
  const seen = new Set<string>();
  const waiters = new Map<string, () => void>();
  worker.on('message', (step: string) => {
    seen.add(step);
    waiters.get(step)?.();
  });
  const reached = (step: string) =>
    seen.has(step) ? Promise.resolve() : new Promise<void>((resolve) => waiters.set(step, resolve));
  return { worker, seen, reached };
}

const insert = (label: string) => () => conn.sqlite.prepare('INSERT INTO writes (label) VALUES (?)').run(label);
const labels = () => (conn.sqlite.prepare('SELECT label FROM writes ORDER BY id').pluck().all() as string[]).join(',');

describe('the write gate', () => {
  it('runs a main-thread section at once, synchronously, when no worker holds it', () => {
    const result = conn.writeGate.run(() => 42);
    expect(result).toBe(42);
    expect(conn.writeGate.run(insert('main'))).toMatchObject({ changes: 1 });
  });

  it('makes the main thread wait for a worker’s write without holding the event loop', async () => {
    const job = writer('worker', 600);
    await job.reached('holding');
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    const started = Date.now();
    const pending = conn.writeGate.run(insert('main'));
    expect(pending).toBeInstanceOf(Promise);
    await pending;
    clearInterval(ticker);
    const waited = Date.now() - started;
    // Without the gate the insert would have spun in SQLite's busy wait: no timer could fire.
    expect(waited).toBeGreaterThan(300);
    expect(ticks).toBeGreaterThan(waited / 10 / 4);
    expect(labels()).toBe('worker,main');
    expect(conn.writeGate.heldByWorker()).toBe(false);
  });

  it('lets a waiting worker go before the main thread’s next section', async () => {
    const first = writer('first', 400);
    await first.reached('holding');
    const second = writer('second', 10);
    await second.reached('waiting');
    // The second worker now waits for the gate; the main thread's write comes after it.
    await new Promise((resolve) => setTimeout(resolve, 50));
    await conn.writeGate.run(insert('main'));
    await second.reached('done');
    expect(labels()).toBe('first,second,main');
  });

  it('lets a worker run a section inside its own at once', async () => {
    const job = writer('nested', 10);
    await job.reached('done');
    expect(job.seen.has('nested at once')).toBe(true);
    expect(labels()).toBe('nested');
  });

  it('is freed when the worker holding it is stopped', async () => {
    const job = writer('stopped', 60_000);
    await job.reached('holding');
    expect(conn.writeGate.heldByWorker()).toBe(true);
    const { threadId } = job.worker;
    await job.worker.terminate();
    conn.writeGate.releaseHeldBy(threadId);
    expect(conn.writeGate.heldByWorker()).toBe(false);
    // SQLite rolled back what the stopped thread left open: the gate and the lock are both free.
    expect(conn.writeGate.run(insert('after'))).toMatchObject({ changes: 1 });
    expect(labels()).toBe('after');
  });
});
