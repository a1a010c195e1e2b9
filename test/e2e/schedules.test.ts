import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

const CREATE = `mutation($i: CreateScheduleInput!) { createSchedule(input: $i) { id name type properties cron timezone state nextRunAt version } }`;
const UPDATE = `mutation($id: ID!, $i: UpdateScheduleInput!, $v: Int) { updateSchedule(id: $id, input: $i, expectedVersion: $v) { id state version nextRunAt } }`;

async function createDefinition(name: string) {
  return ok(
    await server.gql(
      'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id audience { id } } }',
      { i: { name, expression: { value: 'true' }, lifecycleState: 'PUBLISHED' } },
    ),
  ).createSegmentDefinition;
}

describe('schedules over the API', () => {
  it('runs an every-second schedule: two runs, each a job linked to it, and their scheduleTicked events', async () => {
    const schedule = ok(
      await server.gql(CREATE, {
        i: {
          name: 'every second',
          type: 'BATCH_SEGMENTATION',
          properties: { segments: ['*'] },
          cron: '*/1 * * * * *',
          state: 'INACTIVE',
        },
      }),
    ).createSchedule;
    const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
    const events: any[] = [];
    let stop: () => void = () => {};
    const twoStarted = new Promise<void>((resolve, reject) => {
      stop = client.subscribe(
        {
          query: `subscription($id: ID) { scheduleTicked(scheduleId: $id) { dueAt outcome reason schedule { id }
            job { id trigger schedule { id } } } }`,
          variables: { id: schedule.id },
        },
        {
          next: (m) => {
            events.push(m.data!.scheduleTicked);
            if (events.filter((e) => e.outcome === 'STARTED').length >= 2) resolve();
          },
          error: reject,
          complete: () => reject(new Error('subscription ended')),
        },
      );
    });
    // The subscription is attached once the client has its first ack; the ticks then keep coming every second.
    await new Promise<void>((resolve) => client.on('connected', () => resolve()));
    ok(await server.gql(UPDATE, { id: schedule.id, i: { state: 'ACTIVE' }, v: schedule.version }));
    await twoStarted;
    stop();
    await client.dispose();
    ok(await server.gql(UPDATE, { id: schedule.id, i: { state: 'INACTIVE' } }));

    const started = events.filter((e) => e.outcome === 'STARTED');
    expect(new Set(started.map((e) => e.job.id)).size).toBe(started.length);
    for (const e of events) {
      expect(e.schedule.id).toBe(schedule.id);
      expect(['STARTED', 'SKIPPED_OVERLAP']).toContain(e.outcome);
      expect(e.job).toMatchObject({ trigger: 'SCHEDULE', schedule: { id: schedule.id } });
      expect(Date.parse(e.dueAt) % 1000).toBe(0);
    }
    const dues = events.map((e) => Date.parse(e.dueAt));
    expect(dues).toEqual([...dues].sort((a, b) => a - b));

    const seen = ok(
      await server.gql(
        `query($id: ID!) { schedule(id: $id) { lastRunAt nextRunAt
          runs(first: 50) { totalCount edges { node { id kind trigger schedule { id } } } }
          ticks(first: 50) { totalCount edges { node { outcome job { id } } } } } }`,
        { id: schedule.id },
      ),
    ).schedule;
    const runIds = seen.runs.edges.map((e: any) => e.node.id);
    for (const e of started) expect(runIds).toContain(e.job.id);
    expect(seen.runs.edges.every((e: any) => e.node.kind === 'SEGMENT' && e.node.trigger === 'SCHEDULE')).toBe(true);
    expect(seen.ticks.totalCount).toBeGreaterThanOrEqual(events.length);
    expect(seen.nextRunAt).toBeNull();
    expect(seen.lastRunAt).not.toBeNull();
  });

  it('shows the next due times, lists and filters schedules, and runs one on demand', async () => {
    const s = ok(
      await server.gql(CREATE, {
        i: {
          name: 'stockholm nightly',
          type: 'BATCH_SEGMENTATION',
          properties: { segments: ['*'] },
          cron: '30 2 * * *',
          timezone: 'Europe/Stockholm',
        },
      }),
    ).createSchedule;
    expect(s).toMatchObject({
      state: 'ACTIVE',
      timezone: 'Europe/Stockholm',
      properties: { segments: ['*'] },
      version: 1,
    });
    const next = ok(
      await server.gql('query($id: ID!) { schedule(id: $id) { nextRunAt nextRuns(count: 3) five: nextRuns } }', {
        id: s.id,
      }),
    ).schedule;
    expect(next.nextRuns).toHaveLength(3);
    // count defaults to 5: the same first three, then two more days.
    expect(next.five).toHaveLength(5);
    expect(next.five.slice(0, 3)).toEqual(next.nextRuns);
    expect(next.nextRuns[0]).toBe(next.nextRunAt);
    for (const at of next.nextRuns) {
      const local = new Intl.DateTimeFormat('en-GB', {
        timeZone: 'Europe/Stockholm',
        hour: '2-digit',
        minute: '2-digit',
      }).format(new Date(at));
      expect(['02:30', '03:00']).toContain(local);
    }
    const tooMany = await server.gql('query($id: ID!) { schedule(id: $id) { nextRuns(count: 1000) } }', { id: s.id });
    expect(tooMany.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    const active = ok(
      await server.gql(
        `{ schedules(first: 50, filter: { type: BATCH_SEGMENTATION, state: ACTIVE }) { totalCount edges { node { name } } } }`,
      ),
    ).schedules;
    expect(active.edges.map((e: any) => e.node.name)).toContain('stockholm nightly');
    expect(active.edges.map((e: any) => e.node.name)).not.toContain('every second');

    const run = ok(
      await server.gql('mutation($id: ID!) { runSchedule(id: $id) { id kind trigger schedule { id } } }', { id: s.id }),
    ).runSchedule;
    expect(run).toMatchObject({ kind: 'SEGMENT', trigger: 'SCHEDULE', schedule: { id: s.id } });

    const stale = await server.gql(UPDATE, { id: s.id, i: { name: 'renamed' }, v: 99 });
    expect(stale.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    const deleted = ok(await server.gql('mutation($id: ID!) { deleteSchedule(id: $id) }', { id: s.id })).deleteSchedule;
    expect(deleted).toBe(s.id);
    expect(ok(await server.gql('query($id: ID!) { schedule(id: $id) { id } }', { id: s.id })).schedule).toBeNull();
    // The run it started goes on, without its schedule.
    const job = ok(
      await server.gql('query($id: ID!) { segmentJob(id: $id) { trigger schedule { id } } }', { id: run.id }),
    ).segmentJob;
    expect(job).toEqual({ trigger: 'SCHEDULE', schedule: null });
  });

  it('answers bad crons, zones and types with BAD_USER_INPUT naming the problem', async () => {
    const create = (i: Record<string, unknown>) =>
      server.gql(CREATE, {
        i: { name: 'bad', type: 'BATCH_SEGMENTATION', properties: { segments: ['*'] }, cron: '* * * * *', ...i },
      });
    const badCron = await create({ cron: '0 25 * * *' });
    expect(badCron.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.cron' });
    expect(badCron.errors?.[0]?.message).toBe(
      '"0 25 * * *" is not a valid cron expression: Invalid value for hour: 25',
    );
    const badZone = await create({ timezone: 'Europe/Atlantis' });
    expect(badZone.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.timezone' });
    const exportSchedule = await create({ type: 'EXPORT', properties: {} });
    // EXPORT properties are checked as createExportJob checks its input.
    expect(exportSchedule.errors?.[0]).toMatchObject({
      message: 'input.properties.audiences must list at least one { audienceId }',
      extensions: { code: 'BAD_USER_INPUT', field: 'input.properties.audiences' },
    });
    expect(exportSchedule.data?.createSchedule).toBeNull();
  });

  it('keeps a definition a schedule names from being deleted, and shows the audience fresh through it', async () => {
    const def = await createDefinition('scheduled vip');
    const s = ok(
      await server.gql(CREATE, {
        i: { name: 'vip hourly', type: 'BATCH_SEGMENTATION', properties: { segments: [def.id] }, cron: '0 * * * *' },
      }),
    ).createSchedule;
    const audience = ok(
      await server.gql(
        'query($id: ID!) { audience(id: $id) { lastEvaluatedAt stale evaluationSchedule { id name } } }',
        {
          id: def.audience.id,
        },
      ),
    ).audience;
    expect(audience).toEqual({
      lastEvaluatedAt: null,
      stale: false,
      evaluationSchedule: { id: s.id, name: 'vip hourly' },
    });
    const refused = await server.gql('mutation($id: ID!) { deleteSegmentDefinition(id: $id) }', { id: def.id });
    expect(refused.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    expect(refused.errors?.[0]?.message).toContain('schedule "vip hourly"');
    expect(refused.errors?.[0]?.extensions?.schedules).toEqual([{ id: s.id, name: 'vip hourly' }]);
    const byAudience = await server.gql('mutation($id: ID!) { deleteAudience(id: $id) }', { id: def.audience.id });
    expect(byAudience.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    ok(await server.gql('mutation($id: ID!) { deleteSchedule(id: $id) }', { id: s.id }));
    expect(
      ok(await server.gql('mutation($id: ID!) { deleteSegmentDefinition(id: $id) }', { id: def.id }))
        .deleteSegmentDefinition,
    ).toBe(def.id);
  });
});
