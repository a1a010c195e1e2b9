/**
 * An EXPORT schedule end to end. It needs export jobs (createExportJob, exportJob), which are
 * built on another branch: the exports module registers the EXPORT schedule type
 * (registerScheduleType in src/domain/schedules/schedule-types.ts) when they meet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

const TICKS = `query($id: ID!) { schedule(id: $id) { ticks(first: 50) { edges { node { outcome reason job { id kind trigger } } } } } }`;
const EXPORT_JOB = `query($id: ID!) { exportJob(id: $id) { id status error trigger schedule { id } } }`;

describe('EXPORT schedules', () => {
  it('produces an export job per tick, each linked to the schedule', async () => {
    ok(
      await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', {
        r: ['a@x.se', 'b@x.se'].map((id) => ({ identities: [{ namespace: 'email', id }], attributes: {} })),
      }),
    );
    const audience = ok(
      await server.gql('mutation { createAudience(input: { name: "exported weekly" }) { id } }'),
    ).createAudience;
    ok(
      await server.gql(
        'mutation($id: ID!, $i: [IdentityInput!]!) { addAudienceMembers(audienceId: $id, identities: $i) { size } }',
        {
          id: audience.id,
          i: [{ namespace: 'email', id: 'a@x.se' }],
        },
      ),
    );
    const properties = {
      audiences: [{ audienceId: audience.id }],
      destination: { datasetName: 'scheduled-export', format: 'NDJSON' },
    };
    const schedule = ok(
      await server.gql('mutation($i: CreateScheduleInput!) { createSchedule(input: $i) { id type properties } }', {
        i: { name: 'export every second', type: 'EXPORT', properties, cron: '*/1 * * * * *' },
      }),
    ).createSchedule;
    expect(schedule).toMatchObject({ type: 'EXPORT', properties });

    let started: any[] = [];
    const deadline = Date.now() + 20_000;
    while (started.length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      const ticks = ok(await server.gql(TICKS, { id: schedule.id })).schedule.ticks.edges.map((e: any) => e.node);
      expect(ticks.filter((t: any) => t.outcome === 'FAILED_TO_START')).toEqual([]);
      started = ticks.filter((t: any) => t.outcome === 'STARTED');
    }
    ok(
      await server.gql('mutation($id: ID!) { updateSchedule(id: $id, input: { state: INACTIVE }) { state } }', {
        id: schedule.id,
      }),
    );
    expect(started.length).toBeGreaterThanOrEqual(2);
    for (const tick of started) {
      expect(tick.job).toMatchObject({ kind: 'EXPORT', trigger: 'SCHEDULE' });
      let job: any;
      do {
        job = ok(await server.gql(EXPORT_JOB, { id: tick.job.id })).exportJob;
        if (!['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.status)) await new Promise((r) => setTimeout(r, 50));
      } while (!['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.status));
      expect(job).toMatchObject({
        status: 'SUCCEEDED',
        error: null,
        trigger: 'SCHEDULE',
        schedule: { id: schedule.id },
      });
    }
  });

  it('records FAILED_TO_START with the reason when a run cannot start (its dataset was deleted)', async () => {
    const audience = ok(
      await server.gql('mutation { createAudience(input: { name: "export target gone" }) { id } }'),
    ).createAudience;
    // A first export makes the dataset the schedule then names by id.
    const made = ok(
      await server.gql(
        `mutation($i: CreateExportJobInput!) { createExportJob(input: $i) { id destination { dataset { id } } } }`,
        { i: { audiences: [{ audienceId: audience.id }], destination: { datasetName: 'soon-gone', format: 'CSV' } } },
      ),
    ).createExportJob;
    const datasetId = made.destination.dataset.id;
    for (;;) {
      const job = ok(await server.gql(EXPORT_JOB, { id: made.id })).exportJob;
      if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.status)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const schedule = ok(
      await server.gql('mutation($i: CreateScheduleInput!) { createSchedule(input: $i) { id } }', {
        i: {
          name: 'export into a dataset that goes away',
          type: 'EXPORT',
          properties: { audiences: [{ audienceId: audience.id }], destination: { datasetId, format: 'CSV' } },
          cron: '*/1 * * * * *',
          // Started only once the dataset is gone: a run queued before the delete would hold it.
          state: 'INACTIVE',
        },
      }),
    ).createSchedule;
    ok(await server.gql('mutation($id: ID!) { deleteDataset(id: $id) }', { id: datasetId }));
    ok(
      await server.gql('mutation($id: ID!) { updateSchedule(id: $id, input: { state: ACTIVE }) { state } }', {
        id: schedule.id,
      }),
    );

    let failed: any[] = [];
    const deadline = Date.now() + 20_000;
    while (failed.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      const ticks = ok(await server.gql(TICKS, { id: schedule.id })).schedule.ticks.edges.map((e: any) => e.node);
      failed = ticks.filter((t: any) => t.outcome === 'FAILED_TO_START');
    }
    ok(
      await server.gql('mutation($id: ID!) { updateSchedule(id: $id, input: { state: INACTIVE }) { state } }', {
        id: schedule.id,
      }),
    );
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(failed[0].job).toBeNull();
    expect(failed[0].reason).toMatch(/Dataset/);
  });
});
