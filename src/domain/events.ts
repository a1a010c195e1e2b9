/**
 * In-process publish/subscribe for the topics subscriptions watch (job progress, membership
 * changes, search hits). A subscription attaches its listener when it is created, not on the
 * first pull, so nothing published after `subscribe()` returns is lost (yoga's lazy pubsub
 * trap, docs/dependencies.md gotcha 4).
 */
export class EventBus {
  private readonly listeners = new Map<string, Set<(payload: unknown) => void>>();

  publish(topic: string, payload: unknown): void {
    const set = this.listeners.get(topic);
    if (!set) return;
    for (const listener of [...set]) listener(payload);
  }

  /** Number of open subscriptions over all topics (for /metrics). */
  get subscriptionCount(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  subscribe<T>(topic: string, signal?: AbortSignal): AsyncIterableIterator<T> & { close(): void } {
    const queue: T[] = [];
    let wake: (() => void) | undefined;
    let closed = false;
    const listener = (payload: unknown) => {
      queue.push(payload as T);
      wake?.();
    };
    let set = this.listeners.get(topic);
    if (!set) {
      set = new Set();
      this.listeners.set(topic, set);
    }
    set.add(listener);
    const close = () => {
      if (closed) return;
      closed = true;
      const current = this.listeners.get(topic);
      current?.delete(listener);
      if (current?.size === 0) this.listeners.delete(topic);
      wake?.();
    };
    signal?.addEventListener('abort', close, { once: true });
    const iterator = {
      close,
      async next(): Promise<IteratorResult<T>> {
        while (queue.length === 0 && !closed) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
        if (queue.length > 0) return { value: queue.shift() as T, done: false };
        return { value: undefined, done: true };
      },
      async return(): Promise<IteratorResult<T>> {
        close();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }
}

export const topics = {
  job: (id: number) => `job:${id}`,
  sandboxJobs: (sandboxId: number) => `jobs:${sandboxId}`,
  memberships: (sandboxId: number) => `memberships:${sandboxId}`,
  search: (sandboxId: number) => `search:${sandboxId}`,
  scheduleTicks: (sandboxId: number) => `schedule-ticks:${sandboxId}`,
};
