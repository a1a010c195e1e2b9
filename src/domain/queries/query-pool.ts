import type { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { PqlError } from '../../pql/index.js';
import { DomainError } from '../errors.js';
import { startTypeScriptWorker } from '../jobs/worker-thread.js';
import type { QueryArgs, QueryMessage, QueryName, QueryReply, WireError } from './query-worker.js';

const workerModule = new URL('./query-worker.ts', import.meta.url).href;

/** How long a worker past its deadline may take to notice it before its thread is replaced. */
const STOP_GRACE_MS = 1_000;

const queryTimeout = (budgetMs: number) =>
  new DomainError(
    'QUERY_TIMEOUT',
    `The evaluation ran past its budget of ${budgetMs} ms (SEGQL_QUERY_TIMEOUT_MS) and was stopped; narrow the expression or evaluate it in a segment job`,
    { budgetMs },
  );

function fromWire(error: WireError, budgetMs: number): Error {
  switch (error.kind) {
    case 'timeout':
      return queryTimeout(budgetMs);
    case 'domain':
      return new DomainError(error.code, error.message, error.extensions);
    case 'pql':
      return new PqlError(error.code, error.message, error.source, error.loc, error.expected);
    case 'internal': {
      const err = new Error(error.message) as Error & { code?: string };
      if (error.stack) err.stack = error.stack;
      if (error.code) err.code = error.code;
      return err;
    }
  }
}

interface Task {
  message: Omit<QueryMessage, 'deadline'>;
  resolve(result: unknown): void;
  reject(err: Error): void;
  /** Answered already (by the budget timer, which does not wait for the worker). */
  settled: boolean;
}

interface Slot {
  worker: Worker | undefined;
  ready: boolean;
  task: Task | undefined;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Worker threads for interactive reads, each with its own read-only connection (to the SQLite
 * file, or a client of its own to the PostgreSQL a postgres:// URL names), so ad-hoc
 * evaluation never holds the event loop. Each query gets `budgetMs` from the moment a worker
 * takes it: past that the caller gets QUERY_TIMEOUT at once; the worker stops itself at its
 * next deadline check, and a worker that has not within a grace period (a long JS evaluation,
 * a statement between checks) is terminated and replaced.
 */
export class QueryPool {
  private readonly slots: Slot[];
  private readonly queue: Task[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    /** The SQLite file, or a postgres:// URL. */
    private readonly database: string,
    size: number,
    private readonly budgetMs: number,
    private readonly log: Logger,
  ) {
    this.slots = Array.from({ length: size }, () => ({
      worker: undefined,
      ready: false,
      task: undefined,
      timer: undefined,
    }));
  }

  run<Q extends QueryName, R>(query: Q, args: QueryArgs[Q]): Promise<R> {
    if (this.closed) return Promise.reject(new Error('the query pool is closed'));
    return new Promise<R>((resolve, reject) => {
      this.queue.push({
        message: { id: this.nextId++, query, args },
        resolve: resolve as (r: unknown) => void,
        reject,
        settled: false,
      });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const task of this.queue.splice(0)) task.reject(new Error('the server is shutting down'));
    await Promise.all(this.slots.map((slot) => this.retire(slot, new Error('the server is shutting down'))));
  }

  private dispatch(): void {
    if (this.closed) return;
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.worker && slot.ready && !slot.task) this.assign(slot, this.queue.shift()!);
    }
    // Still waiting: start threads for them (a thread takes ~0.5 s to load, which no budget pays for).
    let starting = this.slots.filter((s) => s.worker && !s.ready).length;
    for (const slot of this.slots) {
      if (starting >= this.queue.length) return;
      if (!slot.worker) {
        this.start(slot);
        starting++;
      }
    }
  }

  private start(slot: Slot): void {
    const worker = startTypeScriptWorker(workerModule, { database: this.database });
    worker.unref();
    slot.worker = worker;
    slot.ready = false;
    worker.on('message', (reply: QueryReply) => {
      if (slot.worker !== worker) return;
      if (reply.type === 'ready') {
        slot.ready = true;
        return this.dispatch();
      }
      const task = slot.task;
      if (!task || task.message.id !== reply.id) return;
      this.release(slot);
      if (!task.settled) {
        task.settled = true;
        if (reply.type === 'done') task.resolve(reply.result);
        else task.reject(fromWire(reply.error, this.budgetMs));
      }
      this.dispatch();
    });
    const lost = (err: Error) => {
      if (slot.worker !== worker) return;
      this.log.error({ err }, 'query worker stopped');
      const task = slot.task;
      this.release(slot);
      slot.worker = undefined;
      slot.ready = false;
      if (task && !task.settled) {
        task.settled = true;
        task.reject(err);
      }
      this.dispatch();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`query worker stopped (exit code ${code})`)));
  }

  private assign(slot: Slot, task: Task): void {
    slot.task = task;
    const deadline = Date.now() + this.budgetMs;
    slot.timer = setTimeout(() => {
      if (!task.settled) {
        task.settled = true;
        task.reject(queryTimeout(this.budgetMs));
      }
      slot.timer = setTimeout(() => {
        if (slot.task !== task) return;
        this.log.warn({ query: task.message.query }, 'query worker missed its deadline; replacing it');
        void this.retire(slot);
        this.dispatch();
      }, STOP_GRACE_MS);
    }, this.budgetMs);
    slot.worker!.postMessage({ ...task.message, deadline } satisfies QueryMessage);
  }

  private release(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = undefined;
    slot.task = undefined;
  }

  /** Stops a slot's thread (its task, if any, is answered with `err` unless it was already). */
  private async retire(slot: Slot, err?: Error): Promise<void> {
    const { worker, task } = slot;
    this.release(slot);
    slot.worker = undefined;
    slot.ready = false;
    if (task && !task.settled && err) {
      task.settled = true;
      task.reject(err);
    }
    await worker?.terminate();
  }
}
