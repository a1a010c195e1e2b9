/**
 * `npm run bench -- import [--rows 1000000] [--profiles 100000] [--runs 1]`
 *
 * An external audience list end to end (docs/performance.md `import`): the real server in this
 * process on a scratch data directory with `--profiles` demo profiles (no events), a CSV of
 * `--rows` rows (`user<i>@example.com` with four typed columns, so the first `--profiles` rows
 * match a profile) generated as it is sent, uploaded as a GraphQL multipart request, and the run
 * watched until it ends.
 *
 * - `rows-per-s`: rows / (upload start → run SUCCEEDED), the whole path: HTTP, staging, parse,
 *   identity match, memberships.
 * - `rss-growth-mb`: the process's peak resident memory during a run minus before it (sampled
 *   every 20 ms); flat means it does not grow with the file.
 * - context: `upload-ms` (until the mutation answered) and the run's counts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { seedDemoData } from '../src/domain/demo-data.js';
import { createExternalAudience } from '../src/domain/external-audiences/external-audiences.js';
import { encodeGlobalId } from '../src/domain/ids.js';
import { DEFAULT_SANDBOX, ensureSandbox } from '../src/domain/sandboxes.js';
import { startServer } from '../src/server.js';
import { intArg, parseArgs, report, statsOf } from './lib.js';

const NAME = 'import';

/** The CSV, generated in 64 KiB pieces as the request body asks for them. */
function* csvChunks(rows: number): Generator<Buffer> {
  let piece = 'email,points,vip,since,tier\n';
  for (let i = 0; i < rows; i++) {
    piece += `user${i}@example.com,${i % 5000},${i % 3 === 0},2026-0${(i % 9) + 1}-1${i % 10},${i % 7 === 0 ? 'gold' : 'silver'}\n`;
    if (piece.length >= 65_536) {
      yield Buffer.from(piece);
      piece = '';
    }
  }
  if (piece) yield Buffer.from(piece);
}

async function upload(url: string, id: string, rows: number): Promise<{ runId: string }> {
  const boundary = '----segqlbench';
  const query =
    'mutation ($id: ID!, $file: File) { startExternalAudienceIngestion(id: $id, file: $file, mode: REPLACE) { id } }';
  const head =
    `--${boundary}\r\ncontent-disposition: form-data; name="operations"\r\n\r\n${JSON.stringify({ query, variables: { id, file: null } })}\r\n` +
    `--${boundary}\r\ncontent-disposition: form-data; name="map"\r\n\r\n{"0":["variables.file"]}\r\n` +
    `--${boundary}\r\ncontent-disposition: form-data; name="0"; filename="list.csv"\r\ncontent-type: text/csv\r\n\r\n`;
  async function* body() {
    yield Buffer.from(head);
    yield* csvChunks(rows);
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  }
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    body: Readable.toWeb(Readable.from(body())),
    duplex: 'half',
  } as RequestInit);
  const json = (await res.json()) as { data?: { startExternalAudienceIngestion: { id: string } }; errors?: unknown };
  if (!json.data?.startExternalAudienceIngestion) throw new Error(`upload failed: ${JSON.stringify(json.errors)}`);
  return { runId: json.data.startExternalAudienceIngestion.id };
}

interface RunState {
  status: string;
  error: string | null;
  recordsRead: number;
  recordsImported: number;
  recordsMatched: number;
  recordsFailed: number;
}

async function waitForRun(url: string, id: string): Promise<RunState> {
  for (;;) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query:
          'query ($id: ID!) { node(id: $id) { ... on IngestionRun { status error recordsRead recordsImported recordsMatched recordsFailed } } }',
        variables: { id },
      }),
    });
    const run = ((await res.json()) as { data: { node: RunState } }).data.node;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(run.status)) return run;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const rows = intArg(args, 'rows', 1_000_000);
  const profiles = intArg(args, 'profiles', 100_000);
  const runs = intArg(args, 'runs', 1);
  const dataDir = mkdtempSync(join(tmpdir(), 'segql-import-'));
  const server = await startServer({
    port: 0,
    dataDir,
    limits: { maxUploadBytes: 1024 ** 3, streamingSweepMs: 600_000 },
  });
  try {
    const conn = server.sqlite!;
    const sandboxId = (await ensureSandbox(conn, DEFAULT_SANDBOX)).id;
    seedDemoData(conn, sandboxId, { profiles, eventsPerProfile: 0, seed: 42 });
    const external = await createExternalAudience(conn, sandboxId, {
      name: 'bench list',
      namespace: 'bench',
      fields: [
        { name: 'email', type: 'STRING', identityNamespace: 'email' },
        { name: 'points', type: 'NUMBER', identityNamespace: null },
        { name: 'vip', type: 'BOOLEAN', identityNamespace: null },
        { name: 'since', type: 'DATE', identityNamespace: null },
        { name: 'tier', type: 'STRING', identityNamespace: null },
      ],
    });
    const id = encodeGlobalId('ExternalAudience', external.id);
    const rates: number[] = [];
    const growth: number[] = [];
    let failed = 0;
    for (let r = 0; r < runs; r++) {
      global.gc?.();
      const before = process.memoryUsage().rss;
      let peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss);
      }, 20);
      const started = performance.now();
      const { runId } = await upload(server.url, id, rows);
      const uploaded = performance.now() - started;
      const state = await waitForRun(server.url, runId);
      const ms = performance.now() - started;
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage().rss);
      const expectedMatched = Math.min(rows, profiles);
      if (state.status !== 'SUCCEEDED' || state.recordsImported !== rows || state.recordsMatched !== expectedMatched) {
        console.log(
          `MISMATCH ${NAME} run ${r + 1}: ${JSON.stringify(state)}; expected ${rows} imported, ${expectedMatched} matched`,
        );
        failed++;
      }
      rates.push((rows / ms) * 1000);
      growth.push((peak - before) / 1024 ** 2);
      console.log(
        `context ${NAME} run ${r + 1}: upload-ms ${Math.round(uploaded)}, total-ms ${Math.round(ms)}, read ${state.recordsRead}, imported ${state.recordsImported}, matched ${state.recordsMatched}, failed ${state.recordsFailed}`,
      );
    }
    const rate = statsOf(rates);
    report(NAME, 'rows-per-s', rate.median, 'rows/s', rate);
    const mem = statsOf(growth);
    report(NAME, 'rss-growth-mb', mem.median, 'MB', mem);
    return failed > 0 ? 1 : 0;
  } finally {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
