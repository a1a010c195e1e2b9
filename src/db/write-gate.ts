/**
 * One writer at a time among the threads of this process, waited for without holding the event
 * loop. SQLite has one write lock per file; a job's worker thread holds it for the whole
 * transaction that writes its results (a million memberships take seconds), and a write on the
 * main thread that meets it would spin in SQLite's busy wait, holding every request and
 * subscriber of the process (db/busy.ts). The gate sits in front of that lock: a worker takes it
 * before its long transaction (blocking its own thread, which has nothing else to do), the main
 * thread takes it around a synchronous write section and, when a worker holds it, waits with
 * `Atomics.waitAsync` while the event loop goes on.
 *
 * The main thread holds the gate only for synchronous sections, never across an `await`, so a
 * worker never waits longer than one such section, and the main thread cannot wait on a worker
 * that waits on it. A waiting worker goes before new main-thread sections, so a steady stream of
 * ingests cannot starve a job's final write. The gate is advisory: SQLite's own lock still
 * decides; a writer the gate does not cover (another process) is met by the busy timeout as
 * before, and a wait longer than `maxWaitMs` gives up on the gate and falls back to that.
 */
import { isMainThread, threadId } from 'node:worker_threads';

const HOLDER = 0;
/** Slots 1..SLOTS: the threadId of each worker waiting for the gate (0: empty). */
const SLOTS = 16;
const FREE = 0;
/** The main thread's holder id (worker threads hold with their `threadId`, which is ≥ 1). */
const MAIN = -1;

export class WriteGate {
  private readonly state: Int32Array;
  /** Sections of the main thread running inside one another (nested: already held). */
  private depth = 0;

  /** `buffer` shares the gate with other threads: pass `gate.buffer` to them. */
  constructor(
    readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(4 * (1 + SLOTS)),
    private readonly maxWaitMs = 60_000,
  ) {
    this.state = new Int32Array(buffer);
  }

  /**
   * Main thread: runs `section` once no worker holds the gate — at once, synchronously, when
   * none does (the common case), otherwise after an asynchronous wait. The gate is held for the
   * synchronous part of `section` only: a section that returns a promise must take the gate
   * again for any write it makes after an await.
   */
  run<T>(section: () => T): T | Promise<T> {
    if (!isMainThread) return this.runBlocking(section);
    if (this.depth > 0) return section();
    if (!this.tryEnter()) {
      return this.waitFree(Date.now() + this.maxWaitMs).then((free) => (free ? this.run(section) : section()));
    }
    return this.held(section);
  }

  /**
   * Worker threads: runs `section` holding the gate, blocking this thread while another holds
   * it. On the main thread (a benchmark running a task in-thread) it never waits: it runs the
   * section gated when the gate is free and ungated otherwise.
   */
  runBlocking<T>(section: () => T): T {
    if (isMainThread) return this.depth > 0 || !this.tryEnter() ? section() : this.held(section);
    // Already this thread's (a section inside its own): waiting for itself would never end.
    if (Atomics.load(this.state, HOLDER) === threadId) return section();
    const deadline = Date.now() + this.maxWaitMs;
    let held = false;
    const slot = this.takeSlot();
    try {
      for (;;) {
        const holder = Atomics.compareExchange(this.state, HOLDER, FREE, threadId);
        if (holder === FREE) {
          held = true;
          break;
        }
        const left = deadline - Date.now();
        if (left <= 0) break;
        Atomics.wait(this.state, HOLDER, holder, Math.min(left, 1_000));
      }
    } finally {
      if (slot > 0) Atomics.store(this.state, slot, FREE);
    }
    try {
      return section();
    } finally {
      if (held) this.release(threadId);
    }
  }

  /**
   * Forgets the thread `holder` (a worker's `threadId`) that has stopped: frees the gate if it
   * still held it and its waiting slot if it was waiting (a terminated thread runs no `finally`).
   */
  releaseHeldBy(holder: number): void {
    for (let slot = 1; slot <= SLOTS; slot++) Atomics.compareExchange(this.state, slot, holder, FREE);
    this.release(holder);
  }

  /** Whether a worker thread holds the gate now (for tests and metrics). */
  heldByWorker(): boolean {
    return Atomics.load(this.state, HOLDER) > 0;
  }

  /** Runs a main-thread section the gate was just taken for, and frees it after. */
  private held<T>(section: () => T): T {
    this.depth++;
    try {
      return section();
    } finally {
      this.depth--;
      this.release(MAIN);
    }
  }

  private tryEnter(): boolean {
    // A worker already waiting goes first: it waits for nothing but the current section.
    if (this.workerWaiting()) return false;
    return Atomics.compareExchange(this.state, HOLDER, FREE, MAIN) === FREE;
  }

  private workerWaiting(): boolean {
    for (let slot = 1; slot <= SLOTS; slot++) if (Atomics.load(this.state, slot) !== FREE) return true;
    return false;
  }

  /** A free waiting slot marked with this thread's id, or 0 when all are taken (it then waits without priority). */
  private takeSlot(): number {
    for (let slot = 1; slot <= SLOTS; slot++) {
      if (Atomics.compareExchange(this.state, slot, FREE, threadId) === FREE) return slot;
    }
    return 0;
  }

  private release(holder: number): void {
    if (Atomics.compareExchange(this.state, HOLDER, holder, FREE) === holder) Atomics.notify(this.state, HOLDER);
  }

  /** Resolves true once no worker holds or waits for the gate, false at `deadline` (the section then goes on ungated). */
  private async waitFree(deadline: number): Promise<boolean> {
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      const holder = Atomics.load(this.state, HOLDER);
      if (holder > 0) await Atomics.waitAsync(this.state, HOLDER, holder, Math.min(left, 1_000)).value;
      else if (this.workerWaiting()) {
        // The gate is free or a main section is ending: the waiting worker takes it within moments.
        await new Promise((resolve) => setTimeout(resolve, 1));
      } else if (holder === FREE) return true;
      else await new Promise((resolve) => setImmediate(resolve));
    }
  }
}
