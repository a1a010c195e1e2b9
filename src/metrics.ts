import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { sqlStatementsTotal } from './db/index.js';
import { statements } from './db/statement.js';
import type { Store } from './db/store.js';
import { walCoalesceStats } from './db/wal-coalesce.js';
import { streamingEvaluationsTotal } from './domain/streaming.js';
import { streamingWindowReadsTotal } from './domain/streaming-window.js';
import { collectProcessMetrics } from './process-metrics.js';

export type Metrics = ReturnType<typeof createMetrics>;

/** Prometheus metrics served on /metrics; gauges are read from the live state at scrape time. */
const q = statements('metrics', {
  jobCounts: {
    sqlite: 'SELECT kind, status, count(*) AS n FROM jobs GROUP BY kind, status',
    postgres: 'SELECT kind, status, count(*)::int AS n FROM jobs GROUP BY kind, status',
  },
});

export function createMetrics(conn: Store) {
  const registry = new Registry();
  collectProcessMetrics(registry, 'segql_process_');
  const requests = new Counter({
    name: 'segql_http_requests_total',
    help: 'HTTP requests by route and status code',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'segql_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  new Counter({
    name: 'segql_sql_statements_total',
    help: 'SQL statements executed by this process',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sqlStatementsTotal());
    },
  });
  new Counter({
    name: 'segql_streaming_evaluations_total',
    help: 'Streaming definition evaluations (one definition for one profile) run by this process',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(streamingEvaluationsTotal());
    },
  });
  new Counter({
    name: 'segql_streaming_window_reads_total',
    help: "Profiles' streaming windows served from memory (hit) or read from SQLite (miss) by this process",
    labelNames: ['result'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const { hit, miss } = streamingWindowReadsTotal();
      this.inc({ result: 'hit' }, hit);
      this.inc({ result: 'miss' }, miss);
    },
  });
  // The coalescing VFS's counts (docs/storage.md "WAL writes"): writes over frames is what each
  // frame's two system calls became. Neither series moves where the plain VFS is in use.
  new Counter({
    name: 'segql_sqlite_wal_frames_coalesced_total',
    help: 'SQLite log frames this process wrote through the coalescing VFS, a commit at a time',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(walCoalesceStats()?.frames ?? 0);
    },
  });
  new Counter({
    name: 'segql_sqlite_wal_coalesced_writes_total',
    help: 'Writes that carried those frames to the log file (SQLite alone makes two a frame)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(walCoalesceStats()?.writes ?? 0);
    },
  });
  new Gauge({
    name: 'segql_active_subscriptions',
    help: 'Open GraphQL subscriptions (graphql-ws and SSE)',
    registers: [registry],
    collect() {
      this.set(activeSubscriptions.value);
    },
  });
  new Gauge({
    name: 'segql_jobs',
    help: 'Jobs by kind and status',
    labelNames: ['kind', 'status'] as const,
    registers: [registry],
    async collect() {
      const rows = await conn.all<{ kind: string; status: string; n: number }>(q.jobCounts);
      this.reset();
      for (const r of rows) this.set({ kind: r.kind, status: r.status }, r.n);
    },
  });
  const ingested = new Counter({
    name: 'segql_ingested_records_total',
    help: 'Ingested records by kind (profile, event) and outcome (accepted, rejected, duplicate)',
    labelNames: ['kind', 'outcome'] as const,
    registers: [registry],
  });
  // prom-client's own lag gauge samples one timer per scrape; a stall between scrapes needs this.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  new Gauge({
    name: 'segql_event_loop_delay_max_seconds',
    help: 'Longest event-loop delay since the previous scrape (perf_hooks.monitorEventLoopDelay, 10 ms resolution)',
    registers: [registry],
    collect() {
      this.set(loopDelay.max / 1e9);
      loopDelay.reset();
    },
  });
  const droppedEvents = new Counter({
    name: 'segql_subscription_events_dropped_total',
    help: 'Subscription events dropped because a subscriber fell more than SEGQL_SUBSCRIPTION_QUEUE_SIZE behind',
    registers: [registry],
  });
  const responseCache = new Counter({
    name: 'segql_graphql_response_cache_total',
    help: 'GraphQL operations by what the response cache did: hit, shared (waited for a concurrent miss), miss, uncacheable',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const memoryReleases = new Counter({
    name: 'segql_memory_releases_total',
    help: 'Collections run after a burst of connections closed (src/server/memory-release.ts), by step: compact (the whole heap), young (the young generation, once idle again)',
    labelNames: ['step'] as const,
    registers: [registry],
  });
  // Both steps at 0 from the start, so a scrape shows the series before the first burst.
  for (const step of ['compact', 'young']) memoryReleases.inc({ step }, 0);
  const memoryReleasePause = new Gauge({
    name: 'segql_memory_release_last_pause_seconds',
    help: 'How long the last compaction stopped the main thread',
    registers: [registry],
  });
  return {
    registry,
    requests,
    duration,
    ingested,
    droppedEvents,
    responseCache,
    memoryReleased: (step: 'compact' | 'young', seconds: number) => {
      memoryReleases.inc({ step });
      if (step === 'compact') memoryReleasePause.set(seconds);
    },
  };
}

/** Open subscription streams, counted by the server's envelop plugin on both transports. */
export const activeSubscriptions = { value: 0 };
