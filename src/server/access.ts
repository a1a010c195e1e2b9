/**
 * Who may ask: the key ring (open or keyed, decided once at start), rate limits, and the rule
 * that turns a request's headers into a principal and a sandbox. Every transport (HTTP, SSE,
 * graphql-ws) and /metrics go through here.
 */
import { timingSafeEqual } from 'node:crypto';
import { GraphQLError } from 'graphql';
import type { Logger } from 'pino';
import type { ServerLimits } from '../config.js';
import type { Store } from '../db/store.js';
import { assertSandboxAllowed, KeyRing, keyStampFile, type Principal, RateLimiter } from '../domain/api-keys.js';
import { DomainError } from '../domain/errors.js';
import { DEFAULT_SANDBOX, findSandbox, type Sandbox } from '../domain/sandboxes.js';

/** 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export interface Access {
  keys: KeyRing;
  /** The principal and sandbox of a request, from a header reader; a GraphQLError with the code otherwise. */
  resolve(
    header: (name: string) => string | undefined,
    sandboxFallback?: string,
  ): Promise<{ principal: Principal; sandbox: Sandbox }>;
  /** Why /metrics is refused to this `authorization`, or undefined when it may read them. */
  metricsRefusal(authorization: string | undefined): Promise<{ status: number; error: object } | undefined>;
  stop(): void;
}

export async function createAccess(options: {
  conn: Store;
  dataDir: string;
  host: string;
  limits: ServerLimits;
  log: Logger;
  metricsToken: string;
}): Promise<Access> {
  const { conn, host, log, metricsToken } = options;
  const keys = new KeyRing(conn, keyStampFile(options.dataDir), log);
  const rateLimiter = new RateLimiter(options.limits.rateLimitPerSecond);
  // Decided once: a server that starts keyed stays keyed, whatever is revoked later.
  if (!(await keys.decideOpen(isLoopback(host)))) {
    if (!(await keys.everMade())) {
      throw new Error(
        `Refusing to serve on ${host} without API keys: make one with "segql keys create", or bind to a loopback address`,
      );
    }
  } else {
    log.warn({ host }, 'no API keys: serving open on a loopback address (make one with "segql keys create")');
  }
  const stopWatching = keys.watch();

  return {
    keys,
    async resolve(header, sandboxFallback) {
      const name = header('x-sandbox-name') ?? sandboxFallback ?? DEFAULT_SANDBOX;
      try {
        const principal = await keys.authenticate(header('authorization'));
        rateLimiter.take(principal);
        const sandbox = await findSandbox(conn, name);
        // A key bound to some sandboxes learns nothing about others: an unknown name is as forbidden.
        assertSandboxAllowed(principal, sandbox ?? { id: -1, name });
        if (!sandbox) throw new DomainError('NOT_FOUND', `Sandbox "${name}" does not exist`, { id: name });
        return { principal, sandbox };
      } catch (err) {
        if (err instanceof DomainError) {
          throw new GraphQLError(err.message, { extensions: { ...err.extensions, code: err.code } });
        }
        throw err;
      }
    },
    async metricsRefusal(authorization) {
      if (!(await keys.required())) return undefined;
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
      if (metricsToken !== '' && bearer !== undefined && safeEqual(bearer, metricsToken)) return undefined;
      try {
        const principal = await keys.authenticate(authorization);
        if (principal.scopes.has('admin')) return undefined;
        return {
          status: 403,
          error: {
            message: '/metrics needs an admin API key or SEGQL_METRICS_TOKEN',
            extensions: { code: 'FORBIDDEN' },
          },
        };
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        return { status: 401, error: { message: err.message, extensions: { code: err.code } } };
      }
    },
    stop: stopWatching,
  };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
