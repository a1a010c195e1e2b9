/**
 * The worker-thread side of CPU- and I/O-heavy job work (segment evaluation, previews): a
 * long-lived thread with its own SQLite connection that runs one task at a time, so the main
 * thread keeps answering queries and subscriptions, and no job pays for starting a thread.
 */
import { parentPort } from 'node:worker_threads';
import { type Connection, openDatabase } from '../../db/index.js';
import { runPreviewTask } from '../previews/preview-sampling.js';
import { runSegmentTask } from '../segment-jobs/segment-evaluation.js';
import { TaskCancelled, type TaskHooks } from './task.js';

export type TaskName = 'segment' | 'preview';

export interface TaskMessage {
  id: number;
  task: TaskName;
  dbFile: string;
  data: unknown;
  /** Int32Array over a SharedArrayBuffer; [0] becomes 1 on cancel. */
  cancelFlag: SharedArrayBuffer;
}

export type TaskReply =
  | { id: number; type: 'progress'; payload: unknown }
  | { id: number; type: 'done'; result: unknown }
  | { id: number; type: 'cancelled' }
  | { id: number; type: 'error'; message: string };

const tasks: Record<TaskName, (conn: Connection, data: never, hooks: TaskHooks) => unknown> = {
  segment: runSegmentTask,
  preview: runPreviewTask,
};

const connections = new Map<string, Connection>();

parentPort?.on('message', (message: TaskMessage) => {
  const post = (reply: TaskReply) => parentPort!.postMessage(reply);
  const flag = new Int32Array(message.cancelFlag);
  try {
    let conn = connections.get(message.dbFile);
    if (!conn) {
      conn = openDatabase(message.dbFile, { migrate: false });
      connections.set(message.dbFile, conn);
    }
    const result = tasks[message.task](conn, message.data as never, {
      progress: (payload) => post({ id: message.id, type: 'progress', payload }),
      cancelled: () => Atomics.load(flag, 0) === 1,
    });
    post({ id: message.id, type: 'done', result });
  } catch (err) {
    if (err instanceof TaskCancelled) post({ id: message.id, type: 'cancelled' });
    else post({ id: message.id, type: 'error', message: err instanceof Error ? err.message : String(err) });
  }
});
