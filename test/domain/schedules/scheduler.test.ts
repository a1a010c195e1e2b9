import { describe, expect, it, vi } from 'vitest';
import { createManualAudience, deleteAudience } from '../../../src/domain/audiences.js';
import { deleteSegmentDefinition } from '../../../src/domain/definitions.js';
import { DomainError } from '../../../src/domain/errors.js';
import { encodeGlobalId } from '../../../src/domain/ids.js';
import { jobById } from '../../../src/domain/jobs/job-store.js';
import { audienceFreshness } from '../../../src/domain/schedules/freshness.js';
import { listSchedules } from '../../../src/domain/schedules/schedule-store.js';
import type { ScheduleTick } from '../../../src/domain/schedules/schedule-ticks.js';
import { scheduleHarness } from './harness.js';

const MINUTE = 60_000;
const ALL = { segments: ['*'] };

async function domainError(fn: () => unknown): Promise<DomainError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof DomainError) return err;
    throw err;
  }
  throw new Error('expected a DomainError');
}

describe('the scheduler, on a clock moved by hand', () => {
  it('runs an every-minute schedule exactly N times over N minutes, each run a job linked to it', async () => {
    const h = await scheduleHarness('2026-11-28T12:00:30.000Z');
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'minutely',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron: '* * * * *',
    });
    expect(new Date(s.nextRunAt!).toISOString()).toBe('2026-11-28T12:01:00.000Z');
    for (let i = 0; i < 7; i++) {
      await h.clock.advance(MINUTE);
      await h.finishRuns(s.id);
    }
    const ticks = await h.ticks(s.id);
    expect(ticks).toHaveLength(7);
    expect(ticks.every(([, outcome]) => outcome === 'STARTED')).toBe(true);
    expect(ticks.map(([due]) => due.slice(11, 16))).toEqual([
      '12:01',
      '12:02',
      '12:03',
      '12:04',
      '12:05',
      '12:06',
      '12:07',
    ]);
    const runs = await h.runs(s.id);
    expect(runs).toHaveLength(7);
    expect(runs.every((j) => j.kind === 'SEGMENT' && j.trigger === 'SCHEDULE' && j.scheduleId === s.id)).toBe(true);
    expect(runs[0]!.input).toMatchObject({ all: true });
    // One exact timer, not polling: only the next due time is waiting.
    expect(h.clock.pending).toBe(1);
  });

  it('publishes every tick as it is accounted for', async () => {
    const h = await scheduleHarness('2026-11-28T12:00:30.000Z');
    const events = h.bus.subscribe<ScheduleTick>(`schedule-ticks:${h.sandboxId}`);
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'm',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron: '* * * * *',
    });
    await h.clock.advance(2 * MINUTE);
    const first = (await events.next()).value.payload;
    const second = (await events.next()).value.payload;
    events.close();
    expect([first.outcome, second.outcome]).toEqual(['STARTED', 'SKIPPED_OVERLAP']);
    expect(first.scheduleId).toBe(s.id);
    expect(second.jobId).toBe(first.jobId);
  });

  it('skips a tick while the previous run is still active (never two runs at once)', async () => {
    const h = await scheduleHarness('2026-11-28T12:00:30.000Z');
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'm',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron: '* * * * *',
    });
    await h.clock.advance(3 * MINUTE);
    expect((await h.ticks(s.id)).map(([, o]) => o)).toEqual(['STARTED', 'SKIPPED_OVERLAP', 'SKIPPED_OVERLAP']);
    expect(await h.runs(s.id)).toHaveLength(1);
    await h.finishRuns(s.id);
    await h.clock.advance(MINUTE);
    expect((await h.ticks(s.id)).map(([, o]) => o).at(-1)).toBe('STARTED');
    expect(await h.runs(s.id)).toHaveLength(2);
  });

  it('after a restart with 10 due times missed, runs once and records the other 9 as MISSED', async () => {
    const h = await scheduleHarness('2026-11-28T12:00:30.000Z');
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'm',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron: '* * * * *',
    });
    const events = h.bus.subscribe<ScheduleTick>(`schedule-ticks:${h.sandboxId}`);
    await h.restartAfter(10 * MINUTE);
    const published: string[] = [];
    for (let i = 0; i < 10; i++) published.push((await events.next()).value.payload.outcome);
    events.close();
    expect(published).toEqual([...Array(9).fill('MISSED'), 'STARTED']);
    const ticks = await h.ticks(s.id);
    expect(ticks.filter(([, o]) => o === 'MISSED')).toHaveLength(9);
    expect(ticks.map(([due, o]) => `${due.slice(11, 16)} ${o}`)).toEqual([
      ...['01', '02', '03', '04', '05', '06', '07', '08', '09'].map((m) => `12:${m} MISSED`),
      '12:10 STARTED',
    ]);
    expect(await h.runs(s.id)).toHaveLength(1);
    await h.finishRuns(s.id);
    await h.clock.advance(MINUTE);
    expect((await h.ticks(s.id)).at(-1)).toEqual(['2026-11-28T12:11:00.000Z', 'STARTED', 1]);
  });

  it('records a long outage of an every-second schedule as 1000 listed MISSED ticks and one counted entry', async () => {
    const h = await scheduleHarness('2026-11-28T12:00:00.500Z');
    const s = await h.scheduler.create(h.sandboxId, {
      name: 's',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron: '* * * * * *',
    });
    await h.restartAfter(3600_000);
    const ticks = await h.ticks(s.id);
    expect(ticks).toHaveLength(1002);
    const counted = ticks[1000]!;
    expect(counted[1]).toBe('MISSED');
    expect(ticks.reduce((n, [, , count]) => n + count, 0)).toBe(3600);
    expect(ticks.at(-1)).toEqual(['2026-11-28T13:00:00.000Z', 'STARTED', 1]);
  });

  it('does not count due times while INACTIVE, and counts again from reactivation', async () => {
    const h = await scheduleHarness('2026-11-28T12:00:30.000Z');
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'm',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron: '* * * * *',
      state: 'INACTIVE',
    });
    expect(s.nextRunAt).toBeNull();
    await h.clock.advance(5 * MINUTE);
    expect(await h.ticks(s.id)).toEqual([]);
    const active = await h.scheduler.update(h.sandboxId, s.id, { state: 'ACTIVE' }, s.version);
    expect(new Date(active.nextRunAt!).toISOString()).toBe('2026-11-28T12:06:00.000Z');
    await h.clock.advance(MINUTE);
    expect(await h.ticks(s.id)).toEqual([['2026-11-28T12:06:00.000Z', 'STARTED', 1]]);
    expect((await domainError(() => h.scheduler.update(h.sandboxId, s.id, { name: 'x' }, 1))).code).toBe('CONFLICT');
  });

  it('records FAILED_TO_START with the reason when a run cannot be queued, and starts at the next due time', async () => {
    const h = await scheduleHarness('2026-11-28T12:00:30.000Z');
    const events = h.bus.subscribe<ScheduleTick>(`schedule-ticks:${h.sandboxId}`);
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'm',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron: '* * * * *',
    });
    const enqueue = vi.spyOn(h.jobs, 'enqueue').mockImplementationOnce(() => {
      throw new Error('database or disk is full');
    });
    await h.clock.advance(MINUTE);
    expect(enqueue).toHaveBeenCalledTimes(1);
    const failed = (await events.next()).value.payload;
    expect(failed).toMatchObject({ outcome: 'FAILED_TO_START', jobId: null, reason: 'database or disk is full' });
    expect(await h.runs(s.id)).toEqual([]);
    await h.clock.advance(MINUTE);
    events.close();
    expect(await h.ticks(s.id)).toEqual([
      ['2026-11-28T12:01:00.000Z', 'FAILED_TO_START', 1],
      ['2026-11-28T12:02:00.000Z', 'STARTED', 1],
    ]);
    expect(await h.runs(s.id)).toHaveLength(1);
    enqueue.mockRestore();
  });

  it('lists schedules filtered by type and state', async () => {
    await import('../../../src/domain/exports/export-schedule.js');
    const h = await scheduleHarness('2026-01-01T00:00:00Z');
    const audience = await createManualAudience(h.conn, h.sandboxId, { name: 'exported' });
    const make = (name: string, type: 'BATCH_SEGMENTATION' | 'EXPORT', state: 'ACTIVE' | 'INACTIVE') =>
      h.scheduler.create(h.sandboxId, {
        name,
        type,
        state,
        cron: '0 * * * *',
        properties:
          type === 'EXPORT'
            ? {
                audiences: [{ audienceId: encodeGlobalId('Audience', audience.id) }],
                destination: { datasetName: name, format: 'CSV' },
              }
            : ALL,
      });
    await make('batch on', 'BATCH_SEGMENTATION', 'ACTIVE');
    await make('batch off', 'BATCH_SEGMENTATION', 'INACTIVE');
    await make('export on', 'EXPORT', 'ACTIVE');
    await make('export off', 'EXPORT', 'INACTIVE');
    const names = async (filter: Parameters<typeof listSchedules>[2]) => {
      const page = await listSchedules(h.conn, h.sandboxId, filter, { first: 50 });
      return { names: page.items.map((x) => x.name), total: await page.totalCount() };
    };
    expect(await names({})).toEqual({ names: ['batch on', 'batch off', 'export on', 'export off'], total: 4 });
    expect(await names({ type: 'EXPORT' })).toEqual({ names: ['export on', 'export off'], total: 2 });
    expect(await names({ state: 'INACTIVE' })).toEqual({ names: ['batch off', 'export off'], total: 2 });
    expect(await names({ type: 'BATCH_SEGMENTATION', state: 'ACTIVE' })).toEqual({ names: ['batch on'], total: 1 });
  });

  it('an EXPORT schedule produces an export job per tick, each linked to the schedule', async () => {
    await import('../../../src/domain/exports/export-schedule.js');
    const h = await scheduleHarness('2026-11-28T12:00:30.000Z');
    const audience = await createManualAudience(h.conn, h.sandboxId, { name: 'exported' });
    const properties = {
      audiences: [{ audienceId: encodeGlobalId('Audience', audience.id), statuses: ['REALIZED'] }],
      destination: { datasetName: 'minutely', format: 'NDJSON' },
    };
    const s = await h.scheduler.create(h.sandboxId, { name: 'e', type: 'EXPORT', properties, cron: '* * * * *' });
    for (let i = 0; i < 4; i++) {
      await h.clock.advance(MINUTE);
      await h.finishRuns(s.id);
    }
    const ticks = await h.ticks(s.id);
    expect(ticks.map(([due, o]) => `${due.slice(11, 16)} ${o}`)).toEqual([
      '12:01 STARTED',
      '12:02 STARTED',
      '12:03 STARTED',
      '12:04 STARTED',
    ]);
    const runs = await h.runs(s.id);
    expect(runs).toHaveLength(4);
    for (const run of runs) {
      expect(run).toMatchObject({ kind: 'EXPORT', trigger: 'SCHEDULE', scheduleId: s.id });
      expect(run.input).toMatchObject({
        audiences: [{ audienceId: audience.id, statuses: ['REALIZED'] }],
        format: 'NDJSON',
      });
    }
    // Every run writes into the one dataset the first run made.
    expect(new Set(runs.map((r) => (r.input as { datasetId: number }).datasetId)).size).toBe(1);
  });

  it('runs now outside the cron, and refuses a second run while one is active', async () => {
    const h = await scheduleHarness('2026-11-28T12:00:30.000Z');
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'm',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron: '0 0 * * *',
    });
    const job = await h.scheduler.runNow(h.sandboxId, s.id);
    expect(job).toMatchObject({ kind: 'SEGMENT', trigger: 'SCHEDULE', scheduleId: s.id, status: 'QUEUED' });
    const again = await domainError(() => h.scheduler.runNow(h.sandboxId, s.id));
    expect(again.code).toBe('CONFLICT');
    expect(again.message).toContain('still QUEUED');
    expect(await h.ticks(s.id)).toEqual([]);
  });

  it('deleting a schedule cancels nothing already running and stops its timer', async () => {
    const h = await scheduleHarness('2026-11-28T12:00:30.000Z');
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'm',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron: '* * * * *',
    });
    await h.clock.advance(MINUTE);
    const [run] = await h.runs(s.id);
    await h.scheduler.delete(h.sandboxId, s.id);
    expect(h.clock.pending).toBe(0);
    expect(await jobById(h.conn, run!.id)).toMatchObject({ status: 'QUEUED', scheduleId: s.id });
    await h.clock.advance(5 * MINUTE);
    expect(await h.runs(s.id)).toHaveLength(1);
  });
});

describe('daylight saving time', () => {
  const dueTimes = async (start: string, cron: string, timezone: string, days: number) => {
    const h = await scheduleHarness(start);
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'd',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron,
      timezone,
    });
    for (let i = 0; i < days * 24; i++) {
      await h.clock.advance(60 * MINUTE);
      await h.finishRuns(s.id);
    }
    expect((await h.ticks(s.id)).every(([, o]) => o === 'STARTED')).toBe(true);
    return (await h.ticks(s.id)).map(([due]) => due);
  };

  it('Europe/Stockholm spring forward: a 02:30 run the gap skips runs once, at 03:00 CEST', async () => {
    expect(await dueTimes('2026-03-27T12:00:00Z', '30 2 * * *', 'Europe/Stockholm', 3)).toEqual([
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:00:00.000Z', // 03:00 CEST, the first valid instant after the gap
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
  });

  it('Europe/Stockholm fall back: a 02:30 run that occurs twice runs once', async () => {
    expect(await dueTimes('2026-10-23T12:00:00Z', '30 2 * * *', 'Europe/Stockholm', 3)).toEqual([
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z', // the first 02:30 (CEST) only
      '2026-10-26T01:30:00.000Z',
    ]);
  });

  it('America/New_York spring forward and fall back', async () => {
    expect(await dueTimes('2026-03-07T00:00:00Z', '30 2 * * *', 'America/New_York', 2)).toEqual([
      '2026-03-07T07:30:00.000Z',
      '2026-03-08T07:00:00.000Z', // 03:00 EDT
    ]);
    expect(await dueTimes('2026-10-31T00:00:00Z', '30 1 * * *', 'America/New_York', 2)).toEqual([
      '2026-10-31T05:30:00.000Z',
      '2026-11-01T05:30:00.000Z', // the first 01:30 (EDT) only
    ]);
  });
});

describe('cron forms and bad input', () => {
  const next = async (cron: string, count = 3) => {
    const h = await scheduleHarness('2026-01-01T00:00:00Z');
    const s = await h.scheduler.create(h.sandboxId, { name: 'q', type: 'BATCH_SEGMENTATION', properties: ALL, cron });
    return h.scheduler.upcoming(s, count).map((t) => new Date(t).toISOString());
  };

  it('reads Quartz forms: seconds, ?, #, L, W, a year, and 1 = SUN day numbers', async () => {
    expect(await next('0 15 10 ? * 6#3')).toEqual([
      '2026-01-16T10:15:00.000Z', // third Friday (Quartz 6 = FRI)
      '2026-02-20T10:15:00.000Z',
      '2026-03-20T10:15:00.000Z',
    ]);
    expect(await next('0 0 12 L * ?', 2)).toEqual(['2026-01-31T12:00:00.000Z', '2026-02-28T12:00:00.000Z']);
    expect(await next('0 0 9 15W * ?', 2)).toEqual(['2026-01-15T09:00:00.000Z', '2026-02-16T09:00:00.000Z']);
    expect(await next('0 0 12 LW * ? 2027', 1)).toEqual(['2027-01-29T12:00:00.000Z']);
    expect(await next('30 0 8 ? * 2', 1)).toEqual(['2026-01-05T08:00:30.000Z']); // Monday
    expect(await next('0 8 * * 1', 1)).toEqual(['2026-01-05T08:00:00.000Z']); // 5 fields: 1 = Monday
  });

  it.each([
    ['61 * * * *', 'input.cron', 'Invalid value for minute: 61'],
    ['* * *', 'input.cron', 'has 3 fields'],
    ['every day', 'input.cron', 'has 2 fields'],
    ['*/0 * * * *', 'input.cron', 'illegal stepping'],
    ['0 0 12 ? * 6#9', 'input.cron', 'is not a valid cron expression'],
  ])('refuses the cron "%s" as BAD_USER_INPUT naming the problem', async (cron, field, reason) => {
    const h = await scheduleHarness('2026-01-01T00:00:00Z');
    const err = await domainError(() =>
      h.scheduler.create(h.sandboxId, { name: 'bad', type: 'BATCH_SEGMENTATION', properties: ALL, cron }),
    );
    expect(err.code).toBe('BAD_USER_INPUT');
    expect(err.extensions.field).toBe(field);
    expect(err.message).toContain(reason);
  });

  it.each(['Mars/Olympus_Mons', '+01:00', ''])('refuses the time zone "%s"', async (timezone) => {
    const h = await scheduleHarness('2026-01-01T00:00:00Z');
    const err = await domainError(() =>
      h.scheduler.create(h.sandboxId, {
        name: 'bad',
        type: 'BATCH_SEGMENTATION',
        properties: ALL,
        cron: '* * * * *',
        timezone,
      }),
    );
    expect(err).toMatchObject({ code: 'BAD_USER_INPUT', extensions: { field: 'input.timezone' } });
    expect(err.message).toContain('is not an IANA time zone');
  });

  it('refuses a bad cron or zone in updateSchedule too, and changes nothing', async () => {
    const h = await scheduleHarness('2026-01-01T00:00:00Z');
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'u',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron: '0 * * * *',
    });
    expect(await domainError(() => h.scheduler.update(h.sandboxId, s.id, { cron: '0 0 25 * * ?' }))).toMatchObject({
      code: 'BAD_USER_INPUT',
      message: '"0 0 25 * * ?" is not a valid cron expression: Invalid value for hour: 25',
      extensions: { field: 'input.cron' },
    });
    expect(
      (await domainError(() => h.scheduler.update(h.sandboxId, s.id, { cron: '* * * * * * * *' }))).message,
    ).toContain('has 8 fields');
    expect(
      await domainError(() => h.scheduler.update(h.sandboxId, s.id, { timezone: 'Europe/Atlantis' })),
    ).toMatchObject({
      code: 'BAD_USER_INPUT',
      extensions: { field: 'input.timezone' },
    });
    const after = await h.scheduler.update(h.sandboxId, s.id, { name: 'u2' });
    expect(after).toMatchObject({ cron: '0 * * * *', timezone: 'UTC', version: 2, nextRunAt: s.nextRunAt });
  });

  it('checks EXPORT properties as an export job would', async () => {
    await import('../../../src/domain/exports/export-schedule.js');
    const h = await scheduleHarness('2026-01-01T00:00:00Z');
    const create = (properties: unknown) => () =>
      h.scheduler.create(h.sandboxId, { name: 'x', type: 'EXPORT', properties, cron: '* * * * *' });
    expect(await domainError(create({}))).toMatchObject({
      code: 'BAD_USER_INPUT',
      message: 'input.properties.audiences must list at least one { audienceId }',
    });
    const unknownAudience = {
      audiences: [{ audienceId: 'QXVkaWVuY2U6OTk5' }],
      destination: { datasetName: 'd', format: 'CSV' },
    };
    expect(await domainError(create(unknownAudience))).toMatchObject({ code: 'NOT_FOUND' });
    const badFormat = {
      audiences: [{ audienceId: 'QXVkaWVuY2U6OTk5' }],
      destination: { datasetName: 'd', format: 'XML' },
    };
    expect(await domainError(create(badFormat))).toMatchObject({
      code: 'BAD_USER_INPUT',
      extensions: { field: 'input.properties.destination.format' },
    });
  });

  it('checks BATCH_SEGMENTATION properties as a segment job would', async () => {
    const h = await scheduleHarness('2026-01-01T00:00:00Z');
    const create = (properties: unknown) => () =>
      h.scheduler.create(h.sandboxId, { name: 'p', type: 'BATCH_SEGMENTATION', properties, cron: '* * * * *' });
    expect((await domainError(create({ segments: [] }))).code).toBe('BAD_USER_INPUT');
    expect((await domainError(create({ segments: ['*', 'x'] }))).code).toBe('BAD_USER_INPUT');
    expect((await domainError(create({ segmnts: ['*'] }))).message).toContain('unknown "segmnts"');
    expect((await domainError(create({ segments: [encodeGlobalId('SegmentDefinition', 99)] }))).code).toBe('NOT_FOUND');
  });
});

describe('references and freshness', () => {
  it('refuses to delete a definition or audience a schedule names, naming the schedule', async () => {
    const h = await scheduleHarness('2026-01-01T00:00:00Z');
    const def = await h.definition('vip');
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'nightly vip',
      type: 'BATCH_SEGMENTATION',
      properties: { segments: [encodeGlobalId('SegmentDefinition', def.id)] },
      cron: '0 3 * * *',
    });
    const byDefinition = await domainError(() => deleteSegmentDefinition(h.conn, h.sandboxId, def.id));
    expect(byDefinition.code).toBe('CONFLICT');
    expect(byDefinition.message).toBe(
      'Segment definition "vip" is named by schedule "nightly vip"; change or delete the schedule first',
    );
    expect(byDefinition.extensions.schedules).toEqual([{ id: encodeGlobalId('Schedule', s.id), name: 'nightly vip' }]);
    const byAudience = await domainError(() => deleteAudience(h.conn, h.sandboxId, def.audienceId));
    expect(byAudience).toMatchObject({ code: 'CONFLICT' });
    expect(byAudience.message).toContain('schedule "nightly vip"');
    // Pointing the schedule elsewhere releases it.
    await h.scheduler.update(h.sandboxId, s.id, { properties: ALL });
    expect(await deleteSegmentDefinition(h.conn, h.sandboxId, def.id)).toBe(def.id);
  });

  it('names the schedule that keeps an audience fresh and says when its last run went wrong', async () => {
    const h = await scheduleHarness('2026-11-28T12:00:30.000Z');
    const def = await h.definition('vip');
    const manual = await createManualAudience(h.conn, h.sandboxId, { name: 'hand-picked' });
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'all',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron: '* * * * *',
    });
    const fresh = () => audienceFreshness(h.conn, h.sandboxId, [def.audienceId, manual.id]);
    expect((await fresh()).get(def.audienceId)).toEqual({ scheduleId: s.id, stale: false });
    expect((await fresh()).get(manual.id)).toEqual({ scheduleId: null, stale: null });
    await h.clock.advance(MINUTE);
    await h.finishRuns(s.id, 'FAILED');
    expect((await fresh()).get(def.audienceId)?.stale).toBe(true);
    await h.clock.advance(MINUTE);
    await h.finishRuns(s.id, 'SUCCEEDED');
    expect((await fresh()).get(def.audienceId)?.stale).toBe(false);
    await h.scheduler.update(h.sandboxId, s.id, { state: 'INACTIVE' });
    expect((await fresh()).get(def.audienceId)).toEqual({ scheduleId: null, stale: null });
  });

  it('calls an audience stale when its schedule missed its last due time or failed to start it', async () => {
    const h = await scheduleHarness('2026-11-28T12:00:30.000Z');
    const def = await h.definition('vip');
    const s = await h.scheduler.create(h.sandboxId, {
      name: 'all',
      type: 'BATCH_SEGMENTATION',
      properties: ALL,
      cron: '* * * * *',
    });
    const fresh = async () => (await audienceFreshness(h.conn, h.sandboxId, [def.audienceId])).get(def.audienceId);
    await h.clock.advance(MINUTE);
    expect(await fresh()).toEqual({ scheduleId: s.id, stale: false });
    // Down for three due times while the 12:01 run is still queued: two MISSED, the latest skipped.
    await h.restartAfter(3 * MINUTE);
    expect((await h.ticks(s.id)).map(([due, o]) => `${due.slice(11, 16)} ${o}`)).toEqual([
      '12:01 STARTED',
      '12:02 MISSED',
      '12:03 MISSED',
      '12:04 SKIPPED_OVERLAP',
    ]);
    expect(await fresh()).toEqual({ scheduleId: s.id, stale: true });
    await h.finishRuns(s.id);
    await h.clock.advance(MINUTE);
    expect((await fresh())?.stale).toBe(false);
    await h.finishRuns(s.id);
    const enqueue = vi.spyOn(h.jobs, 'enqueue').mockImplementationOnce(() => {
      throw new Error('database or disk is full');
    });
    await h.clock.advance(MINUTE);
    expect((await h.ticks(s.id)).at(-1)?.[1]).toBe('FAILED_TO_START');
    expect(await fresh()).toEqual({ scheduleId: s.id, stale: true });
    enqueue.mockRestore();
    await h.clock.advance(MINUTE);
    expect((await fresh())?.stale).toBe(false);
  });

  it('refuses to delete an audience an EXPORT schedule exports, naming the schedule', async () => {
    await import('../../../src/domain/exports/export-schedule.js');
    const h = await scheduleHarness('2026-01-01T00:00:00Z');
    const audience = await createManualAudience(h.conn, h.sandboxId, { name: 'exported' });
    await h.scheduler.create(h.sandboxId, {
      name: 'nightly export',
      type: 'EXPORT',
      properties: {
        audiences: [{ audienceId: encodeGlobalId('Audience', audience.id) }],
        destination: { datasetName: 'nightly', format: 'CSV' },
      },
      cron: '0 3 * * *',
    });
    const refused = await domainError(() => deleteAudience(h.conn, h.sandboxId, audience.id));
    expect(refused.code).toBe('CONFLICT');
    expect(refused.message).toBe(
      'Audience "exported" is named by schedule "nightly export"; change or delete the schedule first',
    );
  });
});
