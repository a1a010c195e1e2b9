/**
 * `npm run bench -- stream [--profiles 10000] [--definitions 50] [--events 20000] [--batch 100] [--runs 3]
 *   [--subscribers 0]`
 *
 * Streaming segmentation end to end (docs/performance.md `stream`): the real server in this process
 * on a scratch data directory with `--profiles` demo profiles (10 events each) and
 * `--definitions` streaming definitions (attribute tests, and typed event counts over windows of
 * 1 to 24 hours); a graphql-ws client subscribed to `audienceMembershipChanged`; then
 * `ingestEvents` over HTTP in batches of `--batch` events, one request at a time, each event
 * for a random demo profile and timestamped now (so the windowed definitions change state).
 *
 * - `events-per-s`: events ingested / wall time of a run (all batches back to back).
 * - `latency-p50-ms` / `latency-p99-ms`: per membership change, from the ingest's evaluation
 *   instant (`MembershipChange.at`) to the subscriber receiving it; over all runs' changes.
 * - context: `changes …` (how many changes the subscriber saw per run).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { createSegmentDefinition } from '../src/domain/definitions.js';
import { prng, seedDemoData } from '../src/domain/demo-data.js';
import { DEFAULT_SANDBOX, ensureSandbox } from '../src/domain/sandboxes.js';
import { startServer } from '../src/server.js';
import { intArg, parseArgs, report, statsOf } from './lib.js';

const NAME = 'stream';

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

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const profiles = intArg(args, 'profiles', 10_000);
  const definitions = args.get('definitions') === '0' ? 0 : intArg(args, 'definitions', 50);
  const events = intArg(args, 'events', 20_000);
  const batch = intArg(args, 'batch', 100);
  const runs = intArg(args, 'runs', 3);
  // --subscribers 0: no listener, to see what publishing to one costs.
  const subscribe = args.get('subscribers') !== '0';

  const dataDir = mkdtempSync(join(tmpdir(), 'segql-stream-'));
  const server = await startServer({ port: 0, dataDir, limits: { streamingSweepMs: 600_000 } });
  const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
  try {
    const { conn } = server.app;
    const sandboxId = ensureSandbox(conn, DEFAULT_SANDBOX).id;
    seedDemoData(conn, sandboxId, { profiles, eventsPerProfile: 10, seed: 42 });
    for (const [i, value] of streamingDefinitions(definitions).entries()) {
      createSegmentDefinition(conn, sandboxId, {
        name: `stream-${i}`,
        expression: { format: 'PQL_TEXT', value },
        evaluationInfo: { batch: true, streaming: true, edge: false },
        lifecycleState: 'PUBLISHED',
      });
    }

    const latencies: number[] = [];
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      if (!subscribe) return resolve();
      client.on('connected', () => setTimeout(resolve, 50));
      client.subscribe(
        { query: 'subscription { audienceMembershipChanged { at to } }' },
        {
          next: (m) => {
            received++;
            const at = Date.parse(
              (m.data as { audienceMembershipChanged: { at: string } }).audienceMembershipChanged.at,
            );
            latencies.push(Date.now() - at);
          },
          error: reject,
          complete: () => {},
        },
      );
    });

    const random = prng(7);
    const rates: number[] = [];
    const mutation = 'mutation($e: [EventInput!]!) { ingestEvents(events: $e) { accepted } }';
    let id = 0;
    for (let r = -1; r < runs; r++) {
      // Run -1 is the warm-up (JIT, page cache), untimed.
      const total = r < 0 ? Math.min(events, 2_000) : events;
      const before = received;
      const started = performance.now();
      for (let sent = 0; sent < total; sent += batch) {
        const now = new Date().toISOString();
        const e = Array.from({ length: Math.min(batch, total - sent) }, () => ({
          id: `stream-${id++}`,
          identity: { namespace: 'email', id: `user${Math.floor(random() * profiles)}@example.com` },
          timestamp: now,
          eventType: random() < 0.5 ? 'commerce.productViews' : 'commerce.purchases',
          data: { channel: 'web' },
        }));
        const res = await fetch(server.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: mutation, variables: { e } }),
        });
        const body = (await res.json()) as { errors?: unknown[] };
        if (body.errors) throw new Error(`ingestEvents failed: ${JSON.stringify(body.errors)}`);
      }
      const ms = performance.now() - started;
      // Let the last changes arrive before counting.
      await new Promise((resolve) => setTimeout(resolve, 200));
      if (r < 0) {
        latencies.length = 0;
        continue;
      }
      rates.push((total / ms) * 1000);
      console.log(`changes ${NAME} run ${r + 1}: ${received - before} membership changes for ${total} events`);
    }
    const rate = statsOf(rates);
    report(NAME, 'events-per-s', rate.median, 'events/s', rate);
    const sorted = [...latencies].sort((a, b) => a - b);
    const pick = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
    const span = { n: sorted.length, min: sorted[0] ?? Number.NaN, max: sorted.at(-1) ?? Number.NaN };
    report(NAME, 'latency-p50-ms', pick(0.5), 'ms', span);
    report(NAME, 'latency-p99-ms', pick(0.99), 'ms', span);
  } finally {
    await client.dispose();
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return 0;
}
