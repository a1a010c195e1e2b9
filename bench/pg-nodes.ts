/**
 * Serving nodes on PostgreSQL for the benches that measure the API through several of them
 * (`stream --backend postgres`): a seeded SQLite store copied into a database with the product's
 * own `segql migrate --from-sqlite`, then N `segql serve` processes on that database and one
 * Redis (README "Running several nodes"), each in its own process with its own log.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { ROOT, segqlNodeArgs } from './lib.js';
import { type BenchServer, cpuSeconds, spawnBenchServer } from './server-process.js';

/** The local Redis the tests use; SEGQL_BENCH_REDIS_URL names another. */
export const LOCAL_REDIS = 'redis://127.0.0.1:6379';

/**
 * `segql migrate --from-sqlite <file>` into the (empty) database at `url`, as an operator moves
 * a store over; its log goes to `<dataDir>/migrate.log`. Returns the wall time.
 */
export async function copyStoreToPostgres(file: string, url: string, dataDir: string): Promise<number> {
  const logFile = join(dataDir, 'migrate.log');
  const log = openSync(logFile, 'a');
  const started = performance.now();
  const child = spawn(process.execPath, segqlNodeArgs('migrate', '--from-sqlite', file), {
    cwd: ROOT,
    env: { ...process.env, SEGQL_DATABASE_URL: url, SEGQL_DATA_DIR: dataDir, SEGQL_LOG_LEVEL: 'info' },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`segql migrate --from-sqlite exited ${code}:\n${readFileSync(logFile, 'utf8')}`);
  return performance.now() - started;
}

export interface PgNodesInput {
  dataDir: string;
  url: string;
  redisUrl: string;
  /** SEGQL_REDIS_PREFIX: unique per run, so runs sharing a Redis do not hear each other. */
  redisPrefix: string;
  nodes: number;
  env?: Record<string, string>;
  nodeArgs?: string[];
}

/** `segql serve` × N on one database and Redis, started together (they migrate under a lock) and all ready. */
export async function spawnPgNodes(input: PgNodesInput): Promise<BenchServer[]> {
  const started = await Promise.allSettled(
    Array.from({ length: input.nodes }, (_, i) =>
      spawnBenchServer(input.dataDir, {
        env: {
          ...input.env,
          SEGQL_DATABASE_URL: input.url,
          SEGQL_REDIS_URL: input.redisUrl,
          SEGQL_REDIS_PREFIX: input.redisPrefix,
        },
        nodeArgs: input.nodeArgs,
        logName: `node-${i + 1}.log`,
      }),
    ),
  );
  const servers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(servers.map((s) => s.stop()));
    throw failed.reason;
  }
  return servers;
}

/**
 * Resolves once Redis has a subscriber on `channel`. A node subscribes to a topic's channel
 * when its first local subscriber arrives, and Redis keeps nothing for a channel nobody listens
 * to: what another node publishes before then is lost to this subscriber, by design, and the
 * bench would count it as a lost change.
 */
export async function waitForRedisSubscriber(redisUrl: string, channel: string, timeoutMs = 10_000): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [, count] = (await redis.pubsub('NUMSUB', channel)) as [string, number];
      if (Number(count) > 0) return;
      if (Date.now() > deadline) throw new Error(`no Redis subscriber on ${channel} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    redis.disconnect();
  }
}

/**
 * CPU seconds each PostgreSQL backend connected to `database` has used so far, by pid (from
 * /proc: only for a server on this machine, NaN otherwise). The nodes have the database do work a
 * SQLite server does in its own process, so a cost per event that leaves it out flatters them.
 */
export async function databaseCpu(client: pg.Client, database: string): Promise<Map<number, number>> {
  const { rows } = await client.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [database],
  );
  return new Map(rows.map(({ pid }) => [pid, cpuSeconds(pid)]));
}

/**
 * The database's CPU seconds between two readings: per backend, from its first reading (or its
 * start) to the last. A backend that exited in between takes its share with it, which the
 * nodes' pools make rare: their clients stay open through a run.
 */
export function databaseCpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, seconds] of after) total += seconds - (before.get(pid) ?? 0);
  return total;
}
