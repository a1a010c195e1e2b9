import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { gql, ok } from './harness.js';
import { killSpawned, spawnServer } from './process.js';
import { RUN, START_INGESTION, uploadList } from './upload.js';

const dataDir = mkdtempSync(join(tmpdir(), 'segql-ingest-crash-'));
afterAll(() => {
  killSpawned();
  rmSync(dataDir, { recursive: true, force: true });
});

function* csv(rows: number): Generator<Buffer> {
  let piece = 'email,points\n';
  for (let i = 0; i < rows; i++) {
    piece += `crash${i}@example.com,${i % 100 === 7 ? 'x' : i}\n`;
    if (piece.length >= 65_536) {
      yield Buffer.from(piece);
      piece = '';
    }
  }
  yield Buffer.from(piece);
}

it('re-runs an ingestion run killed mid-way from its staged file, to the counts of an uninterrupted run', async () => {
  let server = await spawnServer(dataDir);
  const created = ok(
    await gql(
      server.url,
      `mutation { createExternalAudience(input: { name: "Crash", namespace: "crm", fields: [
        { name: "email", type: STRING, identityNamespace: "email" }, { name: "points", type: NUMBER }] }) { id audience { id } } }`,
    ),
  ).createExternalAudience;
  const rows = 400_000;
  const res = await uploadList(server.url, START_INGESTION, { id: created.id }, { name: 'c.csv', chunks: csv(rows) });
  const runId = res.body.data.startExternalAudienceIngestion.id;
  // Kill it once it has read part of the file, before it can finish.
  for (;;) {
    const run = ok(
      await gql(
        server.url,
        `query ($id: ID!) { node(id: $id) { ... on IngestionRun { status progress { done total } } } }`,
        { id: runId },
      ),
    ).node;
    expect(run.status).not.toBe('SUCCEEDED');
    if (run.status === 'PROCESSING' && run.progress.done > 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  server.child.kill('SIGKILL');
  await server.exited;
  server = await spawnServer(dataDir);
  let run: any;
  for (;;) {
    run = ok(await gql(server.url, RUN, { id: runId })).node;
    if (['SUCCEEDED', 'FAILED'].includes(run.status)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(run).toMatchObject({
    status: 'SUCCEEDED',
    recordsRead: rows,
    recordsImported: rows - rows / 100,
    recordsMatched: 0,
    recordsFailed: rows / 100,
  });
  expect(run.errors.totalCount).toBe(rows / 100);
  const attempts = ok(
    await gql(server.url, `query ($id: ID!) { node(id: $id) { ... on IngestionRun { attempts } } }`, { id: runId }),
  ).node;
  expect(attempts.attempts).toBe(2);
  // The staged file is removed right after the run commits (the worker does it once the commit is in).
  const staged = () => readdirSync(join(dataDir, 'uploads')).filter((f) => f.endsWith('.upload'));
  for (let i = 0; i < 50 && staged().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  expect(staged()).toEqual([]);
  server.child.kill('SIGTERM');
  await server.exited;
}, 240_000);
