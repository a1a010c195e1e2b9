import { randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInMemoryAPQStore, useAPQ } from '@graphql-yoga/plugin-apq';
import { useDeferStream } from '@graphql-yoga/plugin-defer-stream';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { GraphQLError, getOperationAST, type ValidationRule } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, finalAsyncIterator, isAsyncIterable, type Plugin } from 'graphql-yoga';
import pino, { type Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { type Config, DEFAULT_LIMITS, databaseFile, type Limits } from './config.js';
import { type Connection, openDatabase } from './db/index.js';
import { isCorruption } from './db/integrity.js';
import { assertSandboxAllowed, KeyRing, keyStampFile, type Principal, RateLimiter } from './domain/api-keys.js';
import type { App } from './domain/app.js';
import { DomainError } from './domain/errors.js';
import { EventBus } from './domain/events.js';
import { JobRunner } from './domain/jobs/job-runner.js';
import { WorkerLanes } from './domain/jobs/worker-thread.js';
import { QueryPool } from './domain/queries/query-pool.js';
import { DEFAULT_SANDBOX, ensureSandbox, findSandbox, type Sandbox } from './domain/sandboxes.js';
import { startStreaming } from './domain/streaming.js';
import { type Context, createLoaders } from './graphql/context.js';
import { errorMappingPlugins, mapResult } from './graphql/errors.js';
import { schema } from './graphql/index.js';
import { documentLimitsPlugin, maxAliasesRule, maxDepthRule } from './graphql/limits.js';
import { endRevokedSubscriptions } from './graphql/revocation.js';
import { activeSubscriptions, createMetrics, type Metrics } from './metrics.js';
import { payloadTooLarge, readBodyWithin } from './request-body.js';

export interface ServerOptions {
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
}

export interface RunningServer {
  url: string;
  wsUrl: string;
  port: number;
  app: App;
  metrics: Metrics;
  close(): Promise<void>;
}

export type ServerContextExtras = { metrics: Metrics };

/** 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Counts open subscription streams on every transport (graphql-ws and SSE) for /metrics. */
const countSubscriptions: Plugin = {
  onSubscribe() {
    return {
      onSubscribeResult({ result, setResult }) {
        if (!isAsyncIterable(result)) return;
        activeSubscriptions.value++;
        let ended = false;
        setResult(
          finalAsyncIterator(result, () => {
            if (!ended) activeSubscriptions.value--;
            ended = true;
          }),
        );
      },
    };
  },
};

let graphiqlPage: string | undefined;

/**
 * Starts SegQL: one HTTP server with /graphql (HTTP, GraphiQL, SSE) and graphql-ws on the same
 * path, /healthz, /readyz and /metrics. `close()` stops accepting, lets in-flight requests
 * finish (up to a grace period), closes sockets and the database.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const log = options.log ?? pino({ level: 'silent' });
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
  const conn =
    options.conn ?? openDatabase(databaseFile(options.dataDir), { integrityCheck: !options.skipIntegrityCheck });
  ensureSandbox(conn, DEFAULT_SANDBOX);
  const keys = new KeyRing(conn, keyStampFile(options.dataDir), log);
  const rateLimiter = new RateLimiter(limits.rateLimitPerSecond);
  const host = options.host ?? '127.0.0.1';
  // Decided once: a server that starts keyed stays keyed, whatever is revoked later.
  if (!keys.decideOpen(isLoopback(host))) {
    if (!keys.everMade()) {
      if (!options.conn) conn.close();
      throw new Error(
        `Refusing to serve on ${host} without API keys: make one with "segql keys create", or bind to a loopback address`,
      );
    }
  } else {
    log.warn({ host }, 'no API keys: serving open on a loopback address (make one with "segql keys create")');
  }
  const stopWatchingKeys = keys.watch();
  const revocation = endRevokedSubscriptions(keys);
  const metricsToken = options.metricsToken ?? process.env.SEGQL_METRICS_TOKEN ?? '';
  /** /metrics is open only when the server is; otherwise it takes an admin key or the metrics token. */
  const metricsRefusal = (authorization: string | undefined) => {
    if (!keys.required()) return undefined;
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
    if (metricsToken !== '' && bearer !== undefined && safeEqual(bearer, metricsToken)) return undefined;
    try {
      const principal = keys.authenticate(authorization);
      if (principal.scopes.has('admin')) return undefined;
      return {
        status: 403,
        error: { message: '/metrics needs an admin API key or SEGQL_METRICS_TOKEN', extensions: { code: 'FORBIDDEN' } },
      };
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      return { status: 401, error: { message: err.message, extensions: { code: err.code } } };
    }
  };

  const app = { conn, limits, bus: new EventBus(), log, dataDir: options.dataDir, ingestHooks: {} } as App;
  app.workers = new WorkerLanes();
  // Two threads: one heavy query leaves another lane free, and this box has two cores.
  app.queries = new QueryPool(conn.sqlite.name, 2, limits.queryTimeoutMs, log.child({ component: 'queries' }));
  app.jobs = new JobRunner({ conn, bus: app.bus, log, limits, lanes: app.workers, dataDir: options.dataDir });
  app.jobs.start();
  const streaming = startStreaming(app, limits.streamingSweepMs);
  const metrics = createMetrics(app);
  // Set once a statement meets a damaged page: from then on /readyz fails and nothing writes.
  let damage: string | undefined;
  const reportDamage = (err: unknown) => {
    if (damage !== undefined || !isCorruption(err)) return;
    damage = (err as Error).message;
    log.fatal({ err }, 'the database is damaged: /readyz answers 503 and writes are refused; restore a good copy');
    streaming.stop();
    app.jobs.stop().catch((stopErr) => log.error({ err: stopErr }, 'stopping jobs after database damage failed'));
  };
  const refuseWritesWhenDamaged: Plugin = {
    onExecute({ args, setResultAndStopExecution }) {
      if (damage === undefined) return;
      if (getOperationAST(args.document, args.operationName)?.operation !== 'mutation') return;
      setResultAndStopExecution({
        errors: [
          new GraphQLError(`The database is damaged (${damage}); writes are stopped until a good copy is restored`, {
            extensions: { code: 'INTERNAL' },
          }),
        ],
      });
    },
  };
  const yoga = createYoga<
    ServerContextExtras & { req?: IncomingMessage; connectionParams?: Record<string, unknown> },
    Context
  >({
    schema,
    graphqlEndpoint: '/graphql',
    logging: log.child({ component: 'yoga' }),
    maskedErrors: false,
    landingPage: false,
    maxRequestBodySize: limits.maxBodyBytes,
    // Apollo's BatchHttpLink and urql send arrays; each operation is validated and costed on its own.
    batching: { limit: limits.maxBatchOperations },
    graphiql: { title: 'SegQL', subscriptionsProtocol: 'WS' },
    renderGraphiQL: (opts) => {
      graphiqlPage ??= renderGraphiQL(opts);
      return graphiqlPage;
    },
    plugins: [
      ...errorMappingPlugins(log, reportDamage),
      documentLimitsPlugin(),
      refuseWritesWhenDamaged,
      revocation,
      countSubscriptions,
      // Automatic persisted queries (Apollo's PersistedQueryLink): an unknown hash answers
      // PERSISTED_QUERY_NOT_FOUND, which is what makes the client resend the full query once.
      useAPQ({ store: createInMemoryAPQStore({ max: 5_000, ttl: 24 * 3_600_000 }) }),
      useDeferStream(),
      {
        onValidate({ addValidationRule }: { addValidationRule: (rule: ValidationRule) => void }) {
          addValidationRule(maxDepthRule(limits.maxDepth));
          addValidationRule(maxAliasesRule(limits.maxAliases));
        },
      } as Plugin,
    ],
    context: ({ request, connectionParams, req, params }) => {
      // HTTP headers; over WebSocket connectionParams, else the operation's extensions.headers
      // (where GraphiQL sends its Headers tab), so every transport sees the same sandbox and key.
      const operationHeaders = (params as { extensions?: { headers?: Record<string, unknown> } } | undefined)
        ?.extensions?.headers;
      const header = (name: string): string | undefined => {
        if (request) return request.headers.get(name) ?? undefined;
        const value = connectionParams?.[name] ?? operationHeaders?.[name];
        return typeof value === 'string' ? value : undefined;
      };
      const requestId = header('x-request-id') ?? randomUUID();
      const name = header('x-sandbox-name') ?? (connectionParams?.sandbox as string | undefined) ?? DEFAULT_SANDBOX;
      let principal: Principal;
      let sandbox: Sandbox | undefined;
      try {
        principal = keys.authenticate(header('authorization'));
        rateLimiter.take(principal);
        sandbox = findSandbox(conn, name);
        // A key bound to some sandboxes learns nothing about others: an unknown name is as forbidden.
        assertSandboxAllowed(principal, sandbox ?? { id: -1, name });
      } catch (err) {
        if (err instanceof DomainError) {
          throw new GraphQLError(err.message, { extensions: { ...err.extensions, code: err.code } });
        }
        throw err;
      }
      if (!sandbox) {
        throw new GraphQLError(`Sandbox "${name}" does not exist`, { extensions: { code: 'NOT_FOUND', id: name } });
      }
      return {
        principal,
        app,
        conn,
        sandbox,
        limits,
        requestId,
        log: log.child({ requestId, sandbox: name, transport: req ? 'ws' : 'http' }),
        loaders: createLoaders(conn, sandbox.id),
        signal: request?.signal,
        metrics,
      };
    },
  });

  // Subscription streams never finish on their own; shutdown ends them instead of waiting out the grace period.
  const streams = new Set<ServerResponse>();
  const httpServer = createHttpServer(async (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    const requestId = (req.headers['x-request-id'] as string | undefined) ?? randomUUID();
    req.headers['x-request-id'] = requestId;
    res.setHeader('x-request-id', requestId);
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = ['/graphql', '/healthz', '/readyz', '/metrics'].includes(path) ? path : 'other';
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.requests.inc({ route, status: String(res.statusCode) });
      metrics.duration.observe({ route }, seconds);
      log.info(
        { requestId, method: req.method, url: req.url, status: res.statusCode, ms: Math.round(seconds * 1000) },
        'request',
      );
    });
    try {
      if (path === '/healthz') return json(res, 200, { status: 'ok' });
      if (path === '/readyz') {
        try {
          conn.sqlite.prepare('SELECT 1').get();
        } catch (err) {
          reportDamage(err);
          throw err;
        }
        if (damage !== undefined) return json(res, 503, { status: 'damaged', reason: damage });
        return json(res, 200, { status: 'ok' });
      }
      if (path === '/metrics') {
        const refused = metricsRefusal(req.headers.authorization);
        if (refused) return json(res, refused.status, { errors: [refused.error] });
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        return res.end(await metrics.registry.metrics());
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        const read = await readBodyWithin(req, limits.maxBodyBytes);
        if (!read.ok) {
          // The rest is never read: close the connection once the answer is out instead of draining it.
          res.setHeader('connection', 'close');
          res.on('finish', () => req.destroy());
          return json(res, 413, payloadTooLarge(limits.maxBodyBytes, read));
        }
        // whatwg-node takes an already read body from `req.body` (as it does behind body-parser).
        (req as IncomingMessage & { body?: Buffer }).body = read.body;
      }
      if (req.headers.accept?.includes('text/event-stream')) {
        streams.add(res);
        res.on('close', () => streams.delete(res));
      }
      await yoga(req, res);
    } catch (err) {
      log.error({ err, requestId }, 'request failed');
      if (!res.headersSent)
        json(res, 500, { errors: [{ message: 'Internal error', extensions: { code: 'INTERNAL', requestId } }] });
      else res.end();
    }
  });

  const wsServer = new WebSocketServer({
    server: httpServer,
    path: yoga.graphqlEndpoint,
    maxPayload: limits.maxBodyBytes,
  });
  const wsCleanup = useServer(
    {
      execute: (args: any) => args.rootValue.execute(args),
      subscribe: (args: any) => args.rootValue.subscribe(args),
      // A subscription refused before it streams (unknown id…) is one result that no envelop
      // hook formats on this transport: give its errors their codes here, as HTTP and SSE do.
      onNext: (_ctx, _id, _payload, args, result) =>
        mapResult(result, (args.contextValue as Partial<Context>)?.requestId, log) || undefined,
      // A key sent at connection must be valid (else 4403 Forbidden at once); a connection without
      // one is accepted, and each operation is authenticated on its own (GraphiQL sends its
      // headers with every operation, not in connection_init).
      onConnect: (ctx) => {
        const authorization = ctx.connectionParams?.authorization;
        if (typeof authorization !== 'string') return true;
        try {
          keys.authenticate(authorization);
          return true;
        } catch (err) {
          if (err instanceof DomainError) return false;
          throw err;
        }
      },
      onSubscribe: async (ctx, _id, params) => {
        const {
          schema: s,
          execute,
          subscribe,
          contextFactory,
          parse,
          validate,
        } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params,
        });
        try {
          const document = parse(params.query);
          const errors = validate(s, document);
          if (errors.length > 0) return errors;
          return {
            schema: s,
            operationName: params.operationName,
            document,
            variableValues: params.variables,
            contextValue: await contextFactory(),
            rootValue: { execute, subscribe },
          };
        } catch (err) {
          if (err instanceof GraphQLError) {
            return [
              err.extensions?.code ? err : new GraphQLError(err.message, { extensions: { code: 'BAD_USER_INPUT' } }),
            ];
          }
          throw err;
        }
      },
    },
    wsServer,
  );

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port ?? 0, host, () => resolve());
  });
  const address = httpServer.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shown}:${address.port}/graphql`;
  log.info({ url }, 'SegQL listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    port: address.port,
    app,
    metrics,
    close() {
      closing ??= (async () => {
        const graceMs = 8_000;
        const closed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        httpServer.closeIdleConnections();
        for (const res of streams) res.end();
        // Ended streams leave keep-alive sockets behind; close those too as they go idle.
        const idle = setInterval(() => httpServer.closeIdleConnections(), 50);
        await wsCleanup.dispose();
        for (const client of wsServer.clients) client.terminate();
        wsServer.close();
        const timer = setTimeout(() => httpServer.closeAllConnections(), graceMs);
        await closed;
        clearTimeout(timer);
        clearInterval(idle);
        streaming.stop();
        stopWatchingKeys();
        revocation.stop();
        await app.jobs.stop();
        await app.workers.close();
        await app.queries.close();
        if (!options.conn) conn.close();
        log.info('SegQL stopped');
      })();
      return closing;
    },
  };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

export type { Config };
