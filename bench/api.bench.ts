/**
 * `npm run bench -- api [--audiences 60] [--page 50] [--connections 50] [--duration 10] [--runs 3]
 *   [--cpu-prof <dir>] [--no-cache]`
 *
 * With `--cpu-prof` the server writes a V8 CPU profile there and only the page is loaded (once).
 * With `--no-cache` the server runs without its response cache (SEGQL_RESPONSE_CACHE_ENTRIES=0):
 * every page is computed from the database, as on a server whose data changes all the time.
 *
 * The API under load (docs/performance.md `api`): the real server in its own process, autocannon
 * in this one, `--connections` connections, the query "a page of `--page` audiences with their
 * definition, size and latest job". The floor is the same query and the same response served by
 * bench/api-floor.ts (yoga + graphql over the SDL, no database) in its own process, measured in
 * the same run, as is `{ __typename }` on SegQL.
 *
 * - `page-rps`, `floor-rps`, `trivial-rps`: requests/s (autocannon's mean over `--duration` s).
 * - `page-per-floor`: page-rps / floor-rps per run (target ≥ 0.7); `page-per-trivial` likewise.
 * - `page-cpu-ms`, `floor-cpu-ms`: CPU time (user + system, /proc) each server spent per request
 *   under load: steadier than requests/s on a shared machine, and where a ratio is won or lost.
 * - `statements-per-request`: SQL statements per page request under load, from
 *   `segql_sql_statements_total` on /metrics (target ≤ 4); context lines give it for a page of
 *   10 and of `--page`, one request each, computed (a document the cache has not seen) and
 *   repeated (the cache's answer), and how the cache answered the requests under load.
 * Exit 1 when the floor's answer differs from SegQL's, a request fails, or a page of 10 and a
 * page of `--page` cost different statement counts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { databaseFile } from '../src/config.js';
import { openDatabase } from '../src/db/index.js';
import { createSegmentDefinition } from '../src/domain/definitions.js';
import { seedDemoData } from '../src/domain/demo-data.js';
import { DEFAULT_SANDBOX, ensureSandbox } from '../src/domain/sandboxes.js';
import { intArg, parseArgs, ROOT, report, statsOf } from './lib.js';
import { cpuSeconds, freePort, graphqlRequest, scrapeMetric, spawnBenchServer } from './server-process.js';

const NAME = 'api';

export const PAGE_QUERY = `query Page($first: Int!) {
  audiences(first: $first) {
    edges {
      node {
        id name size lifecycleState updatedAt
        segmentDefinition {
          id name normalizedExpression
          evaluationInfo { batch streaming edge }
          latestJob { id status createdAt finishedAt }
        }
      }
    }
  }
}`;

/** JSON with object keys sorted: the same answer whatever order the executor wrote fields in. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** `segql_graphql_response_cache_total` by outcome (hit, shared, miss, uncacheable) from /metrics. */
async function cacheOutcomes(graphqlUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(graphqlUrl.replace(/\/graphql$/, '/metrics'))).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^segql_graphql_response_cache_total\{outcome="(\w+)"\} (\S+)$/gm))
    out[m[1]!] = Number(m[2]);
  return out;
}

async function startFloor(responseFile: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/api-floor.ts', String(port), responseFile], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the floor server exited (${code})`)));
  });
  child.stdout!.resume();
  return { url: `http://127.0.0.1:${port}/graphql`, child };
}

async function load(url: string, body: string, connections: number, duration: number) {
  const result = await autocannon({
    url,
    connections,
    duration,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  // autocannon counts a timeout (10 s) among its errors too; on a shared box a few are load, not faults.
  const failed = result.errors - result.timeouts + result.non2xx;
  if (failed > 0) throw new Error(`${failed} failed requests against ${url}`);
  if (result.timeouts > 0) console.log(`timeouts ${NAME}: ${result.timeouts} requests to ${url} took over 10 s`);
  return { rps: result.requests.average, total: result['2xx'], p99: result.latency.p99 };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const audienceCount = intArg(args, 'audiences', 60);
  const page = intArg(args, 'page', 50);
  const connections = intArg(args, 'connections', 50);
  const duration = intArg(args, 'duration', 10);
  const runs = intArg(args, 'runs', 3);
  const profileDir = args.get('cpu-prof');
  const cached = !args.has('no-cache');

  const dataDir = mkdtempSync(join(tmpdir(), 'segql-api-'));
  const conn = openDatabase(databaseFile(dataDir));
  try {
    const sandboxId = (await ensureSandbox(conn, DEFAULT_SANDBOX)).id;
    seedDemoData(conn, sandboxId, { profiles: 2_000, eventsPerProfile: 2, seed: 42 });
    for (let i = 0; i < audienceCount; i++) {
      await createSegmentDefinition(conn, sandboxId, {
        name: `api-${i}`,
        description: `Loyalty points from ${i * 100}`,
        expression: { format: 'PQL_TEXT', value: `loyalty.points >= ${i * 100}` },
        lifecycleState: 'PUBLISHED',
      });
    }
  } finally {
    conn.close();
  }

  const server = await spawnBenchServer(dataDir, {
    nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    env: cached ? {} : { SEGQL_RESPONSE_CACHE_ENTRIES: '0' },
  });
  let floor: { url: string; child: ChildProcess } | undefined;
  let failed = false;
  try {
    const job = await graphqlRequest<{ createSegmentJob: { id: string } }>(
      server.url,
      'mutation { createSegmentJob(input: { all: true }) { id } }',
    );
    for (;;) {
      const { segmentJob } = await graphqlRequest<{ segmentJob: { status: string } }>(
        server.url,
        'query($id: ID!) { segmentJob(id: $id) { status } }',
        { id: job.createSegmentJob.id },
      );
      if (segmentJob.status === 'SUCCEEDED') break;
      if (segmentJob.status === 'FAILED' || segmentJob.status === 'CANCELLED')
        throw new Error('the segment job failed');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const body = JSON.stringify({ query: PAGE_QUERY, variables: { first: page } });
    const post = async (url: string, b: string) =>
      (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b })).text();
    const captured = await post(server.url, body);
    const parsed = JSON.parse(captured) as { data?: { audiences: { edges: { node: any }[] } }; errors?: unknown };
    const nodes = parsed.data?.audiences.edges.map((e) => e.node) ?? [];
    if (
      parsed.errors ||
      nodes.length !== Math.min(page, audienceCount) ||
      nodes.some((n) => !n.segmentDefinition?.latestJob)
    ) {
      console.log(`MISMATCH ${NAME}: the page is not what the bench set up: ${captured.slice(0, 500)}`);
      return 1;
    }
    const responseFile = join(dataDir, 'page-response.json');
    writeFileSync(responseFile, captured);
    floor = await startFloor(responseFile);
    const fromFloor = await post(floor.url, body);
    if (canonical(JSON.parse(fromFloor)) !== canonical(parsed)) {
      console.log(
        `MISMATCH ${NAME}: the floor answers differently:\n${fromFloor.slice(0, 300)}\n${captured.slice(0, 300)}`,
      );
      failed = true;
    }
    console.log(`rows ${NAME}: ${nodes.length} audiences per page, ${captured.length} bytes per response`);

    // Statements per page, one request at a time (a scrape's own statements subtracted).
    const scrape = async () => scrapeMetric(server.url, 'segql_sql_statements_total');
    const s0 = await scrape();
    const scrapeCost = (await scrape()) - s0;
    // The fewest of five tries: a background statement may land between two scrapes. A page
    // computed is asked with a document the server has not seen (its operation renamed), so the
    // response cache cannot answer it; a page repeated is the same document each time.
    let fresh = 0;
    const perPage = async (first: number, computed: boolean) => {
      let fewest = Number.POSITIVE_INFINITY;
      for (let i = 0; i < 5; i++) {
        const query = computed ? PAGE_QUERY.replace('query Page(', `query Page${++fresh}(`) : PAGE_QUERY;
        const before = await scrape();
        await post(server.url, JSON.stringify({ query, variables: { first } }));
        fewest = Math.min(fewest, (await scrape()) - before - scrapeCost);
      }
      return fewest;
    };
    // The server's own background work (job runner, streaming sweep, key revocation) runs
    // statements too: its rate, measured idle, is taken out of the figure under load.
    const idleStart = await scrape();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const backgroundPerSecond = ((await scrape()) - idleStart - scrapeCost) / 3;
    console.log(`statements ${NAME}: ${backgroundPerSecond.toFixed(1)}/s in the background, idle`);
    for (const computed of [true, false]) {
      const small = await perPage(10, computed);
      const large = await perPage(page, computed);
      const how = computed ? 'computed' : 'repeated';
      console.log(`statements ${NAME}: page of 10 → ${small}, page of ${page} → ${large} (${how})`);
      if (small !== large) {
        console.log(`MISMATCH ${NAME}: statements grow with the page size`);
        failed = true;
      }
      if (large > 4) {
        console.log(`MISS ${NAME}: a page ${how} runs ${large} statements, over the target of 4`);
      }
    }

    if (profileDir) {
      // A profile of the page alone: no floor or trivial load mixed into it.
      await load(server.url, body, connections, duration);
      return failed ? 1 : 0;
    }
    const trivialBody = JSON.stringify({ query: '{ __typename }' });
    // Warm-up: JIT and caches of both servers.
    await load(server.url, body, connections, 2);
    await load(floor.url, body, connections, 2);
    await load(server.url, trivialBody, connections, 2);
    const pageRps: number[] = [];
    const floorRps: number[] = [];
    const trivialRps: number[] = [];
    const perFloor: number[] = [];
    const perTrivial: number[] = [];
    const perRequest: number[] = [];
    const pageCpu: number[] = [];
    const floorCpuMs: number[] = [];
    for (let r = 0; r < runs; r++) {
      const floorCpu = cpuSeconds(floor.child.pid);
      const f = await load(floor.url, body, connections, duration);
      const floorMs = ((cpuSeconds(floor.child.pid) - floorCpu) * 1000) / f.total;
      const serverCpu = cpuSeconds(server.child.pid);
      const outcomesBefore = await cacheOutcomes(server.url);
      const before = await scrape();
      const started = performance.now();
      const p = await load(server.url, body, connections, duration);
      const background = (backgroundPerSecond * (performance.now() - started)) / 1000;
      perRequest.push(((await scrape()) - before - scrapeCost - background) / p.total);
      const outcomesAfter = await cacheOutcomes(server.url);
      const answered = Object.entries(outcomesAfter)
        .map(([outcome, n]) => `${n - (outcomesBefore[outcome] ?? 0)} ${outcome}`)
        .join(', ');
      console.log(`cache ${NAME} ${r + 1}: ${answered || 'off'}`);
      const pageMs = ((cpuSeconds(server.child.pid) - serverCpu) * 1000) / p.total;
      pageCpu.push(pageMs);
      floorCpuMs.push(floorMs);
      const t = await load(server.url, trivialBody, connections, duration);
      pageRps.push(p.rps);
      floorRps.push(f.rps);
      trivialRps.push(t.rps);
      perFloor.push(p.rps / f.rps);
      perTrivial.push(p.rps / t.rps);
      console.log(
        `run ${NAME} ${r + 1}: page ${Math.round(p.rps)} req/s (p99 ${p.p99} ms, ${pageMs.toFixed(2)} ms CPU each), floor ${Math.round(f.rps)} req/s (p99 ${f.p99} ms, ${floorMs.toFixed(2)} ms CPU each), trivial ${Math.round(t.rps)} req/s (p99 ${t.p99} ms)`,
      );
    }
    for (const [figure, values, unit] of [
      ['page-rps', pageRps, 'req/s'],
      ['floor-rps', floorRps, 'req/s'],
      ['trivial-rps', trivialRps, 'req/s'],
      ['page-per-floor', perFloor, '×'],
      ['page-per-trivial', perTrivial, '×'],
      ['statements-per-request', perRequest, 'statements'],
      ['page-cpu-ms', pageCpu, 'ms'],
      ['floor-cpu-ms', floorCpuMs, 'ms'],
    ] as const) {
      const s = statsOf(values);
      report(NAME, figure, s.median, unit, s);
    }
  } finally {
    floor?.child.kill('SIGTERM');
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}
