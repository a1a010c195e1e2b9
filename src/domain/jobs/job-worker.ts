/**
 * The worker-thread side of CPU- and I/O-heavy job work: a long-lived thread with its own
 * SQLite connection that runs one task at a time, so the main thread keeps answering queries
 * and subscriptions, and no job pays for starting a thread. It knows no job kind: each message
 * names the module of its task, which is imported on first use.
 */
import { parentPort } from 'node:worker_threads';
import { type Connection, openDatabase } from '../../db/index.js';
import { lowerThreadPriority } from '../../db/thread-priority.js';
import { Cancelled } from './cancelled.js';
import { failureFields } from './job-failure.js';
import type { TypedJobKind } from './job-types.js';
import { type JobTask, runJobTask } from './task.js';

export interface TaskMessage {
  id: number;
  jobId: number;
  /** URL of the module whose default export is the task. */
  task: string;
  dbFile: string;
  plan: unknown;
  /** Int32Array over a SharedArrayBuffer; [0] becomes 1 on cancel. */
  cancelFlag: SharedArrayBuffer;
  /** The main connection's write gate, taken around the task's final write (db/write-gate.ts). */
  writeGate: SharedArrayBuffer;
}

export type TaskReply =
  | { id: number; type: 'progress'; payload: unknown }
  | { id: number; type: 'done'; result: unknown }
  | { id: number; type: 'cancelled' }
  | { id: number; type: 'error'; message: string; result?: unknown };

/** Tasks of every kind meet here; the kind's runner side made the plan its task expects. */
type AnyTask = JobTask<TypedJobKind, unknown>;

const tasks = new Map<string, Promise<AnyTask>>();
const connections = new Map<string, Connection>();

function taskAt(url: string): Promise<AnyTask> {
  let task = tasks.get(url);
  if (!task) {
    task = import(url).then((module: { default?: unknown }) => {
      if (typeof module.default !== 'function') throw new Error(`${url} has no default export to run as a task`);
      return module.default as AnyTask;
    });
    tasks.set(url, task);
  }
  return task;
}

async function run(message: TaskMessage, post: (reply: TaskReply) => void): Promise<void> {
  const flag = new Int32Array(message.cancelFlag);
  try {
    const task = await taskAt(message.task);
    let conn = connections.get(message.dbFile);
    if (!conn) {
      conn = openDatabase(message.dbFile, { migrate: false, writeGate: message.writeGate });
      connections.set(message.dbFile, conn);
    }
    const result = runJobTask(conn, message.jobId, task, message.plan, {
      progress: (payload) => post({ id: message.id, type: 'progress', payload }),
      cancelled: () => Atomics.load(flag, 0) === 1,
    });
    post({ id: message.id, type: 'done', result });
  } catch (err) {
    if (err instanceof Cancelled) post({ id: message.id, type: 'cancelled' });
    else {
      const { error, result } = failureFields(err);
      post({ id: message.id, type: 'error', message: error, ...(result !== undefined ? { result } : {}) });
    }
  }
}

// A job is throughput work: the main thread's event loop gets a contended core first.
if (parentPort) lowerThreadPriority();

// One task at a time: a message that arrives while a task module is still loading waits its turn.
let queue = Promise.resolve();
parentPort?.on('message', (message: TaskMessage) => {
  const post = (reply: TaskReply) => parentPort!.postMessage(reply);
  queue = queue.then(() => run(message, post));
});
