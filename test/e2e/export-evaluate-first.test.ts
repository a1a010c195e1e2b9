/**
 * evaluateFirst: an export that runs a segment job for its audiences at its own instant first,
 * then writes what that job left; through the real server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

const INGEST = 'mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }';
const EXPORT = `mutation($i: CreateExportJobInput!) { createExportJob(input: $i) {
  id status evaluateFirst at segmentJob { id status at } } }`;
const JOB = `query($id: ID!) { exportJob(id: $id) { id status error at evaluateFirst notes
  files { path rows } destination { dataset { id files { name } } }
  segmentJob { id status at segmentDefinitions { id } } } }`;
const SEGMENT_JOB = 'query($id: ID!) { segmentJob(id: $id) { id status } }';
const TERMINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

const gqlIn = (sandbox: string, query: string, variables?: Record<string, unknown>) =>
  server.gql(query, variables, { 'x-sandbox-name': sandbox });

function person(sandbox: string, i: number, tier: string) {
  return {
    identities: [{ namespace: 'email', id: `${sandbox}${i}@example.com` }],
    attributes: { loyalty: { tier, points: i } },
  };
}

const tierOf = (i: number) => (i % 2 === 0 ? 'gold' : 'silver');

async function waitFor(sandbox: string, query: string, id: string, field: string) {
  for (;;) {
    const job = ok(await gqlIn(sandbox, query, { id }))[field];
    if (TERMINAL.includes(job.status)) return job;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function runSegmentJob(sandbox: string, input: Record<string, unknown>) {
  const job = ok(
    await gqlIn(sandbox, 'mutation($i: CreateSegmentJobInput!) { createSegmentJob(input: $i) { id } }', { i: input }),
  ).createSegmentJob;
  return job.id as string;
}

/** A sandbox of `n` profiles, every even one gold, with a published "Gold" audience evaluated once. */
async function setupSandbox(sandbox: string, n: number) {
  ok(await server.gql('mutation($n: String!) { createSandbox(name: $n) { name } }', { n: sandbox }));
  for (let i = 0; i < n; i += 5000) {
    const r = Array.from({ length: Math.min(5000, n - i) }, (_, k) => person(sandbox, i + k, tierOf(i + k)));
    ok(await gqlIn(sandbox, INGEST, { r }));
  }
  const def = ok(
    await gqlIn(
      sandbox,
      'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id audience { id } } }',
      { i: { name: 'Gold', expression: { value: 'loyalty.tier = "gold"' }, lifecycleState: 'PUBLISHED' } },
    ),
  ).createSegmentDefinition;
  const first = await waitFor(sandbox, SEGMENT_JOB, await runSegmentJob(sandbox, { all: true }), 'segmentJob');
  expect(first.status).toBe('SUCCEEDED');
  return { audienceId: def.audience.id as string, definitionId: def.id as string };
}

async function exportRows(sandbox: string, job: any): Promise<any[]> {
  const base = server.url.replace(/\/graphql$/, '');
  const res = await fetch(
    `${base}/datasets/${encodeURIComponent(job.destination.dataset.id)}/files/${job.files[0].path}`,
    {
      headers: { 'x-sandbox-name': sandbox },
    },
  );
  expect(res.status).toBe(200);
  const text = await res.text();
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

const emailOf = (row: any) => row.identities.find((i: any) => i.namespace === 'email').id as string;

describe('exports with evaluateFirst', () => {
  it('exports the evaluation at its own instant; without it, the stored memberships', async () => {
    const sb = 'evalfirst';
    const { audienceId, definitionId } = await setupSandbox(sb, 20);
    // After the last segment job: profiles 0 and 2 leave gold, 1 and 3 join it.
    ok(
      await gqlIn(sb, INGEST, {
        r: [person(sb, 0, 'silver'), person(sb, 2, 'silver'), person(sb, 1, 'gold'), person(sb, 3, 'gold')],
      }),
    );
    const stored = Array.from({ length: 10 }, (_, k) => `${sb}${2 * k}@example.com`).sort();
    const evaluated = [...stored.filter((e) => e !== `${sb}0@example.com` && e !== `${sb}2@example.com`)]
      .concat([`${sb}1@example.com`, `${sb}3@example.com`])
      .sort();

    const plain = ok(
      await gqlIn(sb, EXPORT, {
        i: { audiences: [{ audienceId }], destination: { datasetName: 'p', format: 'NDJSON' } },
      }),
    ).createExportJob;
    expect(plain).toMatchObject({ evaluateFirst: false, segmentJob: null });
    const plainDone = await waitFor(sb, JOB, plain.id, 'exportJob');
    expect(plainDone.status).toBe('SUCCEEDED');
    expect((await exportRows(sb, plainDone)).map(emailOf).sort()).toEqual(stored);

    const created = ok(
      await gqlIn(sb, EXPORT, {
        i: { audiences: [{ audienceId }], evaluateFirst: true, destination: { datasetName: 'e', format: 'NDJSON' } },
      }),
    ).createExportJob;
    // One instant, fixed at creation, shared by the export and its segment job.
    expect(created.evaluateFirst).toBe(true);
    expect(created.at).not.toBeNull();
    expect(created.segmentJob.at).toBe(created.at);
    const done = await waitFor(sb, JOB, created.id, 'exportJob');
    expect(done).toMatchObject({
      status: 'SUCCEEDED',
      error: null,
      at: created.at,
      segmentJob: { id: created.segmentJob.id, status: 'SUCCEEDED', segmentDefinitions: [{ id: definitionId }] },
    });
    const rows = await exportRows(sb, done);
    expect(rows.map(emailOf).sort()).toEqual(evaluated);
    const joined = rows.filter((r) => [`${sb}1@example.com`, `${sb}3@example.com`].includes(emailOf(r)));
    expect(joined.map((r) => [r.status, r.qualifiedAt])).toEqual([
      ['REALIZED', created.at],
      ['REALIZED', created.at],
    ]);
    expect(rows.filter((r) => r.status === 'EXISTING')).toHaveLength(8);
  });

  it('exports audiences without a definition as stored, next to the evaluated ones', async () => {
    const sb = 'evalmixed';
    const { audienceId } = await setupSandbox(sb, 6);
    const manual = ok(await gqlIn(sb, 'mutation { createAudience(input: { name: "hand picked" }) { id } }'))
      .createAudience.id;
    ok(
      await gqlIn(
        sb,
        'mutation($id: ID!, $i: [IdentityInput!]!) { addAudienceMembers(audienceId: $id, identities: $i) { size } }',
        { id: manual, i: [{ namespace: 'email', id: `${sb}5@example.com` }] },
      ),
    );
    ok(await gqlIn(sb, INGEST, { r: [person(sb, 1, 'gold')] }));
    const job = ok(
      await gqlIn(sb, EXPORT, {
        i: {
          audiences: [{ audienceId }, { audienceId: manual }],
          evaluateFirst: true,
          destination: { datasetName: 'mixed', format: 'NDJSON' },
        },
      }),
    ).createExportJob;
    const done = await waitFor(sb, JOB, job.id, 'exportJob');
    expect(done.status).toBe('SUCCEEDED');
    expect(done.segmentJob.segmentDefinitions).toHaveLength(1);
    expect(done.notes).toEqual(['"hand picked" has no definition the segment job evaluated; exported as stored']);
    const rows = await exportRows(sb, done);
    const byAudience = (id: string) =>
      rows
        .filter((r) => r.audienceId === id)
        .map(emailOf)
        .sort();
    expect(byAudience(audienceId)).toEqual([0, 1, 2, 4].map((i) => `${sb}${i}@example.com`));
    expect(byAudience(manual)).toEqual([`${sb}5@example.com`]);
  });

  it('cancelling the export cancels its segment job; a cancelled segment job fails its export', async () => {
    const sb = 'evalcancel';
    const { audienceId } = await setupSandbox(sb, 20_000);
    const exportInput = (name: string) => ({
      audiences: [{ audienceId }],
      evaluateFirst: true,
      destination: { datasetName: name, format: 'NDJSON' },
    });

    // A segment job over 20 k profiles holds the segment lane, so the export's own segment job waits behind it.
    const busy = await runSegmentJob(sb, { all: true });
    const a = ok(await gqlIn(sb, EXPORT, { i: exportInput('c1') })).createExportJob;
    expect(a.segmentJob.status).toBe('QUEUED');
    const cancelled = ok(
      await gqlIn(sb, 'mutation($id: ID!) { cancelExportJob(id: $id) { status segmentJob { id status } } }', {
        id: a.id,
      }),
    ).cancelExportJob;
    // Still queued, both end at once; if the lane freed up first and the segment job started, it
    // stops at its next check (CANCELLING, then CANCELLED). Either way both end CANCELLED.
    expect(cancelled.status).toBe('CANCELLED');
    expect(['CANCELLED', 'CANCELLING']).toContain(cancelled.segmentJob.status);
    expect((await waitFor(sb, SEGMENT_JOB, cancelled.segmentJob.id, 'segmentJob')).status).toBe('CANCELLED');
    expect((await waitFor(sb, JOB, a.id, 'exportJob')).files).toEqual([]);

    // The first busy job may have ended by now: another one holds the lane for the second export.
    const busyAgain = await runSegmentJob(sb, { all: true });
    const b = ok(await gqlIn(sb, EXPORT, { i: exportInput('c2') })).createExportJob;
    expect(b.segmentJob.status).toBe('QUEUED');
    const seg = ok(
      await gqlIn(sb, 'mutation($id: ID!) { cancelSegmentJob(id: $id) { status } }', { id: b.segmentJob.id }),
    ).cancelSegmentJob;
    expect(['CANCELLED', 'CANCELLING']).toContain(seg.status);
    const failed = await waitFor(sb, JOB, b.id, 'exportJob');
    expect(failed).toMatchObject({
      status: 'FAILED',
      error: 'The SEGMENT job queued to run first for it ended CANCELLED; nothing was done',
      files: [],
      destination: { dataset: { files: [] } },
    });
    expect((await waitFor(sb, SEGMENT_JOB, busy, 'segmentJob')).status).toBe('SUCCEEDED');
    expect((await waitFor(sb, SEGMENT_JOB, busyAgain, 'segmentJob')).status).toBe('SUCCEEDED');
  });

  it('refuses evaluateFirst where there is nothing to evaluate, or at a future instant', async () => {
    const sb = 'evalbad';
    const { audienceId } = await setupSandbox(sb, 4);
    const manual = ok(await gqlIn(sb, 'mutation { createAudience(input: { name: "manual only" }) { id } }'))
      .createAudience.id;
    const attempt = async (input: Record<string, unknown>) => {
      const res = await gqlIn(sb, EXPORT, {
        i: { evaluateFirst: true, destination: { datasetName: 'bad', format: 'NDJSON' }, ...input },
      });
      return { code: res.errors?.[0]?.extensions?.code, field: res.errors?.[0]?.extensions?.field };
    };
    expect(await attempt({ audiences: [{ audienceId: manual }] })).toEqual({
      code: 'BAD_USER_INPUT',
      field: 'input.evaluateFirst',
    });
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect(await attempt({ audiences: [{ audienceId }], at: future })).toEqual({
      code: 'BAD_USER_INPUT',
      field: 'input.at',
    });
    ok(
      await gqlIn(sb, 'mutation($id: ID!) { updateAudience(id: $id, input: { lifecycleState: INACTIVE }) { id } }', {
        id: audienceId,
      }),
    );
    expect(await attempt({ audiences: [{ audienceId }] })).toEqual({
      code: 'BAD_USER_INPUT',
      field: 'input.evaluateFirst',
    });
    // Nothing was created: no job, no dataset.
    const left = ok(await gqlIn(sb, '{ exportJobs(first: 5) { totalCount } datasets(first: 5) { totalCount } }'));
    expect(left).toEqual({ exportJobs: { totalCount: 0 }, datasets: { totalCount: 0 } });
  });

  it('runs from an EXPORT schedule with evaluateFirst in its properties', async () => {
    const sb = 'evalsched';
    const { audienceId } = await setupSandbox(sb, 6);
    ok(await gqlIn(sb, INGEST, { r: [person(sb, 1, 'gold')] }));
    const properties = {
      audiences: [{ audienceId }],
      evaluateFirst: true,
      destination: { datasetName: 'sched', format: 'NDJSON' },
    };
    const schedule = ok(
      await gqlIn(sb, 'mutation($i: CreateScheduleInput!) { createSchedule(input: $i) { id } }', {
        i: { name: 'nightly', type: 'EXPORT', properties, cron: '0 3 * * *' },
      }),
    ).createSchedule;
    const run = ok(
      await gqlIn(sb, 'mutation($id: ID!) { runSchedule(id: $id) { id kind } }', { id: schedule.id }),
    ).runSchedule;
    expect(run.kind).toBe('EXPORT');
    const done = await waitFor(sb, JOB, run.id, 'exportJob');
    expect(done).toMatchObject({ status: 'SUCCEEDED', evaluateFirst: true, segmentJob: { status: 'SUCCEEDED' } });
    expect((await exportRows(sb, done)).map(emailOf).sort()).toEqual([0, 1, 2, 4].map((i) => `${sb}${i}@example.com`));
    const bad = await gqlIn(sb, 'mutation($i: CreateScheduleInput!) { createSchedule(input: $i) { id } }', {
      i: { name: 'bad', type: 'EXPORT', properties: { ...properties, evaluateFirst: 'yes' }, cron: '0 3 * * *' },
    });
    expect(bad.errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.properties.evaluateFirst',
    });
  });
});
