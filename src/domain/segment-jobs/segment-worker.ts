/**
 * Worker-thread entry of a segment job: evaluation is CPU- and I/O-heavy synchronous SQLite
 * work, so it runs here with its own connection while the main thread keeps answering
 * queries and subscriptions.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from '../../db/index.js';
import { EvaluationCancelled, evaluateSegmentPlan, type SegmentPlan } from './segment-evaluation.js';

export interface SegmentWorkerData {
  dbFile: string;
  plan: SegmentPlan;
  /** Int32Array over a SharedArrayBuffer; [0] becomes 1 on cancel. */
  cancelFlag: SharedArrayBuffer;
}

export type SegmentWorkerMessage =
  | { type: 'progress'; done: number; total: number }
  | { type: 'done'; metrics: ReturnType<typeof evaluateSegmentPlan> }
  | { type: 'cancelled' }
  | { type: 'error'; message: string; stack?: string };

const data = workerData as SegmentWorkerData;
const flag = new Int32Array(data.cancelFlag);
const post = (m: SegmentWorkerMessage) => parentPort!.postMessage(m);
const conn = openDatabase(data.dbFile, { migrate: false });
let lastPost = 0;
try {
  const metrics = evaluateSegmentPlan(conn, data.plan, {
    progress: (done, total) => {
      const now = Date.now();
      if (now - lastPost >= 50 || done === total) {
        lastPost = now;
        post({ type: 'progress', done, total });
      }
    },
    cancelled: () => Atomics.load(flag, 0) === 1,
  });
  post({ type: 'done', metrics });
} catch (err) {
  if (err instanceof EvaluationCancelled) post({ type: 'cancelled' });
  else post({ type: 'error', message: err instanceof Error ? err.message : String(err), stack: (err as Error)?.stack });
} finally {
  conn.close();
}
