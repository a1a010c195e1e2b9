/**
 * Gives memory back to the system once a burst of connections has closed and the server is idle.
 *
 * A thousand subscribers leave V8's old space fragmented when they go: pages that held their
 * sockets, parsers and queues keep a few long-lived objects each (compiled code, caches), so the
 * space stays committed at twice what it holds. V8's own collections do not move those objects:
 * a regular full GC only evacuates pages that are mostly empty, and its memory reducer moves a
 * few MiB per run when it runs at all (the `subs` bench: RSS 1.1–1.3 × its baseline 45 s after
 * the subscribers left). One full collection with every page compacted gives the pages back.
 *
 * Node 20 (V8 11.3) offers no memory-reducing collection to JavaScript: `gc()`'s options bag
 * knows only `minor` and `async` there (no `flavor: 'last-resort'`), there is no memory pressure
 * call, and a heap snapshot's collection costs seconds and hundreds of MiB for the snapshot
 * itself. So the collection is V8's `gc()` (exposed at the first release if the process was not
 * started with --expose-gc) run with V8's `--compact-on-every-full-gc` set for its duration.
 *
 * It stops the main thread for as long as the marking and the moving of every live old-space
 * object take (tens to a couple of hundred ms), so it runs only when nothing is asking: no
 * request in flight, none started or ended, no connection opened or closed and the event loop
 * under LOOP_BUSY busy, for `quietMs`.
 */
import type { Server, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from 'pino';

/** When a collection is worth its pause. */
export interface ReleaseRule {
  /** Connections that must have closed since the most open at once. */
  minClosed: number;
  /** ...and the share of that most they must be. */
  minShare: number;
  /** How long the server must have been idle. */
  quietMs: number;
}

/** What the server looks like at one check. */
export interface ConnectionState {
  /** The most connections open at once since the last collection (or the start). */
  peak: number;
  open: number;
  /** Requests being answered, long-lived SSE streams left out. */
  inFlight: number;
  /** Since the last request, connection or busy event-loop second. */
  quietForMs: number;
}

export const DEFAULT_RELEASE_RULE: Omit<ReleaseRule, 'quietMs'> = { minClosed: 100, minShare: 0.5 };

/** Whether a compacting collection should run now. */
export function shouldRelease(state: ConnectionState, rule: ReleaseRule): boolean {
  const closed = state.peak - state.open;
  return (
    closed >= rule.minClosed &&
    closed >= rule.minShare * state.peak &&
    state.inFlight === 0 &&
    state.quietForMs >= rule.quietMs
  );
}

/** A share of a check interval the event loop may be busy and still count as idle (timers, sweeps). */
const LOOP_BUSY = 0.1;

/** One full collection that evacuates every old-space page; returns nothing, throws nothing. */
export function compactingCollection(): () => void {
  let gc: (() => void) | undefined;
  // Left as it is when the process was started with the flag (it then compacts every full GC).
  const keepFlag = process.execArgv.includes('--compact-on-every-full-gc');
  return () => {
    gc ??= (globalThis as { gc?: () => void }).gc ?? exposeGc();
    v8.setFlagsFromString('--compact-on-every-full-gc');
    try {
      gc();
    } finally {
      if (!keepFlag) v8.setFlagsFromString('--no-compact-on-every-full-gc');
    }
  };
}

/** V8's `gc` from a context made while the flag is set; later contexts (vm, workers' own) do not get it. */
function exposeGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  try {
    return vm.runInNewContext('gc') as () => void;
  } finally {
    if (!process.execArgv.includes('--expose-gc')) v8.setFlagsFromString('--no-expose-gc');
  }
}

/**
 * Watches `httpServer`'s connections and requests and runs `collect` once each time the rule
 * holds; `streams` are the open SSE responses (requests that never end by themselves).
 */
export function watchMemoryRelease(deps: {
  httpServer: Server;
  streams: ReadonlySet<ServerResponse>;
  quietMs: number;
  log: Logger;
  /** Told each collection's pause, in seconds. */
  released: (seconds: number) => void;
  collect?: () => void;
  rule?: Omit<ReleaseRule, 'quietMs'>;
}): { stop(): void } {
  const { httpServer, streams, log } = deps;
  const rule: ReleaseRule = { ...DEFAULT_RELEASE_RULE, ...deps.rule, quietMs: deps.quietMs };
  const collect = deps.collect ?? compactingCollection();
  let open = 0;
  let peak = 0;
  let requests = 0;
  let lastBusy = performance.now();
  const busy = () => {
    lastBusy = performance.now();
  };
  const onConnection = (socket: import('node:net').Socket) => {
    open++;
    peak = Math.max(peak, open);
    busy();
    socket.once('close', () => {
      open--;
      busy();
    });
  };
  const onRequest = (_req: unknown, res: ServerResponse) => {
    requests++;
    busy();
    res.once('close', () => {
      requests--;
      busy();
    });
  };
  httpServer.on('connection', onConnection);
  httpServer.on('request', onRequest);

  let loop = performance.eventLoopUtilization();
  const check = () => {
    const now = performance.eventLoopUtilization();
    if (performance.eventLoopUtilization(now, loop).utilization > LOOP_BUSY) busy();
    loop = now;
    const state = { peak, open, inFlight: requests - streams.size, quietForMs: performance.now() - lastBusy };
    if (!shouldRelease(state, rule)) return;
    const heapBefore = v8.getHeapStatistics().total_heap_size;
    const started = performance.now();
    collect();
    const seconds = (performance.now() - started) / 1000;
    peak = open;
    // The pause itself would count as a busy second at the next check; it is not a request's.
    loop = performance.eventLoopUtilization();
    deps.released(seconds);
    log.info(
      {
        closed: state.peak - state.open,
        open,
        pauseMs: Math.round(seconds * 1000),
        heapCommittedMiB: [heapBefore, v8.getHeapStatistics().total_heap_size].map((b) => Math.round(b / 2 ** 20)),
      },
      'compacted the heap after connections closed',
    );
  };
  const timer = setInterval(check, Math.min(1_000, Math.max(50, rule.quietMs / 4)));
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      httpServer.off('connection', onConnection);
      httpServer.off('request', onRequest);
    },
  };
}
