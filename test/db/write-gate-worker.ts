/**
 * A worker thread for the write-gate tests, standing for a job's task: takes the gate it is
 * given, opens an IMMEDIATE transaction (SQLite's write lock), writes one row if asked, holds the
 * lock for `holdMs`, and reports each step to the test (`committed` before it lets the gate go).
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { WriteGate } from '../../src/db/write-gate.js';

const { file, gate, holdMs, label } = workerData as {
  file: string;
  gate: SharedArrayBuffer;
  holdMs: number;
  /** Written to the test's `writes` table; without it the thread only holds the lock. */
  label?: string;
};
const db = new Database(file);
db.pragma('busy_timeout = 5000');
const sleep = new Int32Array(new SharedArrayBuffer(4));
parentPort!.postMessage('waiting');
const shared = new WriteGate(gate, 2_000);
shared.runBlocking(() => {
  // A section inside the thread's own goes straight on (it would otherwise wait for itself).
  const nestedFrom = Date.now();
  shared.runBlocking(() => undefined);
  parentPort!.postMessage(Date.now() - nestedFrom < 500 ? 'nested at once' : 'nested waited');
  db.transaction(() => {
    if (label !== undefined) db.prepare('INSERT INTO writes (label) VALUES (?)').run(label);
    parentPort!.postMessage('holding');
    Atomics.wait(sleep, 0, 0, holdMs);
  }).immediate();
  // Committed, the gate still held: nothing waiting for it can have written yet.
  parentPort!.postMessage('committed');
});
db.close();
parentPort!.postMessage('done');
