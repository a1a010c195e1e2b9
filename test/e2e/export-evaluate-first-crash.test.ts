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
const JOB = `query($id: ID!) { exportJob(id: $id) { status attempts error at files { rows }
  segmentJob { id status attempts at } } }`;

it('re-runs the segment job at the same instant after a SIGKILL, then the export once', {
  timeout: 240_000,
}, async () => {
  const conn = openDatabase(databaseFile(dataDir));
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  seedDemoData(conn, sandboxId, { profiles: PROFILES, eventsPerProfile: 0, seed: 11 });
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
