/**
 * The GraphQL handler: yoga with SegQL's plugins (error mapping, limits, revocation, persisted
 * queries, defer/stream) and the context every operation gets, whichever transport carried it.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { createInMemoryAPQStore, useAPQ } from '@graphql-yoga/plugin-apq';
import { useDeferStream } from '@graphql-yoga/plugin-defer-stream';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import type { ValidationRule } from 'graphql';
import { createYoga, isAsyncIterable, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import type { App } from '../domain/app.js';
import { type Context, createLoaders } from '../graphql/context.js';
import { errorMappingPlugins } from '../graphql/errors.js';
import { schema } from '../graphql/index.js';
import { documentLimitsPlugin, maxAliasesRule, maxDepthRule } from '../graphql/limits.js';
import { endRevokedSubscriptions } from '../graphql/revocation.js';
import { releaseScopeCache } from '../graphql/scope-cache-release.js';
import { activeSubscriptions, type Metrics } from '../metrics.js';
import type { Access } from './access.js';
import type { DatabaseHealth } from './health.js';
import { compiledExecution } from './jit.js';
import { streamedUploads } from './multipart-uploads.js';
import { responseCache } from './response-cache.js';
import { sharedSubscriptionResults } from './shared-subscription-results.js';

type ServerContextExtras = { metrics: Metrics };
type InitialContext = ServerContextExtras & { req?: IncomingMessage; connectionParams?: Record<string, unknown> };
export type SegqlYoga = YogaServerInstance<InitialContext, Context> & { stop(): void };

/** Counts open subscription streams on every transport (graphql-ws and SSE) for /metrics. */
const countSubscriptions: Plugin = {
  onSubscribe() {
    return {
      onSubscribeResult({ result, setResult }) {
        if (!isAsyncIterable(result)) return;
        activeSubscriptions.value++;
        setResult(untilEnd(result, () => activeSubscriptions.value--));
      },
    };
  },
};

/**
 * `source` calling `onEnd` once when it ends or is ended. One `then` per result with a handler
 * made once per stream (yoga's finalAsyncIterator made a closure per result, a visible share
 * of the garbage of a thousand subscribers).
 */
function untilEnd<T>(source: AsyncIterable<T>, onEnd: () => void): AsyncIterableIterator<T> {
  const inner = source[Symbol.asyncIterator]();
  let ended = false;
  const end = () => {
    if (!ended) onEnd();
    ended = true;
  };
  const onStep = (step: IteratorResult<T>) => {
    if (step.done) end();
    return step;
  };
  const iterator: AsyncIterableIterator<T> = {
    next: () => inner.next().then(onStep),
    return(value?: unknown) {
      end();
      return inner.return ? inner.return(value) : Promise.resolve({ value: undefined, done: true });
    },
    throw(err?: unknown) {
      end();
      return inner.throw ? inner.throw(err) : Promise.reject(err);
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}

let graphiqlPage: string | undefined;

export function createSegqlYoga(deps: {
  app: App;
  access: Access;
  health: DatabaseHealth;
  metrics: Metrics;
}): SegqlYoga {
  const { app, access, health, metrics } = deps;
  const { conn, limits, log } = app;
  const revocation = endRevokedSubscriptions(access.keys);
  const compiled = compiledExecution((errors) =>
    log.warn({ errors }, 'graphql-jit could not compile; using the reference executor'),
  );
  const yoga = createYoga<InitialContext, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    logging: log.child({ component: 'yoga' }),
    maskedErrors: false,
    landingPage: false,
    // The HTTP layer holds bodies to their limits (routes.ts): JSON to maxBodyBytes before yoga
    // sees them, uploads to maxUploadBytes as they stream; yoga's own check would read the body
    // a second time.
    maxRequestBodySize: false,
    // Apollo's BatchHttpLink and urql send arrays; each operation is validated and costed on its own.
    batching: { limit: limits.maxBatchOperations },
    graphiql: { title: 'SegQL', subscriptionsProtocol: 'WS' },
    renderGraphiQL: (opts) => {
      graphiqlPage ??= renderGraphiQL(opts);
      return graphiqlPage;
    },
    plugins: [
      ...errorMappingPlugins(log, health.report),
      documentLimitsPlugin(),
      releaseScopeCache(),
      health.refuseWrites,
      revocation,
      countSubscriptions,
      sharedSubscriptionResults(compiled.executeEvent),
      // Automatic persisted queries (Apollo's PersistedQueryLink): an unknown hash answers
      // PERSISTED_QUERY_NOT_FOUND, which is what makes the client resend the full query once.
      useAPQ({ store: createInMemoryAPQStore({ max: 5_000, ttl: 24 * 3_600_000 }) }),
      useDeferStream(),
      compiled,
      streamedUploads({ dataDir: app.dataDir, maxBytes: limits.maxUploadBytes, maxFieldBytes: limits.maxBodyBytes }),
      {
        onValidate({ addValidationRule }: { addValidationRule: (rule: ValidationRule) => void }) {
          addValidationRule(maxDepthRule(limits.maxDepth));
          addValidationRule(maxAliasesRule(limits.maxAliases));
        },
      } as Plugin,
      // Last: a cached answer stops execution, and every check above must have run first.
      responseCache({
        stamp: app.responseStamp ?? (() => ''),
        maxEntries: app.responseStamp ? limits.responseCacheEntries : 0,
        onOutcome: (outcome) => metrics.responseCache.inc({ outcome }),
      }),
    ],
    context: async ({ request, connectionParams, req, params }) => {
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
      const { principal, sandbox } = await access.resolve(header, connectionParams?.sandbox as string | undefined);
      return {
        principal,
        app,
        conn,
        sandbox,
        limits,
        requestId,
        log: log.child({ requestId, sandbox: sandbox.name, transport: req ? 'ws' : 'http' }),
        loaders: createLoaders(conn, sandbox.id),
        signal: request?.signal,
        metrics,
      };
    },
  });
  return Object.assign(yoga, { stop: () => revocation.stop() });
}
