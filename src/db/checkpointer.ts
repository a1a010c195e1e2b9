/**
 * WAL checkpoints on a thread of their own. SQLite's automatic checkpoint runs inside the commit
 * that pushes the log past its threshold, so every few ingest batches one request paid for
 * copying the log into the database file and syncing it (about a third of streaming ingest's
 * time). A worker thread with its own connection checkpoints instead, PASSIVE so the writer
 * never waits for it; the writer's automatic checkpoint stays as a backstop at a higher
 * threshold, for when the thread falls behind.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Connection } from './index.js';
import { LOWER_THREAD_PRIORITY_SOURCE } from './thread-priority.js';

// An eval'd worker resolves require() from the working directory: hand it the module's own path.
const betterSqlite3 = createRequire(import.meta.url).resolve('better-sqlite3');

/**
 * The writer's own checkpoint threshold (pages) while the thread runs: 256 MiB of log at 4 KiB
 * pages. Under a steady stream of ingests the log starts over only there (db/wal-restart.ts), and
 * each time the writer stops for 25–35 ms copying what this thread had not and syncing both
 * files: at 16,384 pages that was every ~4,000 events, 12–14 % of the ingest thread's time
 * (bench `stream`, session 23). The log file keeps its largest size once it has grown.
 */
export const BACKSTOP_PAGES = 65_536;
/** SQLite's default threshold, restored when the thread stops. */
const DEFAULT_PAGES = 1_000;

// Plain CommonJS: the thread needs only better-sqlite3, so no TypeScript loader to start.
const WORKER = `
${LOWER_THREAD_PRIORITY_SOURCE}
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.betterSqlite3);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'stop') {
    clearInterval(timer);
    db.close();
    parentPort.close();
  }
});
`;

export interface Checkpointer {
  stop(): Promise<void>;
}

/**
 * Checkpoints the database of `conn` every `intervalMs` from a worker thread (a file database
 * only; `:memory:` has no log). `onError` hears a checkpoint that failed (the next one retries).
 */
export function startCheckpointer(
  conn: Connection,
  intervalMs: number,
  onError: (message: string) => void,
): Checkpointer | undefined {
  const file = conn.sqlite.name;
  if (file === ':memory:' || file === '' || conn.sqlite.readonly) return undefined;
  const worker = new Worker(WORKER, { eval: true, workerData: { file, intervalMs, betterSqlite3 } });
  worker.unref();
  worker.on('message', (m: { error?: string }) => {
    if (m.error) onError(m.error);
  });
  // A thread that died leaves the writer to checkpoint as SQLite does by default.
  worker.on('error', (err) => {
    if (conn.sqlite.open) conn.sqlite.pragma(`wal_autocheckpoint = ${DEFAULT_PAGES}`);
    onError(err.message);
  });
  conn.sqlite.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        if (conn.sqlite.open) conn.sqlite.pragma(`wal_autocheckpoint = ${DEFAULT_PAGES}`);
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        // Kept alive until the thread has closed its connection (unref'd it would not be).
        worker.ref();
        worker.postMessage('stop');
        await exited;
      })();
      return stopped;
    },
  };
}
