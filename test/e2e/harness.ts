import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Limits } from '../../src/config.js';
import { type RunningServer, startServer } from '../../src/server.js';

export interface TestServer extends RunningServer {
  dataDir: string;
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

/** Starts the real server on a random port with a fresh data directory. */
export async function startTestServer(
  options: { limits?: Partial<Limits>; redisUrl?: string; redisPrefix?: string } = {},
): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'segql-test-'));
  const server = await startServer({
    port: 0,
    dataDir,
    limits: options.limits,
    redisUrl: options.redisUrl,
    redisPrefix: options.redisPrefix,
  });
  return {
    ...server,
    dataDir,
    gql: (query, variables, headers) => gql(server.url, query, variables, headers),
    async stop() {
      await server.close();
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
