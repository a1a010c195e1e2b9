import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInMemoryAPQStore, useAPQ } from '@graphql-yoga/plugin-apq';
import { useDeferStream } from '@graphql-yoga/plugin-defer-stream';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { GraphQLError, type ValidationRule } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, finalAsyncIterator, isAsyncIterable, type Plugin } from 'graphql-yoga';
import pino, { type Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { type Config, DEFAULT_LIMITS, databaseFile, type Limits } from './config.js';
import { type Connection, openDatabase } from './db/index.js';
import { assertSandboxAllowed, KeyRing, keyStampFile, type Principal, RateLimiter } from './domain/api-keys.js';
import type { App } from './domain/app.js';
import { DomainError } from './domain/errors.js';
import { EventBus } from './domain/events.js';
import { JobRunner } from './domain/jobs/job-runner.js';
import { WorkerLanes } from './domain/jobs/worker-thread.js';
import { previewJobHandler } from './domain/previews/previews.js';
import { DEFAULT_SANDBOX, ensureSandbox, findSandbox, type Sandbox } from './domain/sandboxes.js';
import { segmentJobHandler } from './domain/segment-jobs/segment-job.js';
import { startStreaming } from './domain/streaming.js';
import { scopePlugin } from './graphql/auth.js';
import { type Context, createLoaders } from './graphql/context.js';
import { errorMappingPlugins } from './graphql/errors.js';
import { schema } from './graphql/index.js';
import { maxAliasesRule, maxDepthRule } from './graphql/limits.js';
import { activeSubscriptions, createMetrics, type Metrics } from './metrics.js';

export interface ServerOptions {
  port?: number;
  host?: string;
  dataDir: string;
  limits?: Partial<Limits>;
  log?: Logger;
  /** An already open connection (the CLI seeds through it before serving). */
  conn?: Connection;
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
  const conn = options.conn ?? openDatabase(databaseFile(options.dataDir));
  ensureSandbox(conn, DEFAULT_SANDBOX);
  const keys = new KeyRing(conn, keyStampFile(options.dataDir));
  const rateLimiter = new RateLimiter(limits.rateLimitPerSecond);
  const host = options.host ?? '127.0.0.1';
  if (!keys.required()) {
    if (!isLoopback(host)) {
      if (!options.conn) conn.close();
      throw new Error(
        `Refusing to serve on ${host} without API keys: make one with "segql keys create", or bind to a loopback address`,
      );
    }
    log.warn({ host }, 'no API keys: serving open on a loopback address (make one with "segql keys create")');
  }

  const app = { conn, limits, bus: new EventBus(), log, dataDir: options.dataDir, ingestHooks: {} } as App;
  app.workers = new WorkerLanes();
  app.jobs = new JobRunner(app);
  app.jobs.register(segmentJobHandler);
  app.jobs.register(previewJobHandler);
  app.jobs.start();
  const streaming = startStreaming(app, limits.streamingSweepMs);
  const metrics = createMetrics(app);
  const yoga = createYoga<
    ServerContextExtras & { req?: IncomingMessage; connectionParams?: Record<string, unknown> },
    Context
  >({
    schema,
    graphqlEndpoint: '/graphql',
    logging: log.child({ component: 'yoga' }),
    maskedErrors: false,
    landingPage: false,
    // Apollo's BatchHttpLink and urql send arrays; each operation is validated and costed on its own.
    batching: { limit: limits.maxBatchOperations },
    graphiql: { title: 'SegQL', subscriptionsProtocol: 'WS' },
    renderGraphiQL: (opts) => {
      graphiqlPage ??= renderGraphiQL(opts);
      return graphiqlPage;
    },
    plugins: [
      ...errorMappingPlugins(log),
      scopePlugin(),
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
    context: ({ request, connectionParams, req }) => {
      const headers = request?.headers;
      const requestId = headers?.get('x-request-id') ?? randomUUID();
      const name =
        headers?.get('x-sandbox-name') ??
        (connectionParams?.['x-sandbox-name'] as string | undefined) ??
        (connectionParams?.sandbox as string | undefined) ??
        DEFAULT_SANDBOX;
      let principal: Principal;
      let sandbox: Sandbox | undefined;
      try {
        principal = keys.authenticate(
          headers?.get('authorization') ?? (connectionParams?.authorization as string | undefined),
        );
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
        conn.sqlite.prepare('SELECT 1').get();
        return json(res, 200, { status: 'ok' });
      }
      if (path === '/metrics') {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        return res.end(await metrics.registry.metrics());
      }
      const length = Number(req.headers['content-length'] ?? 0);
      if (length > limits.maxBodyBytes) {
        req.resume();
        return json(res, 413, {
          errors: [
            {
              message: `Request body of ${length} bytes exceeds the limit of ${limits.maxBodyBytes} bytes`,
              extensions: { code: 'BAD_USER_INPUT', limit: limits.maxBodyBytes, actual: length },
            },
          ],
        });
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

  const wsServer = new WebSocketServer({ server: httpServer, path: yoga.graphqlEndpoint });
  const wsCleanup = useServer(
    {
      execute: (args: any) => args.rootValue.execute(args),
      subscribe: (args: any) => args.rootValue.subscribe(args),
      // Without a valid key (when keys are required) the socket is closed at once (4403 Forbidden).
      onConnect: (ctx) => {
        try {
          keys.authenticate(ctx.connectionParams?.authorization as string | undefined);
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
        await app.jobs.stop();
        await app.workers.close();
        if (!options.conn) conn.close();
        log.info('SegQL stopped');
      })();
      return closing;
    },
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

export type { Config };
