/**
 * Gives memory back to the system once a burst of connections has closed and the server is idle.
 *
 * A thousand subscribers leave V8's old space fragmented when they go: pages that held their
 * sockets, parsers and queues keep a few long-lived objects each (compiled code, caches), so the
 * space stays committed at twice what it holds, and the young generation stays at the size their
 * traffic grew it to. V8's own collections do not give that back: a regular full GC evacuates
 * only pages that are mostly empty, and its memory reducer, in the `subs` bench, mostly did not
 * run or did not move enough (RSS 1.0–1.3 × its baseline 45 s after the subscribers left).
 *
 * Node 20 (V8 11.3) offers no memory-reducing collection to JavaScript: `gc()`'s options bag
 * knows only `minor` and `async` there (no `flavor: 'last-resort'`), there is no memory pressure
 * call, and a heap snapshot's collection costs seconds and hundreds of MiB for the snapshot
 * itself. So a release is V8's `gc()` (exposed at the first release if the process was not
 * started with --expose-gc) run with V8's `--compact-on-every-full-gc` set for its duration,
 * then a young-generation collection (see Collector.young).
 *
 * The compaction stops the main thread while it marks the heap and moves every live old-space
 * object (0.11–0.34 s in the bench on a loaded 2-core machine, over the 50 ms a serving turn may take),
 * so it runs only when nothing is asking: no request in flight, none started or ended, no
 * connection opened or closed and the event loop under LOOP_BUSY busy, for `quietMs`.
 */
import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
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

/** The two collections a release runs, on V8's `gc`. */
interface Collector {
  /** One full collection that evacuates every old-space page. */
  compact(): void;
  /**
   * One young-generation collection. V8 shrinks the young generation back to its minimum after a
   * collection only when little was allocated since the previous one: run after the compaction
   * and a further quiet period, this one sees next to nothing allocated (the compaction, run at
   * the first quiet moment, still counts the bytes of the burst's last seconds).
   */
  young(): void;
}

function v8Collector(): Collector {
  let gc: ((options?: { type: 'minor' }) => void) | undefined;
  const getGc = () => {
    gc ??= (globalThis as { gc?: typeof gc }).gc ?? exposeGc();
    return gc;
  };
  // Left as it is when the process was started with the flag (it then compacts every full GC).
  const keepFlag = process.execArgv.includes('--compact-on-every-full-gc');
  return {
    compact() {
      const collect = getGc();
      v8.setFlagsFromString('--compact-on-every-full-gc');
      try {
        collect();
      } finally {
        if (!keepFlag) v8.setFlagsFromString('--no-compact-on-every-full-gc');
      }
    },
    young() {
      getGc()({ type: 'minor' });
    },
  };
}

/** V8's `gc` from a context made while the flag is set; later contexts (vm, workers' own) do not get it. */
function exposeGc(): (options?: { type: 'minor' }) => void {
  v8.setFlagsFromString('--expose-gc');
  try {
    return vm.runInNewContext('gc');
  } finally {
    if (!process.execArgv.includes('--expose-gc')) v8.setFlagsFromString('--no-expose-gc');
  }
}

/**
 * Watches `httpServer`'s connections and requests and runs a release each time the rule holds:
 * the compaction, then the young collection once the server has stayed idle for `quietMs` more.
 * `streams` are the open SSE responses (requests that never end by themselves).
 */
export function watchMemoryRelease(deps: {
  httpServer: Server;
  streams: ReadonlySet<ServerResponse>;
  quietMs: number;
  log: Logger;
  /** Told each step that ran, with its pause in seconds. */
  released: (step: 'compact' | 'young', seconds: number) => void;
}): { stop(): void } {
  const { httpServer, streams, log } = deps;
  const rule: ReleaseRule = { ...DEFAULT_RELEASE_RULE, quietMs: deps.quietMs };
  const collector = v8Collector();
  let open = 0;
  let peak = 0;
  let requests = 0;
  let lastBusy = performance.now();
  /** When the last compaction ran, while its young collection is still to come. */
  let compactedAt: number | undefined;
  const busy = () => {
    lastBusy = performance.now();
  };
  const onConnection = (socket: Socket) => {
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

  /** Runs one step and returns its pause in seconds; the pause is not the server's own work. */
  const timed = (step: 'compact' | 'young', run: () => void) => {
    const started = performance.now();
    run();
    const seconds = (performance.now() - started) / 1000;
    loop = performance.eventLoopUtilization();
    deps.released(step, seconds);
    return seconds;
  };

  let loop = performance.eventLoopUtilization();
  const check = () => {
    const now = performance.eventLoopUtilization();
    if (performance.eventLoopUtilization(now, loop).utilization > LOOP_BUSY) busy();
    loop = now;
    const state = { peak, open, inFlight: requests - streams.size, quietForMs: performance.now() - lastBusy };
    if (
      compactedAt !== undefined &&
      state.inFlight === 0 &&
      state.quietForMs >= rule.quietMs &&
      performance.now() - compactedAt >= rule.quietMs
    ) {
      compactedAt = undefined;
      const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
      const seconds = timed('young', () => collector.young());
      const after = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
      log.info(
        { pauseMs: Math.round(seconds * 1000), youngCommittedMiB: [young, after].map(mib) },
        'collected the young generation after the compaction',
      );
      return;
    }
    if (!shouldRelease(state, rule)) return;
    const heapBefore = v8.getHeapStatistics().total_heap_size;
    const seconds = timed('compact', () => collector.compact());
    peak = open;
    compactedAt = performance.now();
    log.info(
      {
        closed: state.peak - state.open,
        open,
        pauseMs: Math.round(seconds * 1000),
        heapCommittedMiB: [heapBefore, v8.getHeapStatistics().total_heap_size].map(mib),
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

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
