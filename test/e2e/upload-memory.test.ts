import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { gql, ok } from './harness.js';
import { killSpawned, spawnServer } from './process.js';
import { RUN, START_INGESTION, uploadList } from './upload.js';

const dirs: string[] = [];
afterAll(() => {
  killSpawned();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function kib(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
}

/** `rows` CSV rows, made as the request body asks for them. */
function* csv(rows: number): Generator<Buffer> {
  let piece = 'email,points,vip,since,tier\n';
  for (let i = 0; i < rows; i++) {
    piece += `member${i}@example.com,${i % 9973},${i % 2 === 0},2026-05-${String((i % 28) + 1).padStart(2, '0')},tier-${i % 5}\n`;
    if (piece.length >= 65_536) {
      yield Buffer.from(piece);
      piece = '';
    }
  }
  yield Buffer.from(piece);
}

async function waitForRun(url: string, id: string) {
  for (;;) {
    const run = ok(await gql(url, RUN, { id })).node;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(run.status)) return run;
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('streams a 30 MB upload to the parser: the server grows by under 100 MB, SQLite page cache included', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'segql-upload-'));
  dirs.push(dataDir);
  const server = await spawnServer(dataDir);
  const pid = server.child.pid!;
  const created = ok(
    await gql(
      server.url,
      `mutation { createExternalAudience(input: { name: "Big", namespace: "crm", fields: [
        { name: "email", type: STRING, identityNamespace: "email" }, { name: "points", type: NUMBER },
        { name: "vip", type: BOOLEAN }, { name: "since", type: DATE }, { name: "tier", type: STRING }] }) { id } }`,
    ),
  ).createExternalAudience;
  // A small run first: the worker thread and its modules are loaded once, whatever the file.
  const warm = await uploadList(server.url, START_INGESTION, { id: created.id }, { name: 'w.csv', chunks: csv(100) });
  expect((await waitForRun(server.url, warm.body.data.startExternalAudienceIngestion.id)).status).toBe('SUCCEEDED');
  // Forget the peak so far: VmHWM then measures this upload and its run alone.
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
  const before = kib(pid, 'VmRSS');
  const rows = 600_000;
  let sent = 0;
  async function* counted() {
    for (const chunk of csv(rows)) {
      sent += chunk.length;
      yield chunk;
    }
  }
  const res = await uploadList(server.url, START_INGESTION, { id: created.id }, { name: 'big.csv', chunks: counted() });
  expect(res.body.errors).toBeUndefined();
  expect(sent).toBeGreaterThan(30 * 1024 * 1024);
  const run = await waitForRun(server.url, res.body.data.startExternalAudienceIngestion.id);
  expect(run).toMatchObject({ status: 'SUCCEEDED', recordsRead: rows, recordsImported: rows, recordsFailed: 0 });
  const growthMb = (kib(pid, 'VmHWM') - before) / 1024;
  expect(growthMb, `the server grew by ${growthMb.toFixed(1)} MB`).toBeLessThan(100);
  server.child.kill('SIGTERM');
  await server.exited;
}, 180_000);
