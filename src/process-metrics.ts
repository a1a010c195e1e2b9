/**
 * prom-client's default process metrics, with the ones that walk every open descriptor or handle
 * made cheap: with two thousand WebSocket subscribers, reading /proc/self/fd on the main thread
 * and listing the active handles and resources twice each cost a scrape milliseconds of
 * event-loop time, and the `subs` bench scrapes four times a second. The names, labels and
 * meanings stay prom-client's.
 */
import { readdir } from 'node:fs/promises';
import { collectDefaultMetrics, Gauge, type Registry } from 'prom-client';

/** How long one listing of the active handles and resources serves the scrapes that follow. */
export const HANDLES_REFRESH_MS = 10_000;

const WALKERS = [
  'process_open_fds',
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
];

interface Listing {
  at: number;
  handles: Map<string, number>;
  handleCount: number;
  resources: Map<string, number>;
  resourceCount: number;
}

function count<T>(items: readonly T[], key: (item: T) => string | undefined): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) {
    const k = key(item);
    if (k !== undefined) counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

function list(): Listing {
  const handles = (process as unknown as { _getActiveHandles(): object[] })._getActiveHandles();
  const resources = process.getActiveResourcesInfo();
  return {
    at: performance.now(),
    handles: count(handles, (h) => h?.constructor?.name),
    handleCount: handles.length,
    resources: count(resources, (r) => r),
    resourceCount: resources.length,
  };
}

/** Registers the default metrics in `registry` under `prefix`, the descriptor and handle walkers made cheap. */
export function collectProcessMetrics(registry: Registry, prefix: string, refreshMs = HANDLES_REFRESH_MS): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of WALKERS) registry.removeSingleMetric(prefix + name);
  const registers = [registry];

  if (process.platform === 'linux') {
    new Gauge({
      name: `${prefix}process_open_fds`,
      help: 'Number of open file descriptors (listed off the main thread at each scrape).',
      registers,
      async collect() {
        try {
          // The listing's own descriptor is open while it reads: not one of the process's.
          this.set((await readdir('/proc/self/fd')).length - 1);
        } catch {
          // Left at its previous value: /proc may be hidden in a sandbox.
        }
      },
    });
  }

  let last: Listing | undefined;
  const listing = () => {
    if (!last || performance.now() - last.at >= refreshMs) last = list();
    return last;
  };
  const byType = (gauge: Gauge<'type'>, counts: Map<string, number>) => {
    gauge.reset();
    for (const [type, n] of counts) gauge.set({ type }, n);
  };
  const every = `listed at most every ${refreshMs / 1000} s`;
  new Gauge({
    name: `${prefix}nodejs_active_handles`,
    help: `Number of active libuv handles grouped by handle type. Every handle type is C++ class name (${every}).`,
    labelNames: ['type'] as const,
    registers,
    collect() {
      byType(this, listing().handles);
    },
  });
  new Gauge({
    name: `${prefix}nodejs_active_handles_total`,
    help: `Total number of active handles (${every}).`,
    registers,
    collect() {
      this.set(listing().handleCount);
    },
  });
  new Gauge({
    name: `${prefix}nodejs_active_resources`,
    help: `Number of active resources that are currently keeping the event loop alive, grouped by async resource type (${every}).`,
    labelNames: ['type'] as const,
    registers,
    collect() {
      byType(this, listing().resources);
    },
  });
  new Gauge({
    name: `${prefix}nodejs_active_resources_total`,
    help: `Total number of active resources (${every}).`,
    registers,
    collect() {
      this.set(listing().resourceCount);
    },
  });
}
