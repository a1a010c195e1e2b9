/**
 * `npm run bench -- search [--audiences 10000] [--fields 2000] [--queries 2000] [--creates 200]`
 *
 * Segment search (docs/api.md "Search"): a scratch database with `--audiences` audiences
 * (generated names, descriptions, labels, folders) and `--fields` tenant schema fields.
 *
 * - `entities-p50-ms` / `entities-p99-ms`: searchEntities (first 20, domain call on the server's
 *   connection) over a mix of query forms: words, AND/OR/NOT, field:word, phrases, proximity,
 *   prefix*, te?t, fuzzy~1/~2. Target p99 ≤ 10 ms.
 * - `live-p50-ms` / `live-p99-ms`: from a createAudience mutation returning to an open
 *   searchResults subscription (graphql-ws) receiving its ADDED event. Target p99 ≤ 50 ms.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { databaseFile } from '../src/config.js';
import { openDatabase } from '../src/db/index.js';
import { writeUnit } from '../src/db/unit.js';
import { insertAudience } from '../src/domain/audiences.js';
import { prng } from '../src/domain/demo-data.js';
import { updateProfileSchema } from '../src/domain/profile-schema.js';
import { DEFAULT_SANDBOX, ensureSandbox } from '../src/domain/sandboxes.js';
import { searchEntities } from '../src/domain/search/search.js';
import { startServer } from '../src/server.js';
import { intArg, parseArgs, report, statsOf } from './lib.js';

const NAME = 'search';
const WORDS = (
  'churn loyal shopper newsletter reader winback lapsed frequent buyer premium trial mobile desktop ' +
  'spring summer autumn winter campaign retention discount coupon cart abandon browse oslo berlin paris ' +
  'gold silver bronze platinum vip student senior family travel sport outdoor fashion beauty electronics'
).split(' ');
const QUERIES = [
  'churn',
  'loyal AND shopper',
  'winback OR lapsed',
  'campaign NOT summer',
  'name:premium',
  'description:"cart abandon"',
  '"frequent buyer"~3',
  'newslet*',
  'sh?pper',
  'chrun~1',
  'platnum~2',
  '(gold OR silver) AND -trial',
  'labels:vip',
  'path:score*',
];

function pick<T>(random: () => number, xs: readonly T[]): T {
  return xs[Math.floor(random() * xs.length)]!;
}

function p(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const audiences = intArg(args, 'audiences', 10_000);
  const fields = intArg(args, 'fields', 2_000);
  const queries = intArg(args, 'queries', 2_000);
  const creates = intArg(args, 'creates', 200);
  const dataDir = mkdtempSync(join(tmpdir(), 'segql-bench-search-'));
  try {
    const random = prng(17);
    const setup = openDatabase(databaseFile(dataDir));
    const sandbox = await ensureSandbox(setup, DEFAULT_SANDBOX);
    const started = performance.now();
    await writeUnit(setup, async (tx) => {
      const folders = Array.from(
        { length: 20 },
        (_, i) =>
          tx.sqlite
            .prepare('INSERT INTO folders (sandbox_id, name, created_at) VALUES (?, ?, ?) RETURNING id')
            .get(sandbox.id, `Folder ${pick(random, WORDS)} ${i}`, Date.now()) as { id: number },
      );
      for (let i = 0; i < audiences; i++) {
        const words = Array.from({ length: 3 }, () => pick(random, WORDS));
        await insertAudience(
          tx,
          sandbox.id,
          {
            name: `${words.join(' ')} ${i}`,
            description: Array.from({ length: 8 }, () => pick(random, WORDS)).join(' '),
            origin: 'MANUAL',
            labels: [pick(random, WORDS)],
            folderId: random() < 0.5 ? pick(random, folders).id : null,
          },
          Date.now(),
        );
      }
    });
    await updateProfileSchema(
      setup,
      sandbox.id,
      Array.from({ length: fields }, (_, i) => ({
        class: 'profile' as const,
        path: `_tenant.${pick(random, WORDS)}${i}.score${i % 7}`,
        type: 'number',
        description: `${pick(random, WORDS)} ${pick(random, WORDS)} model output`,
      })),
    );
    setup.close();
    console.log(
      `context ${NAME}: ${audiences} audiences and ${fields} schema fields indexed in ${Math.round(performance.now() - started)} ms`,
    );

    const server = await startServer({ port: 0, dataDir });
    const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
    try {
      const conn = server.sqlite!;
      const times: number[] = [];
      for (let i = 0; i < queries + 200; i++) {
        const q = QUERIES[i % QUERIES.length]!;
        const ns = q.startsWith('path:') ? 'schema' : 'segql';
        const t0 = performance.now();
        await (await searchEntities(conn, sandbox.id, ns, q, { first: 20 })).totalCount();
        if (i >= 200) times.push(performance.now() - t0);
      }
      const sorted = [...times].sort((a, b) => a - b);
      const span = statsOf(times);
      report(NAME, 'entities-p50-ms', p(sorted, 0.5), 'ms', span);
      report(NAME, 'entities-p99-ms', p(sorted, 0.99), 'ms', span);

      const arrivals = new Map<string, number>();
      let ready: () => void = () => {};
      const subscribed = new Promise<void>((resolve) => {
        ready = resolve;
      });
      client.subscribe(
        {
          query:
            'subscription { searchResults(query: "benchlive*", first: 100) { type hit { entity { ... on Audience { name } } } } }',
        },
        {
          next: (m) => {
            const e = (m.data as any).searchResults;
            if (e.type === 'RESULTS') ready();
            if (e.type === 'ADDED') arrivals.set(e.hit.entity.name, performance.now());
          },
          error: (e) => {
            throw e;
          },
          complete: () => {},
        },
      );
      await subscribed;
      const latencies: number[] = [];
      for (let i = 0; i < creates; i++) {
        const name = `benchlive${i}`;
        const res = await fetch(server.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            query: 'mutation($i: CreateAudienceInput!) { createAudience(input: $i) { id } }',
            variables: { i: { name, description: 'live' } },
          }),
        });
        const body = (await res.json()) as { data: { createAudience: { id: string } } };
        const returned = performance.now();
        const deadline = returned + 2000;
        while (!arrivals.has(name) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
        latencies.push((arrivals.get(name) ?? Number.NaN) - returned);
        // Deleted again, so every new audience enters the watched window.
        await fetch(server.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            query: 'mutation($id: ID!) { deleteAudience(id: $id) }',
            variables: { id: body.data.createAudience.id },
          }),
        });
      }
      const live = [...latencies].sort((a, b) => a - b);
      const liveSpan = statsOf(latencies);
      report(NAME, 'live-p50-ms', p(live, 0.5), 'ms', liveSpan);
      report(NAME, 'live-p99-ms', p(live, 0.99), 'ms', liveSpan);
      return latencies.some((l) => Number.isNaN(l)) ? 1 : 0;
    } finally {
      await client.dispose();
      await server.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
