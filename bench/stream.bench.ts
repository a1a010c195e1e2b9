/**
 * `npm run bench -- stream [--profiles 10000] [--definitions 50] [--events 20000] [--batch 100] [--runs 3]
 *   [--concurrency 8] [--subscribers 0] [--subscription commit|change] [--server-prof DIR]
 *   [--server-flags=<node/V8 flags for the server, space-separated>]`
 *
 * Streaming segmentation end to end (docs/performance.md `stream`): the real server in its own
 * process (as `npm start` runs it) on a scratch data directory seeded beforehand with `--profiles`
 * demo profiles (10 events each) and `--definitions` streaming definitions (attribute tests, and
 * typed event counts over windows of 1 to 24 hours); a graphql-ws client subscribed to
 * `audienceMembershipChangesCommitted` (a commit's changes per message; `--subscription change`:
 * `audienceMembershipChanged`, one change per message, as before session 7); then `ingestEvents` over HTTP in batches of `--batch` events, each
 * event for a random demo profile and timestamped now (so the windowed definitions change state).
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
 * - context: `changes …` (how many changes the subscriber saw per run, and in how many messages).
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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { databaseFile } from '../src/config.js';
import { openDatabase } from '../src/db/index.js';
import { createSegmentDefinition } from '../src/domain/definitions.js';
import { prng, seedDemoData } from '../src/domain/demo-data.js';
import { checkedDefinition } from '../src/domain/evaluation.js';
import { isCurrentStatus, type MembershipStatus } from '../src/domain/membership-statuses.js';
import { loadProfileDocuments } from '../src/domain/profile-documents.js';
import { DEFAULT_SANDBOX, ensureSandbox } from '../src/domain/sandboxes.js';
import { streamingDefinitions as storedStreamingDefinitions } from '../src/domain/streaming.js';
import { evaluate, eventReads } from '../src/pql/index.js';
import { intArg, parseArgs, report, statsOf } from './lib.js';
import { cpuSeconds, spawnBenchServer } from './server-process.js';

const NAME = 'stream';
const EVENT_PREFIX = 'stream-';

/** Streaming-eligible definitions over the demo data: attribute tests and windowed event counts. */
function streamingDefinitions(n: number): string[] {
  const out: string[] = [];
  const countries = ['US', 'GB', 'DE', 'FR', 'CA', 'SE', 'NO', 'ES', 'JP', 'BR', 'AU'];
  const types = ['web.webpagedetails.pageViews', 'commerce.productViews', 'commerce.purchases', 'commerce.checkouts'];
  for (let i = 0; out.length < n; i++) {
    switch (i % 5) {
      case 0:
        out.push(`loyalty.points >= ${100 * (i + 1)}`);
        break;
      case 1:
        out.push(`homeAddress.countryCode = "${countries[i % countries.length]}"`);
        break;
      case 2:
        out.push(`loyalty.tier = "gold" and loyalty.points > ${50 * i}`);
        break;
      default: {
        const type = types[i % types.length]!;
        const hours = [1, 6, 24][i % 3]!;
        out.push(
          `xEvent[eventType = "${type}" and timestamp occurs <= ${hours} hours before now].count() >= ${1 + (i % 2)}`,
        );
      }
    }
  }
  return out;
}

interface RunSet {
  rates: number[];
  latencies: number[];
  /** Server CPU (user + system) per 1,000 events, ms: what load on the box does not inflate. */
  cpuPerThousand: number[];
}

/**
 * Checks the store after the runs (the server stopped): the events sent are stored once each, and
 * the streaming memberships are the JS evaluator's answer at each profile's last relevant ingest.
 * Returns the mismatches found (at most a few are described).
 */
async function checkStore(dataDir: string, sent: number, heard: number | undefined): Promise<string[]> {
  const problems: string[] = [];
  const conn = openDatabase(databaseFile(dataDir));
  try {
    const sandboxId = (await ensureSandbox(conn, DEFAULT_SANDBOX)).id;
    const stored = conn.sqlite
      .prepare('SELECT count(*) FROM events WHERE sandbox_id = ? AND event_id LIKE ?')
      .pluck()
      .get(sandboxId, `${EVENT_PREFIX}%`) as number;
    if (stored !== sent) problems.push(`${sent} events sent, ${stored} stored`);
    // Every change written reached the subscriber or was reported to it as lagged.
    const written = conn.sqlite
      .prepare("SELECT count(*) FROM membership_history WHERE sandbox_id = ? AND cause = 'streaming'")
      .pluck()
      .get(sandboxId) as number;
    if (heard !== undefined && heard !== written) {
      problems.push(`${written} membership changes written, the subscriber heard of ${heard} (received + lagged)`);
    }

    // Per profile and event type, the last ingest instant of a bench event.
    const lastIngest = new Map<number, Map<string, number>>();
    for (const r of conn.sqlite
      .prepare(
        `SELECT profile_id AS profileId, event_type AS type, max(ingested_at) AS at FROM events
         WHERE sandbox_id = ? AND event_id LIKE ? GROUP BY profile_id, event_type`,
      )
      .all(sandboxId, `${EVENT_PREFIX}%`) as { profileId: number; type: string; at: number }[]) {
      let byType = lastIngest.get(r.profileId);
      if (!byType) {
        byType = new Map();
        lastIngest.set(r.profileId, byType);
      }
      byType.set(r.type, r.at);
    }
    const profileIds = conn.sqlite
      .prepare('SELECT id FROM profiles WHERE sandbox_id = ?')
      .pluck()
      .all(sandboxId) as number[];
    const docs = loadProfileDocuments(conn, sandboxId, profileIds);
    let compared = 0;
    let wrong = 0;
    for (const d of storedStreamingDefinitions(conn, sandboxId)) {
      const checked = checkedDefinition(conn, d);
      if (checked.referencedAudiences.length > 0) {
        problems.push(`definition ${d.id} reads audiences: the bench's check does not cover it`);
        continue;
      }
      const types = eventReads(checked).eventTypes;
      for (const profileId of profileIds) {
        const doc = docs.get(profileId)!;
        const status: MembershipStatus | undefined = doc.statuses.get(d.audienceId);
        const member = status !== undefined && isCurrentStatus(status);
        // The last instant streaming evaluated this definition for this profile.
        let at: number | undefined;
        for (const [type, t] of lastIngest.get(profileId) ?? []) {
          if ((types === null || types.has(type)) && (at === undefined || t > at)) at = t;
        }
        const expected = at === undefined ? status === undefined : evaluate(checked, doc, { now: at }) === member;
        compared++;
        if (expected) continue;
        wrong++;
        if (wrong <= 5) {
          problems.push(
            `audience ${d.audienceId} (${d.expressionText}) profile ${profileId}: stored ${status ?? 'none'}, ` +
              (at === undefined
                ? 'never evaluated by streaming'
                : `evaluator at ${new Date(at).toISOString()} says ${!member}`),
          );
        }
      }
    }
    if (wrong > 5) problems.push(`… ${wrong} wrong memberships in all`);
    console.log(
      `check ${NAME}: ${stored} events stored for ${sent} sent; ${compared} memberships compared, ${wrong} wrong`,
    );
  } finally {
    conn.close();
  }
  return problems;
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
  const serverProf = args.get('server-prof');
  const serverFlags = args.get('server-flags')?.split(' ').filter(Boolean) ?? [];

  const dataDir = mkdtempSync(join(tmpdir(), 'segql-stream-'));
  const seed = openDatabase(databaseFile(dataDir));
  try {
    const sandboxId = (await ensureSandbox(seed, DEFAULT_SANDBOX)).id;
    seedDemoData(seed, sandboxId, { profiles, eventsPerProfile: 10, seed: 42 });
    for (const [i, value] of streamingDefinitions(definitions).entries()) {
      await createSegmentDefinition(seed, sandboxId, {
        name: `stream-${i}`,
        expression: { format: 'PQL_TEXT', value },
        evaluationInfo: { batch: true, streaming: true, edge: false },
        lifecycleState: 'PUBLISHED',
      });
    }
  } finally {
    seed.close();
  }

  // No sweep during the runs: the check below reads memberships as the ingests left them.
  const server = await spawnBenchServer(dataDir, {
    env: { SEGQL_STREAMING_SWEEP_MS: '600000' },
    nodeArgs: [...serverFlags, ...(serverProf ? ['--cpu-prof', `--cpu-prof-dir=${serverProf}`] : [])],
  });
  const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
  let stopped = false;
  const problems: string[] = [];
  try {
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
      client.on('connected', () => setTimeout(resolve, 50));
      type Change = { at: string; to: string; lagged: number };
      client.subscribe(
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

    const random = prng(7);
    const mutation = 'mutation($e: [EventInput!]!) { ingestEvents(events: $e) { accepted rejected duplicates } }';
    let id = 0;
    let sent = 0;
    const sendBatch = async (size: number) => {
      const now = new Date().toISOString();
      const e = Array.from({ length: size }, () => ({
        id: `${EVENT_PREFIX}${id++}`,
        identity: { namespace: 'email', id: `user${Math.floor(random() * profiles)}@example.com` },
        timestamp: now,
        eventType: random() < 0.5 ? 'commerce.productViews' : 'commerce.purchases',
        data: { channel: 'web' },
      }));
      sent += size;
      const res = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: mutation, variables: { e } }),
      });
      const body = (await res.json()) as {
        errors?: unknown[];
        data?: { ingestEvents: { accepted: number; rejected: number; duplicates: number } };
      };
      const result = body.data?.ingestEvents;
      if (body.errors || !result) throw new Error(`ingestEvents failed: ${JSON.stringify(body.errors)}`);
      if (result.accepted !== size || result.rejected !== 0 || result.duplicates !== 0) {
        problems.push(`a batch of ${size} answered ${JSON.stringify(result)}`);
      }
    };

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
      // Let the last changes arrive before counting: until none came for 300 ms.
      for (let heard = -1; heard !== received + lagged; ) {
        heard = received + lagged;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      if (label) {
        console.log(
          `changes ${NAME} ${label}: ${received - before} membership changes received in ${messages - messagesBefore} messages (at most ${largest} in one), ${lagged - laggedBefore} lagged (dropped), for ${total} events`,
        );
      }
      return (total / ms) * 1000;
    };

    const runSet = async (inFlight: number, label: string): Promise<RunSet> => {
      const set: RunSet = { rates: [], latencies: [], cpuPerThousand: [] };
      for (let r = 0; r < runs; r++) {
        const from = latencies.length;
        const cpu = cpuSeconds(server.child.pid);
        set.rates.push(await oneRun(events, inFlight, `${label} run ${r + 1}`));
        set.cpuPerThousand.push(((cpuSeconds(server.child.pid) - cpu) * 1e6) / events);
        set.latencies.push(...latencies.slice(from));
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
      report(NAME, `events-per-s${suffix}`, rate.median, 'events/s', rate);
      const sorted = [...set.latencies].sort((a, b) => a - b);
      const pick = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
      const span = { n: sorted.length, min: sorted[0] ?? Number.NaN, max: sorted.at(-1) ?? Number.NaN };
      report(NAME, `latency-p50-ms${suffix}`, pick(0.5), 'ms', span);
      report(NAME, `latency-p99-ms${suffix}`, pick(0.99), 'ms', span);
      const cpu = statsOf(set.cpuPerThousand);
      report(NAME, `server-cpu-ms-per-1000-events${suffix}`, cpu.median, 'ms', cpu);
    };
    reportSet(concurrent, '');
    reportSet(sequential, '-sequential');

    await client.dispose();
    await server.stop();
    stopped = true;
    problems.push(...(await checkStore(dataDir, sent, subscribe ? received + lagged : undefined)));
  } finally {
    if (!stopped) {
      await client.dispose();
      await server.stop();
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
  for (const p of problems) console.log(`MISMATCH ${NAME}: ${p}`);
  return problems.length > 0 ? 1 : 0;
}
