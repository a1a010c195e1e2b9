/**
 * `npm run bench -- stream [--profiles 10000] [--definitions 50] [--events 20000] [--batch 100] [--runs 3]
 *   [--concurrency 8] [--subscribers 0] [--subscription commit|change] [--event-ids sequential|random]
 *   [--payload-items 0] [--server-prof DIR]
 *   [--server-flags=<node/V8 flags for the server, space-separated>] [--backend sqlite|postgres [--nodes 2]]`
 *
 * `--backend postgres` (issue 21, "through two nodes"): the same seeded store is copied with
 * `segql migrate --from-sqlite` into a database made for the run on SEGQL_BENCH_DATABASE_URL's
 * server (the local one by default) and dropped after it; `--nodes` `segql serve` processes serve
 * it, sharing the local Redis (SEGQL_BENCH_REDIS_URL) under a prefix of the run's own. The
 * subscriber is on the last node and the ingests go round robin to the others (with one node,
 * both on it), so every change it hears crossed Redis. The figures are `stream-postgres`'s,
 * suffixed `.nodes-N`; the CPU is summed over the nodes, and `database-cpu-ms-per-1000-events`
 * adds the PostgreSQL backends' own (a server on this machine only), work the SQLite server does
 * in its process. The check reads the runs' writes from PostgreSQL (bench/stream-check.ts).
 *
 * Streaming segmentation end to end (docs/performance.md `stream`): the real server in its own
 * process (as `npm start` runs it) on a scratch data directory seeded beforehand with `--profiles`
 * demo profiles (10 events each) and `--definitions` streaming definitions (attribute tests, and
 * typed event counts over windows of 1 to 24 hours); a graphql-ws client subscribed to
 * `audienceMembershipChangesCommitted` (a commit's changes per message; `--subscription change`:
 * `audienceMembershipChanged`, one change per message, as before session 7); then `ingestEvents` over HTTP in batches of `--batch` events, each
 * event for a random demo profile and timestamped now (so the windowed definitions change state).
 * Event ids count up (`stream-<n>`) unless `--event-ids random` gives each 128 random bits, as a
 * producer's UUIDs: then each event lands on a random leaf of the event-id index too. The payload
 * is one field unless `--payload-items N` adds N product lines (~120 bytes of JSON each: 10 make a
 * real commerce event's kilobyte).
 * The runs go first with `--concurrency` requests in flight (a producer sending from several
 * connections, as a real one does), then one request at a time.
 *
 * - `events-per-s`: events ingested / wall time of a run, `--concurrency` requests in flight (the
 *   figure the target is judged on); `events-per-s-sequential`: the same, one at a time.
 * - `latency-p50-ms` / `latency-p99-ms` (and `-sequential`): per membership change, from the
 *   ingest's evaluation instant (`MembershipChange.at`) to the subscriber receiving it.
 * - `server-cpu-ms-per-1000-events` (and `-sequential`): the server process's CPU time (user +
 *   system, from /proc) per 1,000 events: the cost per event, which other load on the box does
 *   not inflate as it does wall time.
 * - context: `changes …` (how many changes the subscriber saw per run, and in how many messages);
 *   `wal …` (on SQLite, whether the server wrote its log a commit at a time: docs/storage.md);
 *   `threads …` (each run's CPU per event of the server's main thread, of its busiest other
 *   thread — on SQLite the ingest thread, the one writer, which bounds the events per second —
 *   and of the rest: V8's helpers, the checkpoint thread; from /proc, Linux only), then this
 *   bench's own CPU per event (the load generator shares the box's cores) and how many of the
 *   box's cores were busy while the run's requests were in flight (/proc/stat): a box near all
 *   its cores is bound by CPU, one well under them by the hand-offs between threads.
 *
 * Correctness (exit 1 with a `MISMATCH` line): every event sent is accepted and stored once; every
 * membership change written reached the subscriber or was counted to it in `lagged` (a subscriber
 * that falls more than its queue behind loses the oldest, by design: docs/api.md); and
 * afterwards each streaming definition's memberships are what the JS evaluator says over the
 * same store within the streaming semantics (docs/domain.md "Streaming and edge segmentation"):
 * a profile meets a definition at the last ingest of an event type the definition reads, so its
 * membership is the definition's value at that instant, and a definition none of a profile's
 * new events can change (attributes alone) leaves it unevaluated.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, createClient } from 'graphql-ws';
import pg from 'pg';
import WebSocket from 'ws';
import { databaseFile } from '../src/config.js';
import { openDatabase } from '../src/db/index.js';
import { openPgDatabase } from '../src/db/pg/index.js';
import { topics } from '../src/domain/events.js';
import { intArg, parseArgs, report, statsOf } from './lib.js';
import {
  copyStoreToPostgres,
  databaseCpu,
  databaseCpuBetween,
  LOCAL_REDIS,
  spawnPgNodes,
  waitForRedisSubscriber,
} from './pg-nodes.js';
import { createScratchDatabase, type ScratchDatabase } from './pg-scratch.js';
import {
  type BenchServer,
  cpuSeconds,
  keepAliveGraphql,
  scrapeMetric,
  spawnBenchServer,
  threadCpuSeconds,
  threadCpuSplit,
} from './server-process.js';
import { checkStreamStore } from './stream-check.js';
import { prng, seedStreamStore, streamEvents } from './stream-store.js';

const NAME = 'stream';
const EVENT_PREFIX = 'stream-';

interface RunSet {
  rates: number[];
  latencies: number[];
  /**
   * Server CPU (user + system) per 1,000 events, ms, summed over the nodes: what load on the box
   * does not inflate.
   */
  cpuPerThousand: number[];
  /** On PostgreSQL, its backends' CPU per 1,000 events, ms (NaN for a server elsewhere). */
  databaseCpuPerThousand: number[];
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const profiles = intArg(args, 'profiles', 10_000);
  const definitions = args.get('definitions') === '0' ? 0 : intArg(args, 'definitions', 50);
  const events = intArg(args, 'events', 20_000);
  const batch = intArg(args, 'batch', 100);
  const runs = intArg(args, 'runs', 3);
  const concurrency = intArg(args, 'concurrency', 8);
  // --subscribers 0: no listener, to see what publishing to one costs.
  const subscribe = args.get('subscribers') !== '0';
  const perChange = args.get('subscription') === 'change';
  if (!['commit', 'change', undefined].includes(args.get('subscription'))) {
    throw new Error('--subscription is commit (the default) or change');
  }
  const eventIds = args.get('event-ids') ?? 'sequential';
  const payloadItems = intArg(args, 'payload-items', 0);
  if (!['sequential', 'random'].includes(eventIds)) {
    throw new Error(`--event-ids must be sequential or random, got "${eventIds}"`);
  }
  const serverProf = args.get('server-prof');
  const serverFlags = args.get('server-flags')?.split(' ').filter(Boolean) ?? [];
  const backend = args.get('backend') ?? 'sqlite';
  if (backend !== 'sqlite' && backend !== 'postgres') throw new Error('--backend is sqlite (the default) or postgres');
  if (backend === 'sqlite' && args.has('nodes'))
    throw new Error('--nodes needs --backend postgres (SQLite has one server)');
  const nodes = backend === 'postgres' ? intArg(args, 'nodes', 2) : 1;
  // The PostgreSQL figures are named apart, as batch-postgres's are: they are not the SQLite series.
  const name = backend === 'postgres' ? `${NAME}-postgres` : NAME;
  const figure = (base: string) => (backend === 'postgres' ? `${base}.nodes-${nodes}` : base);

  const dataDir = mkdtempSync(join(tmpdir(), 'segql-stream-'));
  const sandboxId = await seedStreamStore(databaseFile(dataDir), { profiles, definitions });

  // No sweep during the runs: the check below reads memberships as the ingests left them.
  const env = { SEGQL_STREAMING_SWEEP_MS: '600000' };
  const nodeArgs = [...serverFlags, ...(serverProf ? ['--cpu-prof', `--cpu-prof-dir=${serverProf}`] : [])];
  let scratch: ScratchDatabase | undefined;
  let servers: BenchServer[] = [];
  let client: Client | undefined;
  // The bench's own connection to the nodes' database, for its backends' CPU.
  let database: pg.Client | undefined;
  let stopped = false;
  const stopServers = async () => {
    await client?.dispose();
    await Promise.all(servers.map((s) => s.stop()));
    await database?.end();
    database = undefined;
  };
  const problems: string[] = [];
  let finished = false;
  try {
    let redis: { url: string; prefix: string } | undefined;
    if (backend === 'postgres') {
      scratch = await createScratchDatabase('stream');
      const copyMs = await copyStoreToPostgres(databaseFile(dataDir), scratch.url, dataDir);
      console.log(
        `setup ${name}: the seeded store copied into ${scratch.name} by segql migrate --from-sqlite in ${(copyMs / 1000).toFixed(1)} s`,
      );
      redis = {
        url: process.env.SEGQL_BENCH_REDIS_URL ?? LOCAL_REDIS,
        prefix: `segql-bench-stream-${process.pid}-${Date.now().toString(36)}:`,
      };
      servers = await spawnPgNodes({
        dataDir,
        url: scratch.url,
        redisUrl: redis.url,
        redisPrefix: redis.prefix,
        nodes,
        env,
        nodeArgs,
      });
      database = new pg.Client({ connectionString: scratch.url });
      await database.connect();
    } else {
      servers = [await spawnBenchServer(dataDir, { env, nodeArgs })];
    }
    // The subscriber on the last node, the ingests on the others: every change it hears crossed
    // Redis (with one node, both on it).
    const subscriberNode = servers.at(-1)!;
    const ingestNodes = servers.length > 1 ? servers.slice(0, -1) : servers;
    if (backend === 'postgres') {
      console.log(
        `setup ${name}: ${nodes} node(s); subscriber on node ${nodes}, ingests round robin over node(s) ${ingestNodes.map((_, i) => i + 1).join(', ')}`,
      );
    }
    const ws = createClient({ url: subscriberNode.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
    client = ws;
    const latencies: number[] = [];
    let received = 0;
    let messages = 0;
    let largest = 0;
    // Changes the server dropped for this subscriber because it fell behind (its queue was full).
    let lagged = 0;
    const heard = (changes: readonly { at: string }[], laggedBefore: number) => {
      const now = Date.now();
      messages++;
      largest = Math.max(largest, changes.length);
      received += changes.length;
      lagged += laggedBefore;
      for (const change of changes) latencies.push(now - Date.parse(change.at));
    };
    await new Promise<void>((resolve, reject) => {
      if (!subscribe) return resolve();
      ws.on('connected', () => setTimeout(resolve, 50));
      type Change = { at: string; to: string; lagged: number };
      ws.subscribe(
        {
          query: perChange
            ? 'subscription { audienceMembershipChanged { at to lagged } }'
            : 'subscription { audienceMembershipChangesCommitted { lagged changes { at to } } }',
        },
        {
          next: (m) => {
            if (perChange) {
              const change = (m.data as { audienceMembershipChanged: Change }).audienceMembershipChanged;
              heard([change], change.lagged);
            } else {
              const commit = (m.data as { audienceMembershipChangesCommitted: { lagged: number; changes: Change[] } })
                .audienceMembershipChangesCommitted;
              heard(commit.changes, commit.lagged);
            }
          },
          error: reject,
          complete: () => {},
        },
      );
    });
    if (subscribe && redis && ingestNodes[0] !== subscriberNode) {
      await waitForRedisSubscriber(redis.url, redis.prefix + topics.memberships(sandboxId));
    }

    const random = prng(7);
    const mutation = 'mutation($e: [EventInput!]!) { ingestEvents(events: $e) { accepted rejected duplicates } }';
    let id = 0;
    let sent = 0;
    let nextNode = 0;
    // node:http kept alive, a connection per request in flight: the load generator shares the
    // box's cores with the server, so it should take as little of them as it can.
    const senders = ingestNodes.map((n) => keepAliveGraphql(n.url, concurrency));
    const sendBatch = async (size: number) => {
      const e = streamEvents(random, {
        size,
        profiles,
        firstId: id,
        prefix: EVENT_PREFIX,
        randomIds: eventIds === 'random',
        payloadItems,
      });
      id += size;
      sent += size;
      const node = nextNode++ % ingestNodes.length;
      const answer = await senders[node]!<{ ingestEvents: { accepted: number; rejected: number; duplicates: number } }>(
        mutation,
        { e },
      ).catch((err: Error) => {
        const exited = ingestNodes[node]!.child.exitCode;
        throw new Error(
          `ingest request to node ${node + 1} failed: ${err.message}` +
            (exited === null ? '' : ` (the node exited with ${exited})`),
        );
      });
      const result = answer.ingestEvents;
      if (result.accepted !== size || result.rejected !== 0 || result.duplicates !== 0) {
        problems.push(`a batch of ${size} answered ${JSON.stringify(result)}`);
      }
    };

    /** The box's CPU ticks when a run's last request was answered (before waiting for the last changes). */
    let sendsEnded: number[] | undefined;
    /** `total` events in batches with `inFlight` requests at a time; events per second. */
    const oneRun = async (total: number, inFlight: number, label: string | undefined) => {
      const before = received;
      const laggedBefore = lagged;
      const messagesBefore = messages;
      largest = 0;
      let queued = 0;
      const started = performance.now();
      const worker = async () => {
        while (queued < total) {
          const size = Math.min(batch, total - queued);
          queued += size;
          await sendBatch(size);
        }
      };
      await Promise.all(Array.from({ length: inFlight }, worker));
      const ms = performance.now() - started;
      sendsEnded = boxCpuTicks();
      // Let the last changes arrive before counting: until none came for 300 ms.
      for (let heard = -1; heard !== received + lagged; ) {
        heard = received + lagged;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      if (label) {
        console.log(
          `changes ${name} ${label}: ${received - before} membership changes received in ${messages - messagesBefore} messages (at most ${largest} in one), ${lagged - laggedBefore} lagged (dropped), for ${total} events`,
        );
      }
      return (total / ms) * 1000;
    };

    const nodesCpu = () => servers.reduce((sum, s) => sum + cpuSeconds(s.child.pid), 0);
    // On PostgreSQL each statement is a round trip inside the request's unit: what its time is made of.
    const nodesStatements = async () => {
      const counts = await Promise.all(servers.map((s) => scrapeMetric(s.url, 'segql_sql_statements_total')));
      return counts.reduce((a, b) => a + b, 0);
    };
    const runSet = async (inFlight: number, label: string): Promise<RunSet> => {
      const set: RunSet = { rates: [], latencies: [], cpuPerThousand: [], databaseCpuPerThousand: [] };
      for (let r = 0; r < runs; r++) {
        const from = latencies.length;
        const statementsBefore = backend === 'postgres' ? await nodesStatements() : 0;
        const cpu = nodesCpu();
        const cpuByNode = servers.map((s) => cpuSeconds(s.child.pid));
        const threadsBefore = servers.map((s) => threadCpuSeconds(s.child.pid));
        const databaseBefore = database && scratch ? await databaseCpu(database, scratch.name) : undefined;
        const clientBefore = process.cpuUsage();
        const boxBefore = boxCpuTicks();
        set.rates.push(await oneRun(events, inFlight, `${label} run ${r + 1}`));
        const client = process.cpuUsage(clientBefore);
        const box = boxBusyCores(boxBefore, sendsEnded);
        set.cpuPerThousand.push(((nodesCpu() - cpu) * 1e6) / events);
        if (database && scratch && databaseBefore) {
          const seconds = databaseCpuBetween(databaseBefore, await databaseCpu(database, scratch.name));
          set.databaseCpuPerThousand.push((seconds * 1e6) / events);
        }
        set.latencies.push(...latencies.slice(from));
        // Where a server's CPU went, per event: on SQLite the busiest other thread is the ingest
        // thread, the one writer, which bounds the events per second.
        const split = servers.map((s, i) => {
          const { main, busiest, rest } = threadCpuSplit(
            s.child.pid!,
            threadsBefore[i]!,
            threadCpuSeconds(s.child.pid),
          );
          const us = (seconds: number) => ((seconds * 1e6) / events).toFixed(1);
          return `${servers.length > 1 ? `node ${i + 1}: ` : ''}main thread ${us(main)}, busiest other thread ${us(busiest)}, the rest ${us(rest)}`;
        });
        // The bench's own process shares the box's cores: what it takes is not the server's to use.
        const clientUs = ((client.user + client.system) / events).toFixed(1);
        console.log(
          `threads ${name} ${label} run ${r + 1}: CPU µs per event: ${split.join('; ')}; this client ${clientUs}` +
            (box === undefined ? '' : `; the box busy ${box.toFixed(2)} of ${cpus().length} cores`),
        );
        if (servers.length > 1) {
          const shares = servers.map(
            (s, i) => `node ${i + 1} ${(((cpuSeconds(s.child.pid) - cpuByNode[i]!) * 1e6) / events).toFixed(0)}`,
          );
          console.log(`cpu ${name} ${label} run ${r + 1}: ms per 1000 events by node: ${shares.join(', ')}`);
        }
        if (backend === 'postgres') {
          const requests = Math.ceil(events / batch);
          const perRequest = ((await nodesStatements()) - statementsBefore) / requests;
          console.log(
            `statements ${name} ${label} run ${r + 1}: ${perRequest.toFixed(1)} per ingest request of ${batch} events (segql_sql_statements_total over the nodes)`,
          );
        }
      }
      return set;
    };

    // The warm-up (JIT, page cache) is untimed.
    await oneRun(Math.min(events, 2_000), concurrency, undefined);
    // The judged runs first: the first runs see the most membership changes (windows filling).
    const concurrent = await runSet(concurrency, `concurrency ${concurrency}`);
    const sequential = await runSet(1, 'sequential');

    const reportSet = (set: RunSet, suffix: string) => {
      const rate = statsOf(set.rates);
      report(name, figure(`events-per-s${suffix}`), rate.median, 'events/s', rate);
      const sorted = [...set.latencies].sort((a, b) => a - b);
      const pick = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
      const span = { n: sorted.length, min: sorted[0] ?? Number.NaN, max: sorted.at(-1) ?? Number.NaN };
      report(name, figure(`latency-p50-ms${suffix}`), pick(0.5), 'ms', span);
      report(name, figure(`latency-p99-ms${suffix}`), pick(0.99), 'ms', span);
      const cpu = statsOf(set.cpuPerThousand);
      report(name, figure(`server-cpu-ms-per-1000-events${suffix}`), cpu.median, 'ms', cpu);
      if (set.databaseCpuPerThousand.some(Number.isFinite)) {
        const db = statsOf(set.databaseCpuPerThousand);
        report(name, figure(`database-cpu-ms-per-1000-events${suffix}`), db.median, 'ms', db);
      }
    };
    reportSet(concurrent, '');
    reportSet(sequential, '-sequential');
    if (backend === 'sqlite') {
      // Whether the server wrote its log through the coalescing VFS (docs/storage.md "WAL writes"):
      // figures from a server without it are not comparable with those from one with it.
      const frames = await scrapeMetric(servers[0]!.url, 'segql_sqlite_wal_frames_coalesced_total');
      const writes = await scrapeMetric(servers[0]!.url, 'segql_sqlite_wal_coalesced_writes_total');
      console.log(
        frames > 0
          ? `wal ${name}: the server's log frames went out a commit at a time: ${frames} frames in ${writes} writes`
          : `wal ${name}: the server wrote its log through SQLite's plain VFS (two system calls a frame)`,
      );
    }

    await stopServers();
    stopped = true;
    const check = {
      sandboxId,
      eventPrefix: EVENT_PREFIX,
      sent,
      heard: subscribe ? received + lagged : undefined,
      name,
    };
    const file = openDatabase(databaseFile(dataDir));
    try {
      if (scratch) {
        const store = openPgDatabase(scratch.url, { max: 1 });
        try {
          problems.push(...(await checkStreamStore({ ...check, seed: file, store })));
        } finally {
          await store.close();
        }
      } else {
        problems.push(...(await checkStreamStore({ ...check, seed: file, store: file })));
      }
    } finally {
      file.close();
    }
    finished = true;
  } finally {
    if (!stopped) await stopServers();
    await scratch?.drop();
    // The servers' logs go with the scratch directory: on a failure, their ends say why.
    if (!finished) printLogTails(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  }
  for (const p of problems) console.log(`MISMATCH ${name}: ${p}`);
  return problems.length > 0 ? 1 : 0;
}

/** The last lines of each log in the scratch directory (the servers', the copy's), on stderr. */
/** The box's CPU ticks from /proc/stat (all cores: user … steal), undefined off Linux. */
function boxCpuTicks(): number[] | undefined {
  try {
    return readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  } catch {
    return undefined;
  }
}

/** How many of the box's cores were busy on average between two readings (idle and iowait count as idle). */
function boxBusyCores(before: number[] | undefined, after: number[] | undefined): number | undefined {
  if (!before || !after) return undefined;
  const spent = after.map((v, i) => v - before[i]!);
  const total = spent.reduce((a, b) => a + b, 0);
  if (total <= 0) return undefined;
  return ((total - spent[3]! - spent[4]!) / total) * cpus().length;
}

function printLogTails(dataDir: string, lines = 30): void {
  for (const file of readdirSync(dataDir).filter((f) => f.endsWith('.log'))) {
    const tail = readFileSync(join(dataDir, file), 'utf8').trimEnd().split('\n').slice(-lines);
    process.stderr.write(`--- ${file} (last ${tail.length} lines)\n${tail.join('\n')}\n`);
  }
}
