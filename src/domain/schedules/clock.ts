/**
 * Time as the scheduler sees it: the current instant and a timer at an instant. The server uses
 * the system clock; tests pass a clock they move by hand, so a day of ticks takes no real time.
 */
export interface Clock {
  now(): number;
  /** Calls `fn` once the clock reaches `at` (ms since the epoch); returns a function that cancels it. */
  at(at: number, fn: () => void): () => void;
}

// setTimeout holds at most 2^31-1 ms (about 24.8 days); a later instant is reached in steps.
const MAX_DELAY = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  at(at, fn) {
    let handle: NodeJS.Timeout | undefined;
    let cancelled = false;
    const arm = () => {
      handle = setTimeout(check, Math.min(Math.max(0, at - Date.now()), MAX_DELAY));
      handle.unref();
    };
    // Node may fire a millisecond early by Date.now(); checking again keeps "at or after" exact.
    const check = () => {
      if (cancelled) return;
      if (Date.now() >= at) fn();
      else arm();
    };
    arm();
    return () => {
      cancelled = true;
      if (handle) clearTimeout(handle);
    };
  },
};
