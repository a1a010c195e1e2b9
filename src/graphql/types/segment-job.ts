import { type Job, type JobStatus, jobsByIds, listJobs, requireJob } from '../../domain/jobs/job-store.js';
import type { FailedDefinition, SegmentMetrics } from '../../domain/segment-jobs/segment-evaluation.js';
import { createSegmentJob } from '../../domain/segment-jobs/segment-job.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { decodeId, requireId } from '../ids.js';
import { JobRef, JobStatusEnum, watchJob } from './job.js';
import { SegmentDefinitionRef } from './refs.js';

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
  fields: (t) => ({
    totalProfiles: t.exposeInt('totalProfiles'),
    segmentedProfileCounter: t.field({
      type: 'JSON',
      description: 'Audience id → profiles that qualified.',
      resolve: (m) => m.segmentedProfileCounter,
    }),
    segmentedProfileByStatusCounter: t.field({
      type: 'JSON',
      description: 'Audience id → { realized, existing, exited } after this run.',
      resolve: (m) => m.segmentedProfileByStatusCounter,
    }),
    segmentedProfileByNamespaceCounter: t.field({
      type: 'JSON',
      description: 'Audience id → identity namespace → qualifying profiles with an identity there.',
      resolve: (m) => m.segmentedProfileByNamespaceCounter,
    }),
    totalTimeMs: t.exposeInt('totalTimeMs'),
    profileSegmentationTimeMs: t.exposeInt('profileSegmentationTimeMs'),
    failedDefinitions: t.field({
      type: [FailedDefinitionType],
      description: 'Definitions that could not be evaluated, each with its reason; empty when all ran.',
      resolve: (m) => m.failedDefinitions ?? [],
    }),
  }),
});

export const SegmentJobRef = builder.objectRef<Job>('SegmentJob');

builder.node(SegmentJobRef, {
  description: 'An evaluation of segment definitions over the whole store into memberships.',
  interfaces: [JobRef],
  isTypeOf: (j) => (j as Job).kind === 'SEGMENT',
  id: { resolve: (j) => j.id },
  loadMany: (ids, ctx) => {
    const found = jobsByIds(ctx.conn, ctx.sandbox.id, ids.map(Number), 'SEGMENT');
    return ids.map((id) => found.get(Number(id)) ?? null);
  },
  fields: (t) => ({
    segmentDefinitions: t.field({
      type: [SegmentDefinitionRef],
      description: 'The definitions asked for (those deleted since are left out).',
      resolve: async (j, _a, ctx) => {
        const ids = (j.input.definitionIds as number[] | null) ?? [];
        return (await ctx.loaders.definition.loadMany(ids)).filter((d) => d && !(d instanceof Error)) as never;
      },
    }),
    all: t.boolean({ resolve: (j) => Boolean(j.input.all) }),
    at: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'The evaluation instant (fixed when the job starts).',
      resolve: (j) => (j.input.now as number | undefined) ?? (j.input.at as number | null) ?? null,
    }),
    metrics: t.field({
      type: SegmentJobMetricsType,
      nullable: true,
      resolve: (j) => (j.result?.metrics as SegmentMetrics | undefined) ?? null,
    }),
    notes: t.stringList({ resolve: (j) => (j.result?.notes as string[] | undefined) ?? [] }),
  }),
});

const JobFilter = builder.inputType('JobFilter', {
  fields: (t) => ({ statuses: t.field({ type: [JobStatusEnum] }) }),
});

const CreateSegmentJobInput = builder.inputType('CreateSegmentJobInput', {
  fields: (t) => ({
    segmentDefinitionIds: t.idList(),
    all: t.boolean({ description: 'Every batch-enabled definition whose audience is DRAFT or PUBLISHED.' }),
    at: t.field({ type: 'DateTime', description: 'Evaluate as of this instant (default: when the job starts).' }),
  }),
});

builder.queryFields((t) => ({
  segmentJob: t.field({
    type: SegmentJobRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_r, args, ctx) => {
      const id = decodeId(args.id, 'SegmentJob');
      return id === undefined ? null : (jobsByIds(ctx.conn, ctx.sandbox.id, [id], 'SEGMENT').get(id) ?? null);
    },
  }),
  segmentJobs: t.connection(
    {
      type: SegmentJobRef,
      description: 'Newest first.',
      args: { filter: t.arg({ type: JobFilter }) },
      complexity: connectionComplexity,
      resolve: (_r, args, ctx) =>
        toConnection(
          listJobs(
            ctx.conn,
            ctx.sandbox.id,
            { kinds: ['SEGMENT'], statuses: args.filter?.statuses as JobStatus[] | null },
            args,
          ),
        ),
    },
    { name: 'SegmentJobConnection' },
    { name: 'SegmentJobEdge' },
  ),
}));

builder.mutationFields((t) => ({
  createSegmentJob: t.field({
    type: SegmentJobRef,
    description: 'Queues an evaluation of the given definitions (or all) into memberships.',
    args: { input: t.arg({ type: CreateSegmentJobInput, required: true }) },
    resolve: (_r, { input }, ctx) => {
      const job = createSegmentJob(ctx.app, ctx.sandbox.id, {
        definitionIds: input.segmentDefinitionIds?.map((id) => requireId(id, 'SegmentDefinition')),
        all: input.all,
        at: input.at,
      });
      ctx.app.jobs.enqueued(job);
      return job;
    },
  }),
  cancelSegmentJob: t.field({
    type: SegmentJobRef,
    description: 'Cancels a queued or running job (CANCELLED within a second); CONFLICT once it has finished.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_r, args, ctx) => {
      const id = requireId(args.id, 'SegmentJob');
      requireJob(ctx.conn, ctx.sandbox.id, id, 'SEGMENT', 'SegmentJob');
      return ctx.app.jobs.cancel(id);
    },
  }),
}));

builder.subscriptionField('segmentJobUpdated', (t) =>
  t.field({
    type: SegmentJobRef,
    description: 'The job now, then every change; completes after it ends.',
    args: { id: t.arg.id({ required: true }) },
    subscribe: (_r, args, ctx) => {
      const id = requireId(args.id, 'SegmentJob');
      requireJob(ctx.conn, ctx.sandbox.id, id, 'SEGMENT', 'SegmentJob');
      return watchJob(ctx, id, 'SEGMENT');
    },
    resolve: (job) => job,
  }),
);
