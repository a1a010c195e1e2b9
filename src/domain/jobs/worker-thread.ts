import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WriteGate } from '../../db/write-gate.js';
import { Cancelled } from './cancelled.js';
import { JobFailure } from './job-failure.js';
import type { JobResult } from './job-types.js';
import type { TaskMessage, TaskReply } from './job-worker.js';

const require = createRequire(import.meta.url);
// require.resolve gives the CommonJS build; the worker imports the ES module build beside it.
const tsxApi = pathToFileURL(require.resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
const workerModule = new URL('./job-worker.ts', import.meta.url).href;

/**
 * Whether this code runs compiled to JavaScript (each `.ts` module beside it became a `.js` one),
 * rather than from source through tsx.
 */
const built = import.meta.url.endsWith('.js');

/**
 * The module to load for a source module's URL (`new URL('./x.ts', import.meta.url)`): the
 * compiled `.js` beside it when this code is built and there is one, else itself (from source,
 * or a `.ts` module of no build, such as a test's, through tsx).
 */
function runnableModule(moduleUrl: string): string {
  if (!built || !moduleUrl.endsWith('.ts')) return moduleUrl;
  const compiled = `${moduleUrl.slice(0, -'.ts'.length)}.js`;
  return existsSync(new URL(compiled)) ? compiled : moduleUrl;
}

/**
 * Starts a worker thread running a TypeScript module: compiled, with no loader at all (a thread
 * loading the job worker took 0.6 s of CPU through tsx, 0.15 s built); from source, Node 20 loads
 * a worker's entry before any `--import` hook applies, so the thread first registers tsx and then
 * imports the module.
 */
export function startTypeScriptWorker(moduleUrl: string, workerData?: unknown): Worker {
  const runnable = runnableModule(moduleUrl);
  if (runnable.endsWith('.js')) return new Worker(new URL(runnable), { workerData });
  const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(moduleUrl)}); })`;
  return new Worker(code, { eval: true, workerData });
}

/** One long-lived worker thread per lane (job kind), started on first use. */
export class WorkerLanes {
  private readonly lanes = new Map<string, Worker>();
  private nextId = 1;
  /** The write gates tasks were given (one per database in practice). */
  private readonly gates = new Set<WriteGate>();
  private readonly pending = new Map<
    number,
    { onProgress: (payload: unknown) => void; resolve: (r: unknown) => void; reject: (e: Error) => void }
  >();

  private lane(name: string): Worker {
    let worker = this.lanes.get(name);
    if (worker) return worker;
    worker = startTypeScriptWorker(workerModule);
    worker.unref();
    worker.on('message', (reply: TaskReply) => {
      const task = this.pending.get(reply.id);
      if (!task) return;
      if (reply.type === 'progress') return task.onProgress(reply.payload);
      this.pending.delete(reply.id);
      if (reply.type === 'done') task.resolve(reply.result);
      else if (reply.type === 'cancelled') task.reject(new Cancelled());
      else if (reply.result !== undefined) task.reject(new JobFailure(reply.message, reply.result as JobResult));
      else task.reject(new Error(reply.message));
    });
    const { threadId } = worker;
    const fail = (err: Error) => {
      this.lanes.delete(name);
      // A thread stopped inside its final write (terminated after a cancel) must not keep the gate.
      for (const gate of this.gates) gate.releaseHeldBy(threadId);
      for (const [id, task] of this.pending) {
        this.pending.delete(id);
        task.reject(err);
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`job worker stopped (exit code ${code})`)));
    this.lanes.set(name, worker);
    return worker;
  }

  /**
   * Runs a job's task (the default export of the module at `task`) on a lane; `signal` sets the
   * task's cancel flag, which it checks between chunks. A cancelled task rejects with `Cancelled`.
   */
  run(
    lane: string,
    task: URL,
    dbFile: string,
    writeGate: WriteGate,
    job: { jobId: number; plan: unknown },
    onProgress: (payload: unknown) => void,
    signal: AbortSignal,
  ): Promise<unknown> {
    const cancelFlag = new SharedArrayBuffer(4);
    const id = this.nextId++;
    this.gates.add(writeGate);
    const onAbort = () => {
      Atomics.store(new Int32Array(cancelFlag), 0, 1);
      // A task stuck inside one long statement cannot see the flag: stop its thread after a grace period
      // (the lane starts a fresh one for the next task; SQLite rolls back what the thread left open).
      setTimeout(() => {
        if (this.pending.has(id)) void this.lanes.get(lane)?.terminate();
      }, 5000).unref();
    };
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, {
        onProgress,
        resolve: (r) => {
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
        reject: (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      const message: TaskMessage = {
        id,
        jobId: job.jobId,
        task: runnableModule(task.href),
        dbFile,
        plan: job.plan,
        cancelFlag,
        writeGate: writeGate.buffer,
      };
      this.lane(lane).postMessage(message);
    });
  }

  async close(): Promise<void> {
    const workers = [...this.lanes.values()];
    this.lanes.clear();
    // Unref'd threads would not keep the process alive until they have stopped.
    await Promise.all(
      workers.map((w) => {
        w.ref();
        return w.terminate();
      }),
    );
  }
}
