import type { Clock } from '../../../src/domain/schedules/clock.js';

/**
 * A clock moved by hand: `advance` fires each timer at its own instant, in order, so no test
 * sleeps. What a timer starts is asynchronous (the scheduler's tick is a unit of work): each one
 * is let finish before the next is looked for, so the timers it sets are seen.
 */
export class ManualClock implements Clock {
  private timers: { at: number; fn: () => void }[] = [];

  constructor(private current: number) {}

  now(): number {
    return this.current;
  }

  at(at: number, fn: () => void): () => void {
    const timer = { at, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Moves to `to`, firing every timer due on the way (and those they set) at its instant. */
  async advanceTo(to: number): Promise<void> {
    for (;;) {
      const due = this.timers.filter((t) => t.at <= to).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.current = Math.max(this.current, due.at);
      due.fn();
      await settled();
    }
    this.current = Math.max(this.current, to);
  }

  advance(ms: number): Promise<void> {
    return this.advanceTo(this.current + ms);
  }

  /** Timers waiting (a scheduler keeps one per ACTIVE schedule). */
  get pending(): number {
    return this.timers.length;
  }
}

/** Once the promises a timer started (a tick's unit, all on this thread) have run their course. */
function settled(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
