import type { Audience } from '../../domain/audiences.js';
import { asKind, type Job, jobsByIds, listJobs, requireJob } from '../../domain/jobs/job-store.js';
import type { AudienceCounts, FailedDefinition, SegmentMetrics } from '../../domain/segment-jobs/segment-evaluation.js';
import { createSegmentJob, type SegmentJob } from '../../domain/segment-jobs/segment-job.js';
import { builder, type SchemaTypes } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import type { Context } from '../context.js';
import { decodeId, requireId } from '../ids.js';
import { JobRef, JobStatusEnum, watchJob } from './job.js';
import { AudienceRef, SegmentDefinitionRef } from './refs.js';

/** The metrics of a job are keyed by audience global id; each entry names its audience. */
interface AudienceKeyed {
  audienceId: string;
}

function audienceOf(entry: AudienceKeyed, ctx: Context): Promise<Audience | undefined> | null {
  const id = decodeId(entry.audienceId, 'Audience');
  return id === undefined ? null : ctx.loaders.audience.load(id);
}

/** The fields every per-audience metric carries. */
function audienceFields<T extends AudienceKeyed>(t: PothosSchemaTypes.ObjectFieldBuilder<SchemaTypes, T>) {
  return {
    audienceId: t.id({
      description: 'Global id of the audience (kept when the audience has been deleted since).',
      resolve: (entry) => entry.audienceId,
    }),
    audience: t.field({
      type: AudienceRef,
      nullable: true,
      description: 'The audience; null when it has been deleted since.',
      resolve: (entry, _a, ctx) => audienceOf(entry, ctx),
    }),
  };
}

const AudienceCountType = builder.objectRef<AudienceKeyed & { count: number }>('AudienceCount').implement({
  description: 'How many profiles qualified for one audience in a segment job.',
  fields: (t) => ({
    ...audienceFields(t),
    count: t.exposeInt('count', { description: 'Profiles that qualified.' }),
  }),
});

const AudienceStatusCountType = builder.objectRef<AudienceKeyed & AudienceCounts>('AudienceStatusCount').implement({
  description: "An audience's members by status after a segment job.",
  fields: (t) => ({
    ...audienceFields(t),
    realized: t.exposeInt('realized', { description: 'Members that entered in this run.' }),
    existing: t.exposeInt('existing', { description: 'Members before this run that still qualify.' }),
    exited: t.exposeInt('exited', { description: 'Members before this run that no longer qualify.' }),
  }),
});

const AudienceNamespaceCountType = builder
  .objectRef<AudienceKeyed & { namespace: string; count: number }>('AudienceNamespaceCount')
  .implement({
    description: 'Qualifying profiles of one audience with an identity in one namespace, in a segment job.',
    fields: (t) => ({
      ...audienceFields(t),
      namespace: t.exposeString('namespace', { description: 'The identity namespace, e.g. email.' }),
      count: t.exposeInt('count', { description: 'Qualifying profiles with an identity in it.' }),
    }),
  });

const FailedDefinitionType = builder.objectRef<FailedDefinition>('FailedDefinition').implement({
  description:
    'A definition a segment job could not evaluate. It failed alone: its memberships were left as they were, and the other definitions of the job were evaluated.',
  fields: (t) => ({
    segmentDefinition: t.field({
      type: SegmentDefinitionRef,
      nullable: true,
      description: 'The definition (null once deleted).',
      resolve: async (f, _a, ctx) => (await ctx.loaders.definition.load(f.definitionId)) ?? null,
    }),
    reason: t.exposeString('reason', { description: 'Why it could not be evaluated.' }),
  }),
});

const SegmentJobMetricsType = builder.objectRef<SegmentMetrics>('SegmentJobMetrics').implement({
  description: 'What a finished segment job counted and how long it took.',
  fields: (t) => ({
    totalProfiles: t.exposeInt('totalProfiles', { description: 'Profiles evaluated.' }),
    segmentedProfileCounter: t.field({
      type: [AudienceCountType],
      description: 'Per audience of the job: the profiles that qualified.',
      resolve: (m) => Object.entries(m.segmentedProfileCounter).map(([audienceId, count]) => ({ audienceId, count })),
    }),
    segmentedProfileByStatusCounter: t.field({
      type: [AudienceStatusCountType],
      description: 'Per audience of the job: its members by status after this run.',
      resolve: (m) =>
        Object.entries(m.segmentedProfileByStatusCounter).map(([audienceId, counts]) => ({ audienceId, ...counts })),
    }),
    segmentedProfileByNamespaceCounter: t.field({
      type: [AudienceNamespaceCountType],
      description: 'Per audience of the job and identity namespace: qualifying profiles with an identity there.',
      resolve: (m) =>
        Object.entries(m.segmentedProfileByNamespaceCounter).flatMap(([audienceId, byNamespace]) =>
          Object.entries(byNamespace).map(([namespace, count]) => ({ audienceId, namespace, count })),
        ),
    }),
    totalTimeMs: t.exposeInt('totalTimeMs', { description: 'Wall time of the whole job, in milliseconds.' }),
    profileSegmentationTimeMs: t.exposeInt('profileSegmentationTimeMs', {
      description: 'Time spent evaluating profiles (without writing memberships), in milliseconds.',
    }),
    failedDefinitions: t.field({
      type: [FailedDefinitionType],
      description: 'Definitions that could not be evaluated, each with its reason; empty when all ran.',
      resolve: (m) => m.failedDefinitions ?? [],
    }),
  }),
});

export const SegmentJobRef = builder.objectRef<SegmentJob>('SegmentJob');

builder.node(SegmentJobRef, {
  description: 'An evaluation of segment definitions over the whole store into memberships.',
  interfaces: [JobRef],
  isTypeOf: (j) => (j as Job).kind === 'SEGMENT',
  id: { resolve: (j) => j.id },
  loadMany: async (ids, ctx) => {
    const found = await jobsByIds(ctx.conn, ctx.sandbox.id, ids.map(Number), 'SEGMENT');
    return ids.map((id) => found.get(Number(id)) ?? null);
  },
  fields: (t) => ({
    segmentDefinitions: t.field({
      type: [SegmentDefinitionRef],
      description: 'The definitions asked for (those deleted since are left out).',
      resolve: async (j, _a, ctx) => {
        const ids = j.input.definitionIds ?? [];
        return (await ctx.loaders.definition.loadMany(ids)).filter((d) => d && !(d instanceof Error)) as never;
      },
    }),
    all: t.boolean({
      description: 'It evaluates every batch-enabled definition, not a list.',
      resolve: (j) => j.input.all,
    }),
    at: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'The evaluation instant (fixed when the job starts).',
      resolve: (j) => j.input.now ?? j.input.at,
    }),
    metrics: t.field({
      type: SegmentJobMetricsType,
      nullable: true,
      description: 'Counts and timings; null until the job has succeeded.',
      resolve: (j) => j.result?.metrics ?? null,
    }),
    notes: t.stringList({
      description: 'Remarks on the run, e.g. definitions skipped because their audience is INACTIVE.',
      resolve: (j) => j.result?.notes ?? [],
    }),
  }),
});

export const JobFilter = builder.inputType('JobFilter', {
  description: 'Narrows a job list.',
  fields: (t) => ({ statuses: t.field({ type: [JobStatusEnum], description: 'Only jobs in these states.' }) }),
});

const CreateSegmentJobInput = builder.inputType('CreateSegmentJobInput', {
  description: 'What a segment job evaluates: a list of definitions, or all.',
  fields: (t) => ({
    segmentDefinitionIds: t.idList({ description: 'The definitions to evaluate (with the ones they depend on).' }),
    all: t.boolean({ description: 'Every batch-enabled definition whose audience is DRAFT or PUBLISHED.' }),
    at: t.field({ type: 'DateTime', description: 'Evaluate as of this instant (default: when the job starts).' }),
  }),
});

builder.queryFields((t) => ({
  segmentJob: t.field({
    type: SegmentJobRef,
    nullable: true,
    description: 'A segment job by global id; null when it does not exist in this sandbox.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the job.' }) },
    resolve: async (_r, args, ctx) => {
      const id = decodeId(args.id, 'SegmentJob');
      return id === undefined ? null : ((await jobsByIds(ctx.conn, ctx.sandbox.id, [id], 'SEGMENT')).get(id) ?? null);
    },
  }),
  segmentJobs: t.connection(
    {
      type: SegmentJobRef,
      description: 'The segment jobs of the sandbox, newest first.',
      args: { filter: t.arg({ type: JobFilter, description: 'Conditions the jobs must meet.' }) },
      complexity: connectionComplexity,
      resolve: async (_r, args, ctx) =>
        toConnection(
          await listJobs(ctx.conn, ctx.sandbox.id, { kinds: ['SEGMENT'], statuses: args.filter?.statuses }, args),
        ),
    },
    { name: 'SegmentJobConnection', description: 'A page of segment jobs.' },
    { name: 'SegmentJobEdge', description: 'A segment job in a page, with its cursor.' },
  ),
}));

builder.mutationFields((t) => ({
  createSegmentJob: t.field({
    type: SegmentJobRef,
    nullable: true,
    description: 'Queues an evaluation of the given definitions (or all) into memberships; returns the QUEUED job.',
    args: { input: t.arg({ type: CreateSegmentJobInput, required: true, description: 'What to evaluate.' }) },
    resolve: (_r, { input }, ctx) =>
      createSegmentJob(ctx.app, ctx.sandbox.id, {
        definitionIds: input.segmentDefinitionIds?.map((id) => requireId(id, 'SegmentDefinition')),
        all: input.all,
        at: input.at,
      }),
  }),
  cancelSegmentJob: t.field({
    type: SegmentJobRef,
    nullable: true,
    description:
      'Cancels a queued or running job (CANCELLED within a second); CONFLICT once it has finished. Returns the job.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the job.' }) },
    resolve: async (_r, args, ctx) => {
      const id = requireId(args.id, 'SegmentJob');
      await requireJob(ctx.conn, ctx.sandbox.id, id, 'SEGMENT', 'SegmentJob');
      return asKind(await ctx.app.jobs.cancel(id), 'SEGMENT');
    },
  }),
}));

builder.subscriptionField('segmentJobUpdated', (t) =>
  t.field({
    type: SegmentJobRef,
    description: 'The job now, then every change; completes after it ends.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the job.' }) },
    subscribe: async (_r, args, ctx) => {
      const id = requireId(args.id, 'SegmentJob');
      await requireJob(ctx.conn, ctx.sandbox.id, id, 'SEGMENT', 'SegmentJob');
      return watchJob(ctx, id, 'SEGMENT');
    },
    resolve: (job) => job,
  }),
);
