/**
 * Publish/subscribe for the topics subscriptions watch (job progress, membership changes,
 * search hits): in-process, and through a transport to the other nodes when one is configured
 * (redis-events.ts, SEGQL_REDIS_URL). A subscription attaches its listener when it is created, not on the
 * first pull, so nothing published after `subscribe()` returns is lost (yoga's lazy pubsub
 * trap, docs/dependencies.md gotcha 4) — unless the subscriber falls behind by more than its
 * queue holds: publishing never waits for a subscriber, so a slow one cannot slow ingestion.
 */

/** One published payload as a subscriber receives it. */
export interface Delivery<T> {
  payload: T;
  /**
   * How many payloads of this topic were dropped for this subscriber just before this one,
   * because its queue was full (it read more slowly than they were published); 0 normally.
   */
  lagged: number;
}

/**
 * How payloads travel between nodes. A node's own payloads reach its own subscribers in process
 * (at once, in order, never lost after `subscribe()` returns), so a transport must not hand a
 * node back what that node published.
 */
export interface EventTransport {
  /** Sends a payload to the other nodes; never throws or waits (a failure is the transport's to log). */
  publish(topic: string, payload: unknown): void;
  /** Delivers the topic's payloads from other nodes until the returned function is called. */
  listen(topic: string, deliver: (payload: unknown) => void): () => void;
  /** Resolves when the transport answers a round trip, rejects naming why not. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface EventBusOptions {
  /** Payloads each subscriber may have waiting; past that the oldest are dropped. */
  queueSize: number;
  /** Told how many payloads were dropped, for /metrics. */
  onDropped?: (count: number) => void;
  /** The other nodes' events, and ours to them; absent: this process only. */
  transport?: EventTransport;
}

/** What a bus holds per subscriber by default (ServerLimits.subscriptionQueueSize). */
export const DEFAULT_SUBSCRIPTION_QUEUE_SIZE = 1_000;

/**
 * How long deliveries may run in one event-loop turn before they wait for the next. Sending an
 * event to a socket that can take it completes on process.nextTick, so without this a burst
 * fanned out to many subscribers runs to its end before any request is read (seconds with a
 * thousand subscribers: the subs bench).
 */
const DELIVERY_SLICE_MS = 10;

export class EventBus {
  private readonly listeners = new Map<string, Set<(payload: unknown) => void>>();
  private readonly queueSize: number;
  private readonly onDropped: (count: number) => void;
  readonly transport: EventTransport | undefined;
  /** Per topic with local subscribers: stops the transport's delivery of it. */
  private readonly remote = new Map<string, () => void>();
  /** When this loop turn's deliveries began; undefined until a delivery in this turn. */
  private sliceStarted: number | undefined;

  constructor(options: Partial<EventBusOptions> = {}) {
    this.queueSize = Math.max(1, options.queueSize ?? DEFAULT_SUBSCRIPTION_QUEUE_SIZE);
    this.onDropped = options.onDropped ?? (() => {});
    this.transport = options.transport;
  }

  publish(topic: string, payload: unknown): void {
    this.deliver(topic, payload);
    this.transport?.publish(topic, payload);
  }

  private deliver(topic: string, payload: unknown): void {
    const set = this.listeners.get(topic);
    if (!set) return;
    for (const listener of [...set]) listener(payload);
  }

  /** Stops listening to the other nodes and closes the transport. */
  async close(): Promise<void> {
    for (const stop of this.remote.values()) stop();
    this.remote.clear();
    await this.transport?.close();
  }

  /** Resolves at once while this turn's deliveries are within their slice, else in the next turn. */
  private async takeTurn(): Promise<void> {
    const now = performance.now();
    if (this.sliceStarted === undefined) {
      this.sliceStarted = now;
      setImmediate(() => {
        this.sliceStarted = undefined;
      });
      return;
    }
    if (now - this.sliceStarted <= DELIVERY_SLICE_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    // The first to wake in the new turn opens its slice.
    return this.takeTurn();
  }

  /** Number of open subscriptions over all topics (for /metrics). */
  get subscriptionCount(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  /**
   * Payloads of `topic` from now on, in order. Each subscriber has a queue of `queueSize`; when a
   * payload arrives at a full queue the oldest waiting one is dropped (a job's newest state and a
   * stream's newest changes are worth more than its oldest), and the next one delivered carries
   * the count in `lagged`.
   */
  subscribe<T>(topic: string, signal?: AbortSignal): AsyncIterableIterator<Delivery<T>> & { close(): void } {
    const queue: Delivery<T>[] = [];
    const limit = this.queueSize;
    let wake: (() => void) | undefined;
    let closed = false;
    const listener = (payload: unknown) => {
      let lagged = 0;
      if (queue.length >= limit) {
        const dropped = queue.shift()!;
        lagged = dropped.lagged + 1;
        this.onDropped(1);
        // The gap is reported by the payload after it: now the oldest one waiting.
        const next = queue[0];
        if (next) {
          next.lagged += lagged;
          lagged = 0;
        }
      }
      queue.push({ payload: payload as T, lagged });
      wake?.();
    };
    let set = this.listeners.get(topic);
    if (!set) {
      set = new Set();
      this.listeners.set(topic, set);
      // One transport listener per topic, however many local subscribers share it.
      if (this.transport)
        this.remote.set(
          topic,
          this.transport.listen(topic, (p) => this.deliver(topic, p)),
        );
    }
    set.add(listener);
    const close = () => {
      if (closed) return;
      closed = true;
      const current = this.listeners.get(topic);
      current?.delete(listener);
      if (current?.size === 0) {
        this.listeners.delete(topic);
        this.remote.get(topic)?.();
        this.remote.delete(topic);
      }
      wake?.();
    };
    signal?.addEventListener('abort', close, { once: true });
    const takeTurn = () => this.takeTurn();
    const iterator = {
      close,
      async next(): Promise<IteratorResult<Delivery<T>>> {
        while (queue.length === 0 && !closed) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
        if (queue.length > 0) await takeTurn();
        if (queue.length > 0) return { value: queue.shift()!, done: false };
        return { value: undefined, done: true };
      },
      async return(): Promise<IteratorResult<Delivery<T>>> {
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

/**
 * `stream` that really ends when its consumer stops. An async generator waiting inside
 * `for await` on a subscription takes a `return()` only after its next payload, so a client
 * that left a quiet topic kept its subscription (and all it held) until something was published
 * there; here `return()` first closes `subscription`, which ends that wait at once.
 */
export function endWith<T>(stream: AsyncGenerator<T>, subscription: { close(): void }): AsyncGenerator<T> {
  const wrapped: AsyncGenerator<T> = {
    next: (...args) => stream.next(...args),
    return(value) {
      subscription.close();
      return stream.return(value);
    },
    throw(err) {
      subscription.close();
      return stream.throw(err);
    },
    [Symbol.asyncIterator]() {
      return wrapped;
    },
  };
  return wrapped;
}
