import { badInput } from '../../domain/errors.js';
import { topics } from '../../domain/events.js';
import { type Job, jobsByIds, listJobs } from '../../domain/jobs/job-store.js';
import { listSchedules } from '../../domain/schedules/schedule-store.js';
import { listTicks, type ScheduleTick } from '../../domain/schedules/schedule-ticks.js';
import { SCHEDULE_STATES, SCHEDULE_TYPES, TICK_OUTCOMES } from '../../domain/schedules/schedule-vocabulary.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { enumFromDomain } from '../enums.js';
import { decodeId, requireId } from '../ids.js';
import { JobRef } from './job.js';
import { AudienceRef, ScheduleRef } from './refs.js';

const MAX_NEXT_RUNS = 100;

export const ScheduleTypeEnum = enumFromDomain('ScheduleType', 'What a schedule runs.', SCHEDULE_TYPES, {
  BATCH_SEGMENTATION: 'A segment job: properties { segments: ["*"] } or { segments: [definition ids] }.',
  EXPORT: 'An export job: properties are a CreateExportJobInput.',
});

export const ScheduleStateEnum = enumFromDomain('ScheduleState', 'Whether a schedule runs.', SCHEDULE_STATES, {
  ACTIVE: 'Runs at each due time of its cron.',
  INACTIVE: 'Paused: no due times are counted until it is ACTIVE again.',
});

export const ScheduleTickOutcomeEnum = enumFromDomain(
  'ScheduleTickOutcome',
  'What became of a due time of a schedule.',
  TICK_OUTCOMES,
  {
    STARTED: 'A run started (see job).',
    SKIPPED_OVERLAP: 'Not run: the previous run (see job) was still active; a schedule never runs twice at once.',
    MISSED:
      'Not run: the server was down (or late) at this time. Of the due times that passed, only the latest runs, once.',
    FAILED_TO_START: 'A run could not be started (see reason).',
  },
);

const ScheduleTickType = builder.objectRef<ScheduleTick>('ScheduleTick').implement({
  description: 'One due time of a schedule and what became of it (or a run of MISSED due times, with a count).',
  fields: (t) => ({
    schedule: t.field({
      type: ScheduleRef,
      nullable: true,
      description: 'The schedule (null once deleted).',
      resolve: async (tick, _a, ctx) => (await ctx.loaders.schedule.load(tick.scheduleId)) ?? null,
    }),
    dueAt: t.field({ type: 'DateTime', description: 'The due time.', resolve: (tick) => tick.dueAt }),
    lastDueAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'For MISSED due times recorded together: the last of them; null otherwise.',
      resolve: (tick) => tick.lastDueAt,
    }),
    count: t.exposeInt('count', {
      description: 'Due times this entry stands for: 1, except for MISSED due times recorded together.',
    }),
    outcome: t.field({
      type: ScheduleTickOutcomeEnum,
      description: 'What became of it.',
      resolve: (tick) => tick.outcome,
    }),
    job: t.field({
      type: JobRef,
      nullable: true,
      description: 'STARTED: the run it started; SKIPPED_OVERLAP: the run that was still active; null otherwise.',
      resolve: async (tick, _a, ctx) =>
        tick.jobId == null ? null : ((await jobsByIds(ctx.conn, ctx.sandbox.id, [tick.jobId])).get(tick.jobId) ?? null),
    }),
    reason: t.exposeString('reason', {
      nullable: true,
      description: 'Why it was MISSED or FAILED_TO_START (or skipped); null when it STARTED.',
    }),
    recordedAt: t.field({
      type: 'DateTime',
      description: 'When the scheduler accounted for it (after the due time when the server was down).',
      resolve: (tick) => tick.recordedAt,
    }),
  }),
});

builder.node(ScheduleRef, {
  description: 'A job (segmentation or export) run on a cron expression in a time zone.',
  id: { resolve: (s) => s.id },
  loadMany: (ids, ctx) => Promise.all(ids.map((id) => ctx.loaders.schedule.load(Number(id)))),
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Its name, unique in the sandbox.' }),
    type: t.field({ type: ScheduleTypeEnum, description: 'What it runs.', resolve: (s) => s.type }),
    properties: t.field({
      type: 'JSON',
      description: 'What each run does: { segments } for BATCH_SEGMENTATION, a CreateExportJobInput for EXPORT.',
      resolve: (s) => s.properties,
    }),
    cron: t.exposeString('cron', {
      description: '5 fields (standard cron) or 6–7 fields (Quartz: seconds first, ?, L, W, #, weekday 1 = SUN).',
    }),
    timezone: t.exposeString('timezone', { description: 'The IANA time zone the cron is read in.' }),
    state: t.field({ type: ScheduleStateEnum, description: 'Whether it runs.', resolve: (s) => s.state }),
    nextRunAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Its next due time; null while INACTIVE or when its cron has no further time.',
      resolve: (s) => s.nextRunAt,
    }),
    lastRunAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When a run of it last started (by the cron or runSchedule).',
      resolve: (s) => s.lastRunAt,
    }),
    nextRuns: t.field({
      type: ['DateTime'],
      description: 'Its next due times after now by its cron and zone (also while INACTIVE).',
      args: { count: t.arg.int({ defaultValue: 5, description: `How many, 1 to ${MAX_NEXT_RUNS}.` }) },
      resolve: (s, args, ctx) => {
        const count = args.count ?? 5;
        if (!Number.isInteger(count) || count < 1 || count > MAX_NEXT_RUNS) {
          throw badInput(`"count" must be between 1 and ${MAX_NEXT_RUNS}, got ${count}`, 'count');
        }
        return ctx.app.schedules.upcoming(s, count);
      },
    }),
    runs: t.connection(
      {
        type: JobRef,
        description: 'Its runs (jobs with trigger SCHEDULE), newest first.',
        complexity: connectionComplexity,
        resolve: async (s, args, ctx) =>
          toConnection(await listJobs(ctx.conn, ctx.sandbox.id, { scheduleId: s.id }, args)),
      },
      { name: 'JobConnection', description: 'A page of jobs of any kind.' },
      { name: 'JobEdge', description: 'A job in a page, with its cursor.' },
    ),
    ticks: t.connection(
      {
        type: ScheduleTickType,
        description: 'Every due time since it was made and what became of it, newest first.',
        complexity: connectionComplexity,
        resolve: async (s, args, ctx) => toConnection(await listTicks(ctx.conn, ctx.sandbox.id, s.id, args)),
      },
      { name: 'ScheduleTickConnection', description: 'A page of schedule ticks.' },
      { name: 'ScheduleTickEdge', description: 'A tick in a page, with its cursor.' },
    ),
    version: t.exposeInt('version', { description: 'Goes up with every change; pass it as expectedVersion.' }),
    createdAt: t.field({ type: 'DateTime', description: 'When it was made.', resolve: (s) => s.createdAt }),
    updatedAt: t.field({ type: 'DateTime', description: 'When it was last changed.', resolve: (s) => s.updatedAt }),
  }),
});

builder.interfaceField(JobRef, 'schedule', (t) =>
  t.field({
    type: ScheduleRef,
    nullable: true,
    description: 'The schedule that started it (trigger SCHEDULE); null otherwise or once the schedule is deleted.',
    resolve: async (j: Job, _a, ctx) =>
      j.scheduleId == null ? null : ((await ctx.loaders.schedule.load(j.scheduleId)) ?? null),
  }),
);

builder.objectFields(AudienceRef, (t) => ({
  evaluationSchedule: t.field({
    type: ScheduleRef,
    nullable: true,
    description:
      'The ACTIVE BATCH_SEGMENTATION schedule that keeps it fresh (the one due soonest, naming it or "*"); null when none does.',
    resolve: async (a, _args, ctx) => {
      const { scheduleId } = await ctx.loaders.freshness.load(a.id);
      return scheduleId == null ? null : ((await ctx.loaders.schedule.load(scheduleId)) ?? null);
    },
  }),
  stale: t.boolean({
    nullable: true,
    description:
      "True when its evaluation schedule's last due time was MISSED or failed to start, or that run failed or was cancelled; null without an evaluation schedule.",
    resolve: async (a, _args, ctx) => (await ctx.loaders.freshness.load(a.id)).stale,
  }),
}));

const ScheduleFilter = builder.inputType('ScheduleFilter', {
  description: 'Narrows a schedule list; the conditions given must all hold.',
  fields: (t) => ({
    type: t.field({ type: ScheduleTypeEnum, description: 'Only schedules of this type.' }),
    state: t.field({ type: ScheduleStateEnum, description: 'Only schedules in this state.' }),
  }),
});

const CreateScheduleInput = builder.inputType('CreateScheduleInput', {
  description: 'A new schedule.',
  fields: (t) => ({
    name: t.string({ required: true, description: 'Its name, unique in the sandbox.' }),
    type: t.field({ type: ScheduleTypeEnum, required: true, description: 'What it runs.' }),
    properties: t.field({
      type: 'JSON',
      required: true,
      description: 'BATCH_SEGMENTATION: { segments: ["*"] } or definition ids; EXPORT: a CreateExportJobInput.',
    }),
    cron: t.string({
      required: true,
      description: '5 fields (standard cron) or 6–7 fields (Quartz: seconds first, ?, L, W, #, weekday 1 = SUN).',
    }),
    timezone: t.string({ defaultValue: 'UTC', description: 'The IANA time zone the cron is read in.' }),
    state: t.field({ type: ScheduleStateEnum, defaultValue: 'ACTIVE', description: 'Whether it runs.' }),
  }),
});

const UpdateScheduleInput = builder.inputType('UpdateScheduleInput', {
  description: 'Changes to a schedule; fields left out stay as they are. Its type cannot change.',
  fields: (t) => ({
    name: t.string({ description: 'A new name, unique in the sandbox.' }),
    properties: t.field({ type: 'JSON', description: 'New properties for its type (checked as at creation).' }),
    cron: t.string({ description: 'A new cron expression (due times are counted from the change).' }),
    timezone: t.string({ description: 'A new IANA time zone.' }),
    state: t.field({ type: ScheduleStateEnum, description: 'ACTIVE or INACTIVE.' }),
  }),
});

const scheduleIdArg = 'The global id of the schedule.';

builder.queryFields((t) => ({
  schedule: t.field({
    type: ScheduleRef,
    nullable: true,
    description: 'A schedule by global id; null when it does not exist in this sandbox.',
    args: { id: t.arg.id({ required: true, description: scheduleIdArg }) },
    resolve: async (_r, args, ctx) => {
      const id = decodeId(args.id, 'Schedule');
      return id === undefined ? null : ((await ctx.loaders.schedule.load(id)) ?? null);
    },
  }),
  schedules: t.connection(
    {
      type: ScheduleRef,
      description: 'The schedules of the sandbox, oldest first.',
      args: { filter: t.arg({ type: ScheduleFilter, description: 'Conditions the schedules must meet.' }) },
      complexity: connectionComplexity,
      resolve: async (_r, args, ctx) => {
        const page = await listSchedules(
          ctx.conn,
          ctx.sandbox.id,
          { type: args.filter?.type, state: args.filter?.state },
          args,
        );
        for (const s of page.items) ctx.loaders.schedule.prime(s.id, s);
        return toConnection(page);
      },
    },
    { name: 'ScheduleConnection', description: 'A page of schedules.' },
    { name: 'ScheduleEdge', description: 'A schedule in a page, with its cursor.' },
  ),
}));

builder.mutationFields((t) => ({
  createSchedule: t.field({
    type: ScheduleRef,
    nullable: true,
    description: 'Makes a schedule; its properties, cron and zone are checked now (BAD_USER_INPUT naming the problem).',
    args: { input: t.arg({ type: CreateScheduleInput, required: true, description: 'The new schedule.' }) },
    resolve: (_r, { input }, ctx) => ctx.app.schedules.create(ctx.sandbox.id, input),
  }),
  updateSchedule: t.field({
    type: ScheduleRef,
    nullable: true,
    description: 'Changes a schedule; returns it changed.',
    args: {
      id: t.arg.id({ required: true, description: scheduleIdArg }),
      input: t.arg({ type: UpdateScheduleInput, required: true, description: 'The changes.' }),
      expectedVersion: t.arg.int({ description: 'The version the client last read; a stale one is a CONFLICT.' }),
    },
    resolve: (_r, args, ctx) =>
      ctx.app.schedules.update(ctx.sandbox.id, requireId(args.id, 'Schedule'), args.input, args.expectedVersion),
  }),
  deleteSchedule: t.globalID({
    nullable: true,
    description: 'Deletes a schedule with its ticks; a run already queued or running goes on. Returns its id.',
    args: { id: t.arg.id({ required: true, description: scheduleIdArg }) },
    resolve: async (_r, args, ctx) => ({
      type: 'Schedule',
      id: await ctx.app.schedules.delete(ctx.sandbox.id, requireId(args.id, 'Schedule')),
    }),
  }),
  runSchedule: t.field({
    type: JobRef,
    nullable: true,
    description: 'Starts a run now, outside the cron; CONFLICT while a run of it is still active. Returns the job.',
    args: { id: t.arg.id({ required: true, description: scheduleIdArg }) },
    resolve: (_r, args, ctx) => ctx.app.schedules.runNow(ctx.sandbox.id, requireId(args.id, 'Schedule')),
  }),
}));

builder.subscriptionField('scheduleTicked', (t) =>
  t.field({
    type: ScheduleTickType,
    description: 'Every due time of the schedules of this sandbox as it is accounted for (optionally of one schedule).',
    args: { scheduleId: t.arg.id({ description: 'Only this schedule (default: all).' }) },
    subscribe: async function* (_r, args, ctx) {
      const only = args.scheduleId == null ? undefined : requireId(args.scheduleId, 'Schedule');
      const updates = ctx.app.bus.subscribe<ScheduleTick>(topics.scheduleTicks(ctx.sandbox.id), ctx.signal);
      try {
        for await (const { payload: tick } of updates) if (only === undefined || tick.scheduleId === only) yield tick;
      } finally {
        updates.close();
      }
    },
    resolve: (tick) => tick,
  }),
);
