import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { databaseFile } from '../../src/config.js';
import { openDatabase } from '../../src/db/index.js';
import { createManualAudience } from '../../src/domain/audiences.js';
import { encodeGlobalId } from '../../src/domain/ids.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { gql, ok } from './harness.js';
import { killSpawned, spawnServer } from './process.js';

const dataDir = mkdtempSync(join(tmpdir(), 'segql-export-crash-'));
afterAll(() => {
  killSpawned();
  rmSync(dataDir, { recursive: true, force: true });
});

// Enough rows that the export runs for seconds and the kill lands mid-way (it comes at a tenth);
// 200,000 took the file over a minute, most of it the re-run writing them all again.
const MEMBERS = 50_000;
const KILL_AT = MEMBERS / 10;
const WATCH = `query($id: ID!) { exportJob(id: $id) { status attempts error progress { done total }
  files { path rows bytes sha256 } destination { dataset { id } } } }`;

/** Every file name under the exports folder, at any depth. */
const exportFiles = () => {
  try {
    return readdirSync(join(dataDir, 'exports'), { recursive: true }).map(String);
  } catch {
    return [];
  }
};

it('re-runs an export killed mid-way to SUCCEEDED; no partial file ever has a final name', {
  timeout: 240_000,
}, async () => {
  // The data is written straight into the database file before the server starts: profiles with
  // one identity each are all an export of members reads, and SQL makes them in a fraction of
  // the time the ingest code takes.
  const conn = openDatabase(databaseFile(dataDir));
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  conn.sqlite.exec('BEGIN IMMEDIATE');
  conn.sqlite
    .prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
       INSERT INTO profiles (sandbox_id, attributes, created_at, updated_at)
       SELECT ?, jsonb(json_object('loyalty', json_object('points', i))), 1, 1 FROM n`,
    )
    .run(MEMBERS, sandboxId);
  conn.sqlite
    .prepare(
      `INSERT INTO identities (sandbox_id, namespace, value, profile_id, created_at)
       SELECT sandbox_id, 'email', 'user' || id || '@example.com', id, 1 FROM profiles WHERE sandbox_id = ?`,
    )
    .run(sandboxId);
  conn.sqlite.exec('COMMIT');
  const audience = await createManualAudience(conn, sandboxId, { name: 'Everyone' });
  conn.sqlite
    .prepare(
      `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at)
       SELECT ?, ?, id, 'REALIZED', 1, 1 FROM profiles WHERE sandbox_id = ?`,
    )
    .run(sandboxId, audience.id, sandboxId);
  conn.close();

  let server = await spawnServer(dataDir);
  const job = ok(
    await gql(server.url, 'mutation($i: CreateExportJobInput!) { createExportJob(input: $i) { id } }', {
      i: {
        audiences: [{ audienceId: encodeGlobalId('Audience', audience.id) }],
        destination: { datasetName: 'all', format: 'CSV' },
      },
    }),
  ).createExportJob;
  let state = ok(await gql(server.url, WATCH, { id: job.id })).exportJob;
  const seen = new Set<string>();
  while (state.status === 'QUEUED' || (state.status === 'PROCESSING' && state.progress.done < KILL_AT)) {
    for (const f of exportFiles()) seen.add(f);
    state = ok(await gql(server.url, WATCH, { id: job.id })).exportJob;
  }
  expect(state.status).toBe('PROCESSING');
  expect(state.progress.total).toBe(MEMBERS);
  expect(state.progress.done).toBeLessThan(MEMBERS);
  server.child.kill('SIGKILL');
  await server.exited;
  for (const f of exportFiles()) seen.add(f);
  // While it ran and after the kill: only temporary names.
  expect([...seen].filter((f) => f.endsWith('.csv')).length).toBeGreaterThan(0);
  expect([...seen].filter((f) => /(^|\/)export-\d+\.csv$/.test(f) || f.endsWith('/manifest.json'))).toEqual([]);

  server = await spawnServer(dataDir);
  for (;;) {
    state = ok(await gql(server.url, WATCH, { id: job.id })).exportJob;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(state.status)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(state).toMatchObject({ status: 'SUCCEEDED', attempts: 2, progress: { done: MEMBERS, total: MEMBERS } });
  expect(state.files).toHaveLength(1);
  expect(state.files[0].rows).toBe(MEMBERS);
  const remaining = exportFiles();
  expect(remaining.filter((f) => f.includes('.tmp-'))).toEqual([]);
  const onDisk = remaining.find((f) => f.endsWith(state.files[0].path))!;
  const bytes = readFileSync(join(dataDir, 'exports', onDisk));
  expect(bytes.length).toBe(state.files[0].bytes);
  expect(createHash('sha256').update(bytes).digest('hex')).toBe(state.files[0].sha256);
  // Header + one line per member, each member once: the re-run started clean.
  const lines = bytes.toString('utf8').trimEnd().split('\r\n');
  expect(lines).toHaveLength(MEMBERS + 1);
  const records = ok(
    await gql(server.url, 'query($id: ID!) { dataset(id: $id) { records(first: 1) { totalCount } } }', {
      id: state.destination.dataset.id,
    }),
  ).dataset.records.totalCount;
  expect(records).toBe(MEMBERS);
});
