import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { gql, ok } from './harness.js';
import { killSpawned, spawnServer } from './process.js';

const dataDir = mkdtempSync(join(tmpdir(), 'segql-crash-'));
afterAll(() => {
  killSpawned();
  rmSync(dataDir, { recursive: true, force: true });
});

const AT = '2026-11-28T12:00:00.000Z';
const env = { SEGQL_SEGMENT_CHUNK_SIZE: '10' };
const EXPRESSIONS = [
  'loyalty.tier.matches("(?i)^g.*d$") and xEvent[eventType = "none"].count() = 0',
  'loyalty.points > 500 and not (loyalty.tier = "gold")',
  'inSegment("Crash 0") or loyalty.points < 10',
  // Enough regex work (a JS call per profile) that the job is still running when it is killed.
  ...Array.from(
    { length: 12 },
    (_, i) => `loyalty.tier.matches("(?i)^(g|s).*${'d'.repeat((i % 2) + 1)}?r?$") or loyalty.points = ${i}`,
  ),
];

it('re-runs a segment job killed mid-way to SUCCEEDED, with the memberships of an uninterrupted run', async () => {
  let server = await spawnServer(dataDir, env);
  for (let k = 0; k < 4; k++) {
    const records = Array.from({ length: 8000 }, (_, i) => ({
      identities: [{ namespace: 'email', id: `k${k}-${i}` }],
      attributes: { loyalty: { tier: ['gold', 'silver', 'bronze'][i % 3], points: (i * 37) % 1000 } },
    }));
    ok(
      await gql(server.url, 'mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', {
        r: records,
      }),
    );
  }
  const defs: { id: string; audience: { id: string } }[] = [];
  for (const [i, value] of EXPRESSIONS.entries()) {
    defs.push(
      ok(
        await gql(
          server.url,
          'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id audience { id } } }',
          {
            i: { name: `Crash ${i}`, expression: { value } },
          },
        ),
      ).createSegmentDefinition,
    );
  }
  const job = ok(
    await gql(server.url, 'mutation($at: DateTime) { createSegmentJob(input: { all: true, at: $at }) { id } }', {
      at: AT,
    }),
  ).createSegmentJob;
  const WATCH = 'query($id: ID!) { segmentJob(id: $id) { status attempts progress { done total } } }';
  let state = ok(await gql(server.url, WATCH, { id: job.id })).segmentJob;
  while ((state.status === 'QUEUED' || state.progress.done === 0) && !['SUCCEEDED', 'FAILED'].includes(state.status)) {
    state = ok(await gql(server.url, WATCH, { id: job.id })).segmentJob;
  }
  expect(state.status).toBe('PROCESSING');
  expect(state.progress.done).toBeLessThan(state.progress.total);
  server.child.kill('SIGKILL');
  await server.exited;

  server = await spawnServer(dataDir, env);
  for (;;) {
    state = ok(await gql(server.url, WATCH, { id: job.id })).segmentJob;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(state.status)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(state).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
  for (const [i, def] of defs.entries()) {
    const exact = ok(
      await gql(
        server.url,
        'query($x: String!, $at: DateTime) { profilesMatching(expression: $x, at: $at) { totalCount } }',
        {
          x: EXPRESSIONS[i],
          at: AT,
        },
      ),
    ).profilesMatching.totalCount;
    const audience = ok(
      await gql(
        server.url,
        'query($id: ID!) { audience(id: $id) { size realized: members(statuses: [REALIZED]) { totalCount } all: members { totalCount } } }',
        {
          id: def.audience.id,
        },
      ),
    ).audience;
    expect(exact).toBeGreaterThan(0);
    expect(audience).toEqual({ size: exact, realized: { totalCount: exact }, all: { totalCount: exact } });
  }
  server.child.kill('SIGTERM');
  expect(await server.exited).toBe(0);
}, 120_000);
