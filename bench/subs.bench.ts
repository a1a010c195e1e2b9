/**
 * `npm run bench -- subs [--subscribers 1000] [--profiles 20000] [--changes 300] [--batch 100]`
 *
 * Many subscribers (docs/performance.md `subs`): the real server in its own process; this
 * process opens `--subscribers` graphql-ws connections watching segment jobs (`jobEvents`, so
 * they are all listening before the job exists) and as many watching `audienceMembershipChanged`;
 * then one segment job runs while `--changes` new profiles are ingested in batches of `--batch`,
 * each entering one streaming audience (one change each).
 *
 * - `job-events`: progress events each job watcher got (all must get the same, in order).
 * - `changes-delivered`: membership changes per membership subscriber (each must get all, in order).
 * - `event-loop-max-ms`: the longest event-loop delay in the server during the run, from
 *   `segql_event_loop_delay_max_seconds` scraped every 250 ms (target ≤ 50 ms).
 * - `rss-after-per-baseline`: server RSS after all subscribers left / RSS before they came
 *   (target ≤ 1.10), both after a full GC (the server runs with bench/gc-on-signal.mjs) and 45 s
 *   of rest, read each second (the `settle` lines); the `rss` line
 *   gives the figures before that GC too (after 2,000 trivial requests and 3 s).
 *   `rss-1s-after-per-baseline`: the same read 1 s after each GC, as the bench did until session
 *   14, before V8's memory reducer has run.
 * - `anon-rss-after-per-baseline`: the same for anonymous memory only (RssAnon): VmRSS also
 *   counts the database file's pages mapped in (mmap_size), which the job and ingests touch.
 * - `fanout-ms`: from the last ingest's answer to the last subscriber having its last change.
 * - `server-cpu-us-per-delivery`: the server's CPU time (user + system) in the measured window
 *   per message delivered, the figure that moves least with the machine's load.
 * - `memory-release-pause-ms`: the pause of the heap compaction the server runs by itself once
 *   the subscribers have left and it has been idle (src/server/memory-release.ts; the `release`
 *   line says how many ran, and how many of the young-generation collections that follow). SEGQL_MEMORY_RELEASE_QUIET_MS=0 in the bench's environment turns it
 *   off, to compare.
 * `--profile <dir>`: the server writes a CPU profile (`--cpu-prof`) there, and its GC trace
 * (`--trace-gc`) and turns over 40 ms (bench/stall-log.mjs) into its server.log, copied there.
 * `--trace <dir>`: the GC trace and the stall log only, without the profiler's own cost.
 * `stall-on-cpu-max-ms` (with `--profile` or `--trace`): of the window's turns over 40 ms, the
 *   longest time the server's main thread was on a CPU in one (0: none over 40 ms of wall time).
 * `--server-flags=<flags>`: more node/V8 flags for the server (space-separated), to try them.
 * `--client-cpus <list>`: runs this process (the 2,000 clients) on those CPUs only (`taskset`,
 *   Linux), as a load generator on its own machine would, while the server keeps every CPU.
 * Exit 1 when a subscriber lost, duplicated or reordered an event, or was told it lagged.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { databaseFile } from '../src/config.js';
import { openDatabase } from '../src/db/index.js';
import { createSegmentDefinition } from '../src/domain/definitions.js';
import { seedDemoData } from '../src/domain/demo-data.js';
import { DEFAULT_SANDBOX, ensureSandbox } from '../src/domain/sandboxes.js';
import { intArg, parseArgs, ROOT, report, statsOf } from './lib.js';
import { graphqlRequest, scrapeMetric, spawnBenchServer } from './server-process.js';

const NAME = 'subs';

/** CPU time (user + system) a process has used, in ms (Linux /proc; clock ticks of 10 ms). */
function cpuMs(pid: number | undefined): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Resident set size of a process in bytes (Linux /proc), or one of its parts (`RssAnon`). */
function rssBytes(pid: number | undefined, field = 'VmRSS'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1]) * 1024;
}

interface JobState {
  id: string;
  status: string;
  progress: { done: number };
}

interface Change {
  to: string;
  lagged: number;
  profile: { id: string } | null;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const subscribers = intArg(args, 'subscribers', 1_000);
  const profiles = intArg(args, 'profiles', 20_000);
  const changeCount = intArg(args, 'changes', 300);
  const batch = intArg(args, 'batch', 100);
  const profileDir = args.get('profile');
  const traceDir = profileDir ?? args.get('trace');
  const serverFlags = args.get('server-flags')?.split(' ').filter(Boolean) ?? [];
  const clientCpus = args.get('client-cpus');

  const dataDir = mkdtempSync(join(tmpdir(), 'segql-subs-'));
  const conn = openDatabase(databaseFile(dataDir));
  try {
    const sandboxId = (await ensureSandbox(conn, DEFAULT_SANDBOX)).id;
    seedDemoData(conn, sandboxId, { profiles, eventsPerProfile: 5, seed: 42 });
    for (let i = 0; i < 10; i++) {
      await createSegmentDefinition(conn, sandboxId, {
        name: `batch-${i}`,
        expression: {
          format: 'PQL_TEXT',
          value: `loyalty.points >= ${i * 500} and xEvent[eventType = "commerce.purchases"].count() >= ${i % 3}`,
        },
        lifecycleState: 'PUBLISHED',
      });
    }
    // Only the bench's new profiles enter it: one change per ingested profile.
    await createSegmentDefinition(conn, sandboxId, {
      name: 'subs-stream',
      expression: { format: 'PQL_TEXT', value: 'loyalty.tier = "subs-bench"' },
      evaluationInfo: { batch: false, streaming: true, edge: false },
      lifecycleState: 'PUBLISHED',
    });
  } finally {
    conn.close();
  }

  // Small chunks: more progress events for the watchers.
  const server = await spawnBenchServer(dataDir, {
    env: { SEGQL_SEGMENT_CHUNK_SIZE: '500' },
    nodeArgs: [
      '--expose-gc',
      ...serverFlags,
      '--import',
      join(ROOT, 'bench', 'gc-on-signal.mjs'),
      ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
      ...(traceDir ? ['--trace-gc', '--import', join(ROOT, 'bench', 'stall-log.mjs')] : []),
    ],
  });
  if (clientCpus) {
    // After the server has started: it inherits nothing, and every thread of this process moves.
    execFileSync('taskset', ['-a', '-cp', clientCpus, String(process.pid)], { stdio: 'ignore' });
    console.log(`clients ${NAME}: this process on CPUs ${clientCpus} only, the server on all`);
  }
  /** A full collection in the server (bench/gc-on-signal.mjs), then a moment for it to finish. */
  const collect = async () => {
    server.child.kill('SIGUSR2');
    await new Promise((r) => setTimeout(r, 1_000));
  };
  /**
   * RSS after `seconds` of rest, read each second (the series is printed). V8 gives emptied
   * pages back by itself, with its memory reducer (the main thread's and each worker thread's):
   * 8 s or more after a full collection, once the process allocates little, in up to three
   * steps; here RSS fell 11-41 s after the forced collection, by 10-100 MiB, the baseline's as
   * much as the after's. So both readings get the same rest, long enough for those steps, rather
   * than a stop when RSS has not fallen for a while: the first step can come 15 s or more after
   * the collection.
   */
  const restedRss = async (label: string, seconds = 45) => {
    const series: number[] = [rssBytes(server.child.pid)];
    for (let s = 1; s <= seconds; s++) {
      await new Promise((r) => setTimeout(r, 1_000));
      series.push(rssBytes(server.child.pid));
    }
    console.log(
      `settle ${NAME}: ${label} RSS each second (MiB): ${series.map((b) => (b / 2 ** 20).toFixed(0)).join(' ')}`,
    );
    return series.at(-1)!;
  };
  const clients: Client[] = [];
  let failed = false;
  const fail = (line: string) => {
    if (!failed) console.log(`MISMATCH ${NAME}: ${line}`);
    failed = true;
  };
  try {
    const createJob = async () =>
      (
        await graphqlRequest<{ createSegmentJob: { id: string } }>(
          server.url,
          'mutation { createSegmentJob(input: { all: true }) { id } }',
        )
      ).createSegmentJob.id;
    const jobStatus = async (id: string) =>
      (
        await graphqlRequest<{ segmentJob: { status: string } }>(
          server.url,
          'query($id: ID!) { segmentJob(id: $id) { status } }',
          { id },
        )
      ).segmentJob.status;
    const settle = async (id: string) => {
      while (!['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(await jobStatus(id)))
        await new Promise((r) => setTimeout(r, 100));
    };
    // Warm-up: one job and one ingest before the baseline, so the baseline holds the code paths.
    await settle(await createJob());
    let profileNo = 0;
    const ingest = async (n: number) => {
      const records = Array.from({ length: n }, () => ({
        identities: [{ namespace: 'email', id: `subs${profileNo++}@example.com` }],
        attributes: { loyalty: { tier: 'subs-bench', points: 1 } },
      }));
      await graphqlRequest(server.url, 'mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', {
        r: records,
      });
    };
    await ingest(batch);
    await new Promise((r) => setTimeout(r, 2_000));
    await collect();
    const baselineAt1s = rssBytes(server.child.pid);
    const baseline = await restedRss('baseline');
    const anonBaseline = rssBytes(server.child.pid, 'RssAnon');
    const heap = () => scrapeMetric(server.url, 'segql_process_nodejs_heap_size_used_bytes');
    /** What V8 holds from the system (committed), used or not: RSS follows this, not `heap`. */
    const heapTotal = () => scrapeMetric(server.url, 'segql_process_nodejs_heap_size_total_bytes');
    /** V8's committed memory per heap space, in MiB: which space holds what RSS keeps. */
    const spaces = async () =>
      (await (await fetch(server.url.replace(/\/graphql$/, '/metrics'))).text())
        .split('\n')
        .map((l) => /^segql_process_nodejs_heap_space_size_total_bytes\{space="(\w+)"\} (\d+)$/.exec(l))
        .filter((m) => m && Number(m[2]) >= 2 ** 20)
        .map((m) => `${m![1]} ${(Number(m![2]) / 2 ** 20).toFixed(0)}`)
        .join(', ');
    const spacesBefore = await spaces();
    const heapTotalBefore = await heapTotal();
    const heapBefore = await heap();

    const jobEvents: JobState[][] = [];
    const changes: Change[][] = [];
    const subscribed: Promise<void>[] = [];
    for (let i = 0; i < subscribers * 2; i++) {
      const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
      clients.push(client);
      const onJob = i < subscribers;
      const seen: unknown[] = [];
      (onJob ? jobEvents : changes).push(seen as never);
      let first!: () => void;
      subscribed.push(new Promise<void>((resolve) => (first = resolve)));
      client.subscribe(
        onJob
          ? { query: 'subscription { jobEvents(kinds: [SEGMENT]) { id status progress { done } } }' }
          : { query: 'subscription { audienceMembershipChanged { to lagged profile { id } } }' },
        {
          next: (m) => {
            const data = m.data as { jobEvents?: JobState; audienceMembershipChanged?: Change };
            seen.push(onJob ? data.jobEvents : data.audienceMembershipChanged);
          },
          error: (err) => fail(`a subscription failed: ${JSON.stringify(err)}`),
          complete: () => {},
        },
      );
      // Neither says anything before its first event: count it as listening once connected.
      client.on('connected', () => setTimeout(first, 50));
    }
    await Promise.all(subscribed);
    const watched = await createJob();
    console.log(`rows ${NAME}: ${subscribers} job watchers and ${subscribers} membership subscribers connected`);

    // Scrape the loop delay while the job runs and the changes stream.
    let loopMax = 0;
    let scraping = true;
    await scrapeMetric(server.url, 'segql_event_loop_delay_max_seconds');
    // The measured window on the monotonic clock the server's profile and stall log use.
    const clock = () => process.hrtime.bigint() / 1000n;
    const windowStart = clock();
    const cpuStart = cpuMs(server.child.pid);
    const scraper = (async () => {
      while (scraping) {
        await new Promise((r) => setTimeout(r, 250));
        if (scraping) loopMax = Math.max(loopMax, await scrapeMetric(server.url, 'segql_event_loop_delay_max_seconds'));
      }
    })();
    for (let sent = 0; sent < changeCount; sent += batch) await ingest(Math.min(batch, changeCount - sent));
    const lastIngest = performance.now();
    const expectedChanges = changeCount;
    const until = Date.now() + 120_000;
    while (changes.some((c) => c.length < expectedChanges) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    const fanoutMs = performance.now() - lastIngest;
    await settle(watched);
    const lastState = async () => {
      const deadline = Date.now() + 30_000;
      while (jobEvents.some((e) => e.at(-1)?.status !== 'SUCCEEDED') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
    };
    await lastState();
    scraping = false;
    await scraper;
    const serverCpuMs = cpuMs(server.child.pid) - cpuStart;
    const windowEnd = clock();
    if (traceDir) console.log(`window ${NAME}: ${windowStart}..${windowEnd} us (monotonic)`);

    // Every job watcher: the same states, progress never going back, ending SUCCEEDED.
    const reference = JSON.stringify(jobEvents[0]);
    for (const [i, events] of jobEvents.entries()) {
      if (JSON.stringify(events) !== reference)
        fail(`job watcher ${i} saw ${events.length} states, watcher 0 saw ${jobEvents[0]!.length}`);
      if (events.at(-1)?.status !== 'SUCCEEDED') fail(`job watcher ${i} did not see the job succeed`);
      if (events.some((e, k) => k > 0 && e.progress.done < events[k - 1]!.progress.done))
        fail(`job watcher ${i} saw progress go back`);
    }
    // Every membership subscriber: all changes, none lagged, in the same order.
    const order = JSON.stringify(changes[0]!.map((c) => c.profile?.id));
    for (const [i, list] of changes.entries()) {
      if (list.length !== expectedChanges) fail(`subscriber ${i} got ${list.length} of ${expectedChanges} changes`);
      if (list.some((c) => c.lagged > 0)) fail(`subscriber ${i} was told it lagged`);
      if (JSON.stringify(list.map((c) => c.profile?.id)) !== order)
        fail(`subscriber ${i} got the changes in another order`);
    }
    if (new Set(changes[0]!.map((c) => c.profile?.id)).size !== expectedChanges) fail('changes were duplicated');

    const dropped = await scrapeMetric(server.url, 'segql_subscription_events_dropped_total');
    if (dropped > 0) fail(`the server dropped ${dropped} events`);
    await Promise.all(clients.map((c) => c.dispose()));
    clients.length = 0;
    // Garbage is only collected when something allocates: light traffic, as a live server has.
    for (let i = 0; i < 2_000; i++) await graphqlRequest(server.url, '{ __typename }');
    await new Promise((r) => setTimeout(r, 3_000));
    const uncollected = rssBytes(server.child.pid);
    const heapUncollected = await heap();
    await collect();
    const afterAt1s = rssBytes(server.child.pid);
    const after = await restedRss('after');
    const anonAfter = rssBytes(server.child.pid, 'RssAnon');
    const heapAfter = await heap();
    const heapTotalAfter = await heapTotal();
    const spacesAfter = await spaces();
    const open = await scrapeMetric(server.url, 'segql_active_subscriptions');
    if (open > 0) fail(`${open} subscriptions still open after every client left`);
    const metricsText = await (await fetch(server.url.replace(/\/graphql$/, '/metrics'))).text();
    const releaseSteps = (step: string) =>
      Number(new RegExp(`^segql_memory_releases_total\\{step="${step}"\\} (\\S+)$`, 'm').exec(metricsText)?.[1]);
    const releases = releaseSteps('compact');
    const releasePause = await scrapeMetric(server.url, 'segql_memory_release_last_pause_seconds');

    const one = (v: number) => ({ n: 1, min: v, max: v });
    report(NAME, 'job-events', jobEvents[0]!.length, 'events', statsOf(jobEvents.map((e) => e.length)));
    report(NAME, 'changes-delivered', changes[0]!.length, 'changes', statsOf(changes.map((c) => c.length)));
    report(NAME, 'event-loop-max-ms', loopMax * 1000, 'ms', one(loopMax * 1000));
    if (traceDir) {
      // The stall log's turns over 40 ms in the window: wall time, and the main thread's time on a CPU.
      const stalls = [
        ...readFileSync(join(dataDir, 'server.log'), 'utf8').matchAll(
          /^stall (\d+) ms \((\d+) ms on CPU, (\d+) ms waiting for one\) ending at (\d+) us$/gm,
        ),
      ]
        .filter((m) => BigInt(m[4]!) >= windowStart && BigInt(m[4]!) <= windowEnd)
        .map((m) => ({ wall: Number(m[1]), cpu: Number(m[2]), waiting: Number(m[3]) }))
        // Neither on a CPU nor waiting for one: blocked (a lock, GC helper threads, synchronous I/O).
        .map((st) => ({ ...st, blocked: Math.max(0, st.wall - st.cpu - st.waiting) }));
      const longest = (k: 'wall' | 'cpu' | 'waiting' | 'blocked') => Math.max(0, ...stalls.map((st) => st[k]));
      console.log(
        `stalls ${NAME}: ${stalls.length} turns over 40 ms in the window; longest ${longest('wall')} ms, at most ${longest('cpu')} ms of one on CPU, ${longest('waiting')} ms waiting for a CPU, ${longest('blocked')} ms blocked (to a scheduler tick)`,
      );
      report(NAME, 'stall-on-cpu-max-ms', longest('cpu'), 'ms', one(longest('cpu')));
    }
    report(NAME, 'fanout-ms', fanoutMs, 'ms', one(fanoutMs));
    // The server's CPU per message it sent in the window (job states and changes, all subscribers).
    const deliveries = jobEvents.reduce((n, e) => n + e.length, 0) + changes.reduce((n, c) => n + c.length, 0);
    report(
      NAME,
      'server-cpu-us-per-delivery',
      (serverCpuMs * 1000) / deliveries,
      'µs',
      one((serverCpuMs * 1000) / deliveries),
    );
    report(NAME, 'rss-after-per-baseline', after / baseline, '×', one(after / baseline));
    // What the bench reported until session 14: both read 1 s after the forced collection.
    report(NAME, 'rss-1s-after-per-baseline', afterAt1s / baselineAt1s, '×', one(afterAt1s / baselineAt1s));
    report(NAME, 'anon-rss-after-per-baseline', anonAfter / anonBaseline, '×', one(anonAfter / anonBaseline));
    // The server's own compaction once the subscribers have gone and it is idle (SEGQL_MEMORY_RELEASE_QUIET_MS).
    console.log(
      `release ${NAME}: ${releases} heap compaction(s) and ${releaseSteps('young')} young collection(s) after the subscribers left${releases > 0 ? `, the last compaction a pause of ${(releasePause * 1000).toFixed(0)} ms` : ''}`,
    );
    if (releases > 0) report(NAME, 'memory-release-pause-ms', releasePause * 1000, 'ms', one(releasePause * 1000));
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
    console.log(
      `rss ${NAME}: baseline ${mib(baseline)} (anonymous ${mib(anonBaseline)}); after ${mib(uncollected)}, ${mib(after)} after a full GC (anonymous ${mib(anonAfter)}); V8 heap used ${mib(heapBefore)} before, ${mib(heapUncollected)} after, ${mib(heapAfter)} after a full GC; V8 heap committed ${mib(heapTotalBefore)} before, ${mib(heapTotalAfter)} after (MiB by space: ${spacesBefore} before; ${spacesAfter} after)`,
    );
  } catch (err) {
    const log = readFileSync(join(dataDir, 'server.log'), 'utf8').split('\n').slice(-15).join('\n');
    console.log(`server log (tail):\n${log}\nserver exit: ${server.child.exitCode} ${server.child.signalCode}`);
    throw err;
  } finally {
    await Promise.all(clients.map((c) => c.dispose()));
    await server.stop();
    if (traceDir) copyFileSync(join(dataDir, 'server.log'), join(traceDir, 'server.log'));
    rmSync(dataDir, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}
