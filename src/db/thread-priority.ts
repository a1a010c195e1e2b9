/**
 * Background threads (job workers, WAL checkpoints, export file sinks) run at a lower scheduling
 * priority than the main thread. Their work is throughput; the main thread's event loop answers
 * requests and feeds subscribers, and on a small machine a background thread holding a core can
 * leave it runnable but waiting for a CPU, which the loop sees as a stall (the `subs` bench's
 * longest stalls were mostly that). At a nice value of 10 the kernel gives the main thread about
 * nine times their share of a contended core, and them all of an idle one.
 *
 * On Linux a thread's nice value is its own (setpriority on "process" 0 is the calling thread);
 * elsewhere it would lower the whole server's, so there threads keep the process's priority.
 */
import { setPriority } from 'node:os';

export const BACKGROUND_THREAD_NICENESS = 10;

/** Lowers the calling thread's priority; call it first thing in a background thread. */
export function lowerThreadPriority(): void {
  if (process.platform !== 'linux') return;
  try {
    setPriority(BACKGROUND_THREAD_NICENESS);
  } catch {
    // A sandbox that forbids it leaves the thread at the process's priority.
  }
}

/** `lowerThreadPriority` as CommonJS source, for threads started from a string (`eval: true`). */
export const LOWER_THREAD_PRIORITY_SOURCE = `if (process.platform === 'linux') {
  try {
    require('node:os').setPriority(${BACKGROUND_THREAD_NICENESS});
  } catch {}
}`;
