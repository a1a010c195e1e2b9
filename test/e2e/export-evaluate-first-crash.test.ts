/**
 * An evaluateFirst export whose server is killed while its segment job runs: after the restart
 * the segment job runs again at the same instant and the export follows it, once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { databaseFile } from '../../src/config.js';
import { openDatabase } from '../../src/db/index.js';
import { seedDemoData } from '../../src/domain/demo-data.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { gql, ok } from './harness.js';
import { killSpawned, spawnServer } from './process.js';

const dataDir = mkdtempSync(join(tmpdir(), 'segql-evalfirst-crash-'));
afterAll(() => {
  killSpawned();
  rmSync(dataDir, { recursive: true, force: true });
});

const PROFILES = 100_000;
const SEEDED = 10_000;
const JOB = `query($id: ID!) { exportJob(id: $id) { status attempts error at files { rows }
  segmentJob { id status attempts at } } }`;

it('re-runs the segment job at the same instant after a SIGKILL, then the export once', {
  timeout: 240_000,
}, async () => {
  const conn = openDatabase(databaseFile(dataDir));
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  // A tenth of them through the ingest code (which also records the profile schema), the rest
  // copies made in SQL with identities of their own: seeding all 100 k took the ingest code
  // most of this file's time.
  seedDemoData(conn, sandboxId, { profiles: SEEDED, eventsPerProfile: 0, seed: 11 });
  const { lo, hi } = conn.sqlite
    .prepare('SELECT min(id) AS lo, max(id) AS hi FROM profiles WHERE sandbox_id = ?')
    .get(sandboxId) as { lo: number; hi: number };
  expect(hi - lo + 1).toBe(SEEDED);
  conn.sqlite.exec('BEGIN IMMEDIATE');
  for (let copy = 1; copy < PROFILES / SEEDED; copy++) {
    const shift = copy * SEEDED;
    conn.sqlite
      .prepare(
        `INSERT INTO profiles (id, sandbox_id, attributes, created_at, updated_at)
         SELECT id + ?, sandbox_id, attributes, created_at, updated_at FROM profiles WHERE sandbox_id = ? AND id <= ?`,
      )
      .run(shift, sandboxId, hi);
    conn.sqlite
      .prepare(
        `INSERT INTO identities (sandbox_id, namespace, value, profile_id, created_at)
         SELECT sandbox_id, namespace, value || '.' || ?, profile_id + ?, created_at FROM identities
         WHERE sandbox_id = ? AND profile_id <= ?`,
      )
      .run(copy, shift, sandboxId, hi);
  }
  conn.sqlite.exec('COMMIT');
  expect(conn.sqlite.prepare('SELECT count(*) FROM profiles WHERE sandbox_id = ?').pluck().get(sandboxId)).toBe(
    PROFILES,
  );
  conn.close();

  let server = await spawnServer(dataDir);
  const def = ok(
    await gql(
      server.url,
      'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id audience { id } } }',
      { i: { name: 'Gold', expression: { value: 'loyalty.tier = "gold"' }, lifecycleState: 'PUBLISHED' } },
    ),
  ).createSegmentDefinition;
  const created = ok(
    await gql(server.url, 'mutation($i: CreateExportJobInput!) { createExportJob(input: $i) { id } }', {
      i: {
        audiences: [{ audienceId: def.audience.id }],
        evaluateFirst: true,
        destination: { datasetName: 'gold', format: 'NDJSON' },
      },
    }),
  ).createExportJob;
  let state = ok(await gql(server.url, JOB, { id: created.id })).exportJob;
  while (state.segmentJob.status === 'QUEUED') state = ok(await gql(server.url, JOB, { id: created.id })).exportJob;
  // Killed while its segment job runs (over 100 k profiles it takes well over a poll).
  expect(state.segmentJob.status).toBe('PROCESSING');
  expect(state.status).toBe('QUEUED');
  server.child.kill('SIGKILL');
  await server.exited;

  server = await spawnServer(dataDir);
  for (;;) {
    state = ok(await gql(server.url, JOB, { id: created.id })).exportJob;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(state.status)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(state).toMatchObject({
    status: 'SUCCEEDED',
    error: null,
    attempts: 1,
    segmentJob: { status: 'SUCCEEDED', attempts: 2, at: state.at },
  });
  const size = ok(await gql(server.url, 'query($id: ID!) { audience(id: $id) { size } }', { id: def.audience.id }))
    .audience.size;
  expect(size).toBeGreaterThan(0);
  expect(state.files[0].rows).toBe(size);
});
