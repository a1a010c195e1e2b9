/**
 * The real server in its own process, as `npm start` runs it, for the benches that measure it from
 * outside (a load generator in the bench process must not share the server's event loop).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { ROOT } from './lib.js';

export interface BenchServer {
  child: ChildProcess;
  url: string;
  wsUrl: string;
  /** Asks the server to stop (SIGTERM) and waits for it; kills it after 10 s. */
  stop(): Promise<void>;
}

/**
 * `segql serve` on `dataDir` with its database already prepared (no demo seeding); `nodeArgs` go
 * to node itself (e.g. `--cpu-prof`), `env` overrides the server's environment.
 */
export async function spawnBenchServer(
  dataDir: string,
  options: { env?: Record<string, string>; nodeArgs?: string[] } = {},
): Promise<BenchServer> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', 'src/cli.ts', 'serve'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: '0',
      SEGQL_DATA_DIR: dataDir,
      SEGQL_DEMO_PROFILES: '0',
      SEGQL_LOG_LEVEL: 'info',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"url":"(http:[^"]+)"/.exec(output);
      if (match) {
        clearTimeout(timer);
        // Past start-up the access log is not read, only drained (a full pipe would block the server).
        child.stdout!.removeAllListeners('data');
        child.stderr!.removeAllListeners('data');
        child.stdout!.resume();
        child.stderr!.resume();
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('exit', () => {
      clearTimeout(timer);
      reject(new Error(`server exited:\n${output}`));
    });
  });
  return {
    child,
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** One GraphQL request over HTTP (fetch); throws on a transport or GraphQL error. */
export async function graphqlRequest<T>(url: string, query: string, variables?: Record<string, unknown>): Promise<T> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: T; errors?: unknown[] };
  if (body.errors || !body.data) throw new Error(`GraphQL request failed (${res.status}): ${JSON.stringify(body)}`);
  return body.data;
}

/** The value of an un-labelled counter or gauge in a /metrics scrape. */
export async function scrapeMetric(graphqlUrl: string, name: string): Promise<number> {
  const text = await (await fetch(graphqlUrl.replace(/\/graphql$/, '/metrics'))).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!match) throw new Error(`/metrics has no ${name}`);
  return Number(match[1]);
}
