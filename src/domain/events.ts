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
  /**
   * Sends payloads published together (a commit's membership changes) to the other nodes as one
   * message, so their subscribers take them together too; never throws or waits (a failure is
   * the transport's to log).
   */
  publish(topic: string, payloads: readonly unknown[]): void;
  /** Delivers the topic's payloads from other nodes, as they were published together, until the returned function is called. */
  listen(topic: string, deliver: (payloads: readonly unknown[]) => void): () => void;
  /** Resolves when the transport answers a round trip, rejects naming why not. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface EventBusOptions {
  /** Payloads each subscriber may have waiting; past that the oldest are dropped. */
  queueSize: number;
  /** How long deliveries may run in one turn (DELIVERY_SLICE_MS). */
  sliceMs?: number;
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
 * thousand subscribers: the subs bench). The sockets' writes get a slice of their own in the same
 * turn (src/server/graphql-ws.ts), and a collection may fall in either: a few ms each keeps the
 * turn well under the 50 ms the bench allows.
 */
const DELIVERY_SLICE_MS = 4;

export class EventBus {
  /** Per topic, each local subscriber's listener: it takes a commit's payloads at once. */
  private readonly listeners = new Map<string, Set<(payloads: readonly unknown[]) => void>>();
  private readonly queueSize: number;
  private readonly onDropped: (count: number) => void;
  readonly transport: EventTransport | undefined;
  /** Per topic with local subscribers: stops the transport's delivery of it. */
  private readonly remote = new Map<string, () => void>();
  private readonly sliceMs: number;
  /** When the bus's current delivery turn began; undefined outside one. */
  private sliceStarted: number | undefined;
  /** Subscribers waiting for their next delivery, in the order they asked. */
  private readonly waiting: (() => void)[] = [];
  private turnScheduled = false;

  constructor(options: Partial<EventBusOptions> = {}) {
    this.queueSize = Math.max(1, options.queueSize ?? DEFAULT_SUBSCRIPTION_QUEUE_SIZE);
    this.sliceMs = options.sliceMs ?? DELIVERY_SLICE_MS;
    this.onDropped = options.onDropped ?? (() => {});
    this.transport = options.transport;
  }

  publish(topic: string, payload: unknown): void {
    this.publishAll(topic, [payload]);
  }

  /**
   * Publishes to this process's subscribers only: for what every node learns by itself (a job
   * row's change, which PostgreSQL announces to every serving process), where the transport
   * would hand each other node a second copy of what it already publishes.
   */
  publishLocal(topic: string, payload: unknown): void {
    this.deliver(topic, [payload]);
  }

  /**
   * Publishes several payloads of one topic in order (a commit's membership changes): each local
   * subscriber takes them in one call, so a burst fanned out to a thousand subscribers costs a
   * thousand calls, not a thousand per payload. Subscribers' queues keep `payloads` itself: it
   * must not change afterwards.
   */
  publishAll(topic: string, payloads: readonly unknown[]): void {
    if (payloads.length === 0) return;
    this.deliver(topic, payloads);
    this.transport?.publish(topic, payloads);
  }

  private deliver(topic: string, payloads: readonly unknown[]): void {
    // The publisher's turn is its own: what this wakes is delivered in a turn of the bus's.
    this.sliceStarted = undefined;
    const set = this.listeners.get(topic);
    if (!set) return;
    for (const listener of [...set]) listener(payloads);
  }

  /** Stops listening to the other nodes and closes the transport. */
  async close(): Promise<void> {
    for (const stop of this.remote.values()) stop();
    this.remote.clear();
    await this.transport?.close();
  }

  /**
   * undefined when a subscriber may take its next payload now: within the slice of the bus's
   * latest delivery turn (setImmediate), which a publish ends. Else a promise resolved when its
   * place in line comes, in a coming turn. A publisher's turn (an ingest's request, a job's progress)
   * so never also carries the start of its fan-out. Inside a turn only the subscriber let go
   * last is running, and it goes on with its own queue while the slice lasts: its messages then
   * leave in one write (graphql-ws.ts coalesceSends), where one each per turn made a write each.
   */
  private turn(): Promise<void> | undefined {
    if (this.sliceStarted !== undefined && performance.now() - this.sliceStarted <= this.sliceMs) return undefined;
    const place = new Promise<void>((resolve) => this.waiting.push(resolve));
    this.scheduleTurn();
    return place;
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    setImmediate(() => {
      this.turnScheduled = false;
      this.sliceStarted = performance.now();
      queueMicrotask(this.releaseNext);
    });
  }

  /**
   * Lets the first waiting subscriber take its payload, and the next one once that delivery has
   * run: a subscriber's delivery (execution, serialisation, the socket's send) is a chain of
   * microtasks, and a tick queued from a microtask runs only when the microtask queue is empty.
   * Resolving every waiter at once would start all their chains before the first had run, so
   * that a thousand subscribers passed the slice's check before any of them had cost anything.
   */
  private readonly releaseNext = (): void => {
    if (this.waiting.length === 0) return;
    if (this.sliceStarted === undefined || performance.now() - this.sliceStarted > this.sliceMs) {
      this.scheduleTurn();
      return;
    }
    this.waiting.shift()!();
    queueMicrotask(() => process.nextTick(this.releaseNext));
  };

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
    return this.attach(topic, signal, (queue) => queue.takeOne() as Delivery<T>);
  }

  /**
   * As `subscribe`, but each delivery is what one `publishAll` published (a commit's membership
   * changes), in order: the same array for every subscriber that lost none of it, so they can
   * share what is made of it. The queue holds `queueSize` payloads, not commits; an overflow
   * drops the oldest payloads, even part of a commit (the rest arrives as a shorter one), and
   * `lagged` counts the payloads dropped just before the delivered ones. The newest commit is
   * never cut: a commit larger than the queue reaches a subscriber that keeps up whole.
   */
  subscribeCommits<T>(
    topic: string,
    signal?: AbortSignal,
  ): AsyncIterableIterator<Delivery<readonly T[]>> & { close(): void } {
    return this.attach(topic, signal, (queue) => queue.takeCommit() as Delivery<readonly T[]>);
  }

  private attach<D>(
    topic: string,
    signal: AbortSignal | undefined,
    take: (queue: CommitQueue) => D,
  ): AsyncIterableIterator<D> & { close(): void } {
    const queue = new CommitQueue(this.queueSize);
    let wake: (() => void) | undefined;
    let closed = false;
    const listener = (payloads: readonly unknown[]) => {
      const dropped = queue.push(payloads);
      if (dropped > 0) this.onDropped(dropped);
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
          this.transport.listen(topic, (payloads) => this.deliver(topic, payloads)),
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
      // What it held is nobody's now.
      queue.clear();
      wake?.();
    };
    signal?.addEventListener('abort', close, { once: true });
    const iterator = {
      close,
      next: async (): Promise<IteratorResult<D>> => {
        while (queue.size === 0 && !closed) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
        const place = this.turn();
        if (place !== undefined) await place;
        if (queue.size === 0) return { value: undefined, done: true };
        return { value: take(queue), done: false };
      },
      async return(): Promise<IteratorResult<D>> {
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

/**
 * One subscriber's waiting payloads, bounded in payloads. It holds the commits as they were
 * published (the publisher's arrays, shared by every subscriber and never copied), so a thousand
 * subscribers queueing a burst allocate one slot each per commit; dropping or taking the oldest
 * payloads only moves `offset` into the oldest commit.
 */
class CommitQueue {
  private readonly commits: (readonly unknown[])[] = [];
  /** How many of the oldest commit's payloads are gone (taken or dropped). */
  private offset = 0;
  /** Payloads waiting. */
  size = 0;
  /** Payloads dropped just before the oldest waiting one, not yet reported. */
  private lost = 0;

  constructor(private readonly limit: number) {}

  /**
   * Queues a commit; returns how many of the oldest payloads it pushed out. The newest commit is
   * kept whole even when it alone holds more than the limit: its array is the publisher's, shared
   * by every subscriber, so keeping it costs no memory, and a subscriber that keeps up must not
   * lose part of a large commit. What the limit bounds is what waits before it.
   */
  push(payloads: readonly unknown[]): number {
    this.commits.push(payloads);
    this.size += payloads.length;
    const excess = Math.min(this.size - this.limit, this.size - payloads.length);
    if (excess <= 0) return 0;
    this.skip(excess);
    this.lost += excess;
    return excess;
  }

  /** The oldest waiting payload, with the count lost just before it; the queue must not be empty. */
  takeOne(): Delivery<unknown> {
    const payload = this.commits[0]![this.offset];
    this.skip(1);
    return { payload, lagged: this.reported() };
  }

  /** What is left of the oldest commit; the queue must not be empty. */
  takeCommit(): Delivery<readonly unknown[]> {
    const head = this.commits.shift()!;
    const payloads = this.offset === 0 ? head : head.slice(this.offset);
    this.offset = 0;
    this.size -= payloads.length;
    return { payload: payloads, lagged: this.reported() };
  }

  clear(): void {
    this.commits.length = 0;
    this.offset = 0;
    this.size = 0;
    this.lost = 0;
  }

  private reported(): number {
    const lagged = this.lost;
    this.lost = 0;
    return lagged;
  }

  /** Removes the `n` oldest waiting payloads (n <= size). */
  private skip(n: number): void {
    this.size -= n;
    while (n > 0) {
      const rest = this.commits[0]!.length - this.offset;
      if (rest > n) {
        this.offset += n;
        return;
      }
      this.commits.shift();
      this.offset = 0;
      n -= rest;
    }
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

/**
 * A subscription's deliveries as a subscription field yields them: `map` gives the value to
 * yield, or undefined to pass over a delivery. A plain iterator rather than an async generator
 * around the subscription (fewer promises per event for each of a thousand subscribers), and
 * `return()` closes the subscription at once, as `endWith` does.
 */
export function mapDeliveries<T, U>(
  subscription: AsyncIterableIterator<Delivery<T>> & { close(): void },
  map: (delivery: Delivery<T>) => U | undefined,
): AsyncIterableIterator<U> {
  const iterator: AsyncIterableIterator<U> = {
    async next() {
      for (;;) {
        const step = await subscription.next();
        if (step.done) return { value: undefined, done: true };
        const value = map(step.value);
        if (value !== undefined) return { value, done: false };
      }
    },
    async return() {
      subscription.close();
      return { value: undefined, done: true };
    },
    async throw(err: unknown) {
      subscription.close();
      throw err;
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
