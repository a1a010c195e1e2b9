import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { Limits } from '../../src/config.js';
import type { Connection } from '../../src/db/index.js';
import type { PgConnection } from '../../src/db/pg/index.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { freshPgDatabase } from '../db/pg-test-database.js';

export interface TestServer extends Omit<RunningServer, 'sqlite'> {
  dataDir: string;
  /** On PostgreSQL, the server's database (for a command run beside it); else undefined. */
  databaseUrl: string | undefined;
  /** The server's SQLite connection, for a test that reads the file directly (throws on PostgreSQL). */
  readonly sqlite: Connection;
  /**
   * Rows of a read written in SQL both databases take, with `?` parameters (a write runs and
   * gives none): a test that checks or plants stored rows runs on either backend.
   */
  rows<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** POSTs a GraphQL operation and returns the parsed response body. */
  gql<T = any>(
    query: string,
    variables?: Record<string, unknown>,
    headers?: Record<string, string>,
  ): Promise<GqlResponse<T>>;
  stop(): Promise<void>;
}

export interface GqlResponse<T> {
  status: number;
  data?: T;
  errors?: { message: string; path?: string[]; extensions?: Record<string, any> }[];
}

/**
 * The backend the e2e suite runs on: SQLite by default; `SEGQL_E2E_BACKEND=postgres` (with
 * SEGQL_TEST_DATABASE_URL) runs every server on a fresh PostgreSQL database of its own, as one
 * node of a cluster (the vitest project `e2e-postgres` sets it).
 */
export function e2eBackend(): 'sqlite' | 'postgres' {
  // Read at each call, not once at import: files of both projects may share a process (this
  // module stays loaded), and vitest sets each file's project environment before running it.
  return process.env.SEGQL_E2E_BACKEND === 'postgres' ? 'postgres' : 'sqlite';
}

/** Starts the real server on a random port with a fresh data directory (and database, on PostgreSQL). */
export async function startTestServer(
  options: { limits?: Partial<Limits>; redisUrl?: string; redisPrefix?: string } = {},
): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'segql-test-'));
  const database = e2eBackend() === 'postgres' ? await freshPgDatabase('e2e') : undefined;
  // The server opens its own pool on the URL (this one made no connection: a template copy needs none).
  let server: RunningServer;
  try {
    server = await startServer({
      port: 0,
      dataDir,
      limits: options.limits,
      // On PostgreSQL, as a cluster runs: events through Redis too when it is there, on a prefix of
      // the server's own so parallel files do not hear each other.
      redisUrl: options.redisUrl ?? (database ? process.env.SEGQL_TEST_REDIS_URL : undefined),
      redisPrefix: options.redisPrefix ?? (database ? `segql-e2e-${randomBytes(4).toString('hex')}:` : undefined),
      databaseUrl: database?.url,
      node: { pollMs: 200, leaseMs: 5_000 },
      // SEGQL_TEST_LOG=debug shows a test server's log (silent otherwise).
      ...(process.env.SEGQL_TEST_LOG ? { log: pino({ level: process.env.SEGQL_TEST_LOG }) } : {}),
    });
  } catch (err) {
    await database?.drop();
    throw err;
  }
  return {
    ...server,
    get sqlite(): Connection {
      if (!server.sqlite) throw new Error('this test reads SQLite directly; the server runs on PostgreSQL');
      return server.sqlite;
    },
    dataDir,
    databaseUrl: database?.url,
    async rows<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
      if (server.sqlite) {
        const statement = server.sqlite.sqlite.prepare(sql);
        if (statement.reader) return statement.all(...params) as T[];
        statement.run(...params);
        return [];
      }
      let n = 0;
      const text = sql.replace(/\?/g, () => `$${++n}`);
      return (await (server.app.conn as PgConnection).pool.query(text, [...params])).rows as T[];
    },
    gql: (query, variables, headers) => gql(server.url, query, variables, headers),
    async stop() {
      await server.close();
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function gql<T = any>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<GqlResponse<T>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as GqlResponse<T>;
  return { ...body, status: res.status };
}

/** Resolves once exactly `n` subscriptions are attached on `server` (earlier ones gone); throws after 10 s. */
export async function subscriptionsAttached(server: TestServer, n: number): Promise<void> {
  const until = Date.now() + 10_000;
  while (server.app.bus.subscriptionCount !== n) {
    if (Date.now() > until) throw new Error(`${server.app.bus.subscriptionCount} subscriptions attached, not ${n}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Throws with the errors when a response has any; returns data. */
export function ok<T>(res: GqlResponse<T>): T {
  if (res.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(res.errors, null, 2)}`);
  return res.data as T;
}

/** Reads a GraphQL-over-SSE response (yoga's distinct-connections mode) into its `next` payloads. */
export async function readSse(res: Response, max = Number.POSITIVE_INFINITY): Promise<any[]> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const payloads: any[] = [];
  let buffer = '';
  while (payloads.length < max) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let sep = buffer.indexOf('\n\n');
    while (sep >= 0) {
      const block = buffer.slice(0, sep);
      buffer = buffer.slice(sep + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event === 'complete') return payloads;
      if (data) payloads.push(JSON.parse(data));
      sep = buffer.indexOf('\n\n');
    }
  }
  await reader.cancel();
  return payloads;
}
