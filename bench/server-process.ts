/**
 * The real server in its own process, as `npm start` runs it, for the benches that measure it from
 * outside (a load generator in the bench process must not share the server's event loop).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT, segqlNodeArgs } from './lib.js';

export interface BenchServer {
  child: ChildProcess;
  url: string;
  wsUrl: string;
  /** Asks the server to stop (SIGTERM) and waits for it; kills it after 10 s. */
  stop(): Promise<void>;
}

/** A port free right now (the server is told it, so its log can go to a file instead of a pipe). */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * `segql serve` on `dataDir` with its database already prepared (no demo seeding); `nodeArgs` go
 * to node itself (e.g. `--cpu-prof`), `env` overrides the server's environment. Its log goes to
 * `<dataDir>/<logName>` (default `server.log`; nodes sharing a data directory each name their
 * own), a file as in a deployment: a pipe the bench drains would put the bench's reading on the
 * server's clock.
 */
export async function spawnBenchServer(
  dataDir: string,
  options: { env?: Record<string, string>; nodeArgs?: string[]; logName?: string } = {},
): Promise<BenchServer> {
  const port = await freePort();
  const logFile = join(dataDir, options.logName ?? 'server.log');
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...segqlNodeArgs('serve')], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      SEGQL_DATA_DIR: dataDir,
      SEGQL_DEMO_PROFILES: '0',
      SEGQL_LOG_LEVEL: 'info',
      ...options.env,
    },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}/graphql`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited:\n${readFileSync(logFile, 'utf8')}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not start:\n${readFileSync(logFile, 'utf8')}`);
    }
    const ready = await fetch(url.replace(/\/graphql$/, '/healthz')).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
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

/**
 * GraphQL over kept-alive node:http connections (`connections` of them, one by default), for
 * latency benches and load generators. fetch (undici) costs the bench process ~0.4 ms and a few
 * hundred KB of garbage a request: with it the client's own scavenges (10+ ms each on a busy box,
 * one every ~120 requests) were in the p99 of what it timed, and a load generator sharing the
 * server's cores took CPU the server could have used.
 */
export function keepAliveGraphql(
  url: string,
  connections = 1,
): <T>(query: string, variables?: Record<string, unknown>) => Promise<T> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const { hostname, port, pathname } = new URL(url);
  return <T>(query: string, variables?: Record<string, unknown>) =>
    new Promise<T>((resolve, reject) => {
      const body = JSON.stringify({ query, variables });
      const req = httpRequest(
        {
          agent,
          host: hostname,
          port,
          path: pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            try {
              const answer = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data?: T; errors?: unknown[] };
              if (answer.errors || !answer.data)
                throw new Error(`GraphQL request failed (${res.statusCode}): ${JSON.stringify(answer)}`);
              resolve(answer.data);
            } catch (err) {
              reject(err);
            }
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
}

/** The value of an un-labelled counter or gauge in a /metrics scrape. */
export async function scrapeMetric(graphqlUrl: string, name: string): Promise<number> {
  const text = await (await fetch(graphqlUrl.replace(/\/graphql$/, '/metrics'))).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!match) throw new Error(`/metrics has no ${name}`);
  return Number(match[1]);
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN elsewhere. */
export function cpuSeconds(pid: number | undefined): number {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/** One thread's CPU time (user + system, seconds) of process `pid` (its main thread: `tid` = `pid`); NaN off Linux. */
export function taskCpuSeconds(pid: number, tid: number): number {
  return statCpuSeconds(`/proc/${pid}/task/${tid}/stat`);
}

function statCpuSeconds(file: string): number {
  try {
    const fields = readFileSync(file, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** Each thread's CPU time (user + system, seconds) of process `pid`, by thread id; empty off Linux. */
export function threadCpuSeconds(pid: number | undefined): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const seconds = taskCpuSeconds(Number(pid), Number(tid));
    if (Number.isFinite(seconds)) out.set(Number(tid), seconds);
  }
  return out;
}

/**
 * How a process's CPU between two `threadCpuSeconds` readings split: its main thread (whose id
 * is the process id), its busiest other thread (in a SegQL server under ingest, the ingest
 * thread) and the rest (V8's helpers collecting garbage, the checkpoint thread, libuv's pool).
 */
export function threadCpuSplit(
  pid: number,
  before: Map<number, number>,
  after: Map<number, number>,
): { main: number; busiest: number; rest: number } {
  let main = 0;
  let busiest = 0;
  let total = 0;
  for (const [tid, seconds] of after) {
    const used = seconds - (before.get(tid) ?? 0);
    total += used;
    if (tid === pid) main = used;
    else busiest = Math.max(busiest, used);
  }
  return { main, busiest, rest: total - main - busiest };
}
