/**
 * Starts SegQL: the domain's services (createApp on a SQLite file, or createPgApp on
 * PostgreSQL), then one HTTP server with /graphql (HTTP, GraphiQL, SSE) and graphql-ws on the
 * same path, /healthz, /readyz and /metrics. Each piece is built in src/server/ and handed what
 * it needs; this file only wires them and owns shutdown.
 */
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { type Config, DEFAULT_LIMITS, databaseFile, type Limits } from './config.js';
import { type Connection, openDatabase } from './db/index.js';
// A type only: pg itself is loaded when a database URL is given (openServed).
import type { PgConnection } from './db/pg/index.js';
import type { Store } from './db/store.js';
import { installWalCoalescing } from './db/wal-coalesce.js';
import { type App, closeApp, createApp } from './domain/app.js';
import type { EventTransport } from './domain/events.js';
import { DEFAULT_SANDBOX, ensureSandbox } from './domain/sandboxes.js';
import { createMetrics, type Metrics } from './metrics.js';
import { type Access, createAccess } from './server/access.js';
import { createDownloads } from './server/downloads.js';
import { attachGraphqlWs } from './server/graphql-ws.js';
import { databaseHealth } from './server/health.js';
import { watchMemoryRelease } from './server/memory-release.js';
import { createReadiness } from './server/readiness.js';
import { createRequestHandler } from './server/routes.js';
import { createSegqlYoga } from './server/yoga.js';

interface ServerOptions {
  port?: number;
  host?: string;
  dataDir: string;
  limits?: Partial<Limits>;
  log?: Logger;
  /** An already open connection (the CLI seeds through it before serving). */
  conn?: Connection;
  /** A bearer token that may read /metrics when keys are required (default SEGQL_METRICS_TOKEN). */
  metricsToken?: string;
  /** Open the data directory's database without `PRAGMA quick_check` (ignored with `conn`). */
  skipIntegrityCheck?: boolean;
  /** Share subscription events with the other nodes through this Redis (SEGQL_REDIS_URL). */
  redisUrl?: string;
  /** The start of every Redis channel name (SEGQL_REDIS_PREFIX, default `segql:`). */
  redisPrefix?: string;
  /**
   * Serve from this PostgreSQL (SEGQL_DATABASE_URL) instead of the data directory's SQLite file;
   * pending migrations are applied first (under a lock: nodes may start together).
   */
  databaseUrl?: string;
  /** On PostgreSQL: the cluster node's settings, or `runJobs: false` to leave jobs to other nodes. */
  node?: { leaseMs?: number; rangeProfiles?: number; rangeSlots?: number; pollMs?: number; name?: string };
  runJobs?: boolean;
}

export interface RunningServer {
  url: string;
  wsUrl: string;
  port: number;
  app: App;
  /** The SQLite connection when serving from a file (tests and benches read it directly); else undefined. */
  sqlite: Connection | undefined;
  metrics: Metrics;
  close(): Promise<void>;
}

/** The database a server runs on, and how to close it if the server opened it. */
interface Served {
  conn: Store;
  /** Whichever of the two it is. */
  sqlite: Connection | undefined;
  pg: { store: PgConnection; url: string } | undefined;
  close(): Promise<void>;
}

async function openServed(options: ServerOptions): Promise<Served> {
  if (options.databaseUrl) {
    // Loaded only here: a SQLite server never pays for pg and Drizzle's pg dialect.
    const { migratePg, openPgDatabase } = await import('./db/pg/index.js');
    const store = openPgDatabase(options.databaseUrl);
    try {
      await migratePg(store);
    } catch (err) {
      await store.close();
      throw err;
    }
    return { conn: store, sqlite: undefined, pg: { store, url: options.databaseUrl }, close: () => store.close() };
  }
  const sqlite =
    options.conn ?? openDatabase(databaseFile(options.dataDir), { integrityCheck: !options.skipIntegrityCheck });
  return {
    conn: sqlite,
    sqlite,
    pg: undefined,
    close: async () => {
      if (!options.conn) sqlite.close();
    },
  };
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const log = options.log ?? pino({ level: 'silent' });
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
  const served = await openServed(options);
  const { conn, sqlite } = served;
  await ensureSandbox(conn, DEFAULT_SANDBOX);
  const host = options.host ?? '127.0.0.1';
  let access: Access;
  try {
    access = await createAccess({
      conn,
      dataDir: options.dataDir,
      host,
      limits,
      log,
      metricsToken: options.metricsToken ?? process.env.SEGQL_METRICS_TOKEN ?? '',
    });
  } catch (err) {
    await served.close();
    throw err;
  }

  const metrics = createMetrics(conn);
  // ioredis is loaded only when configured: a single node never pays for it.
  const transport: EventTransport | undefined = options.redisUrl
    ? (await import('./domain/redis-events.js')).redisTransport({
        url: options.redisUrl,
        prefix: options.redisPrefix ?? 'segql:',
        log: log.child({ component: 'events' }),
      })
    : undefined;
  const common = {
    transport,
    limits,
    log,
    dataDir: options.dataDir,
    ingestCounter: { add: (kind, outcome, n) => metrics.ingested.inc({ kind, outcome }, n) },
    droppedEvents: (n: number) => metrics.droppedEvents.inc(n),
  } satisfies Partial<Parameters<typeof createApp>[0]>;
  const app = served.pg
    ? await (await import('./domain/pg-app.js')).createPgApp({
        ...common,
        store: served.pg.store,
        url: served.pg.url,
        node: options.node,
        runJobs: options.runJobs,
      })
    : await createApp({ ...common, conn: sqlite! });
  const health = databaseHealth(conn, log, () => {
    app.halt().catch((err) => log.error({ err }, 'stopping ingestion and jobs after database damage failed'));
  });
  const yoga = createSegqlYoga({ app, access, health, metrics });
  const { handle, streams } = createRequestHandler({
    yoga,
    access,
    readiness: createReadiness({ health, transport }),
    metrics,
    limits,
    log,
    downloads: createDownloads({ conn, dataDir: options.dataDir, access }),
  });
  const httpServer = createHttpServer(handle);
  const ws = attachGraphqlWs({ httpServer, yoga, access, maxPayload: limits.maxBodyBytes, log });
  const memoryRelease =
    limits.memoryReleaseQuietMs > 0
      ? watchMemoryRelease({
          httpServer,
          streams,
          quietMs: limits.memoryReleaseQuietMs,
          log: log.child({ component: 'memory' }),
          released: metrics.memoryReleased,
        })
      : undefined;

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port ?? 0, host, () => resolve());
  });
  const address = httpServer.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shown}:${address.port}/graphql`;
  log.info({ url }, 'SegQL listening');
  if (served.sqlite) {
    const wal = installWalCoalescing();
    if (wal.on) log.info('SQLite log writes coalesced per commit (docs/storage.md "WAL writes")');
    else log.info({ why: wal.why }, 'SQLite log written through the plain VFS');
  }

  let closing: Promise<void> | undefined;
  /**
   * Stops accepting, ends subscription streams, lets in-flight requests finish (up to the grace
   * period, then cuts them), stops the services and closes the database.
   */
  const close = () => {
    closing ??= (async () => {
      memoryRelease?.stop();
      const closed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
      httpServer.closeIdleConnections();
      for (const res of streams) res.end();
      // Ended streams leave keep-alive sockets behind; close those too as they go idle.
      const idle = setInterval(() => httpServer.closeIdleConnections(), 50);
      await ws.close();
      const timer = setTimeout(() => httpServer.closeAllConnections(), limits.shutdownGraceMs);
      await closed;
      clearTimeout(timer);
      clearInterval(idle);
      access.stop();
      yoga.stop();
      await closeApp(app);
      await served.close();
      log.info('SegQL stopped');
    })();
    return closing;
  };
  return { url, wsUrl: url.replace(/^http/, 'ws'), port: address.port, app, sqlite, metrics, close };
}

export type { Config };
