import type { PqlFormat } from '../../domain/expressions.js';
import { type Job, jobsByIds, requireJob } from '../../domain/jobs/job-store.js';
import type { Estimate } from '../../domain/previews/estimate.js';
import {
  createPreview,
  deletePreview,
  isStale,
  latestDefinitionPreview,
  listPreviewResults,
  type Preview,
} from '../../domain/previews/previews.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { decodeId, requireId } from '../ids.js';
import { JobRef, watchJob } from './job.js';
import { ProfileConnection, ProfileRef } from './profile.js';
import { SegmentDefinitionRef } from './refs.js';
import { PqlExpressionInput, PqlExpressionType } from './segment-definition.js';

interface EstimateView {
  estimate: Estimate;
  sandboxId: number;
}

const IntRangeType = builder.objectRef<{ low: number; high: number }>('IntRange').implement({
  description: 'A closed range of whole numbers.',
  fields: (t) => ({
    low: t.exposeInt('low', { description: 'The lower bound (included).' }),
    high: t.exposeInt('high', { description: 'The upper bound (included).' }),
  }),
});

const NamespaceCountType = builder.objectRef<{ namespace: string; count: number }>('NamespaceCount').implement({
  description: 'A count of profiles with an identity in one namespace.',
  fields: (t) => ({
    namespace: t.exposeString('namespace', { description: 'The identity namespace, e.g. email.' }),
    count: t.exposeInt('count', { description: 'Profiles with an identity in it.' }),
  }),
});

const EstimateType = builder.objectRef<EstimateView>('Estimate').implement({
  description: 'Audience size from a uniform sample: a Wilson score interval, scaled to the population.',
  fields: (t) => ({
    estimatedSize: t.int({
      description: 'The estimated number of qualifying profiles in the whole store.',
      resolve: (v) => v.estimate.estimatedSize,
    }),
    confidenceLevel: t.float({
      description: 'The confidence level of the interval, e.g. 0.95.',
      resolve: (v) => v.estimate.confidenceLevel,
    }),
    confidenceInterval: t.field({
      type: IntRangeType,
      description: 'The range the true size lies in at the confidence level.',
      resolve: (v) => v.estimate.confidenceInterval,
    }),
    standardError: t.float({
      description: 'Standard error of the estimated size, in profiles.',
      resolve: (v) => v.estimate.standardError,
    }),
    profilesRead: t.int({
      description: 'Profiles of the sample read so far.',
      resolve: (v) => v.estimate.profilesRead,
    }),
    totalProfiles: t.int({
      description: 'Profiles in the store when the sample was drawn.',
      resolve: (v) => v.estimate.totalProfiles,
    }),
    exact: t.boolean({ description: 'The sample was the whole population.', resolve: (v) => v.estimate.exact }),
    estimatedNamespaceDistribution: t.field({
      type: [NamespaceCountType],
      description:
        'Qualifying profiles per identity namespace, scaled to the population. Always an estimate: when the whole store was read, the shares in a seeded uniform sample of 1,000 qualifying profiles (all of them when fewer) are applied to the exact count.',
      resolve: (v) => v.estimate.estimatedNamespaceDistribution,
    }),
    computedAt: t.field({
      type: 'DateTime',
      description: 'When this estimate was computed.',
      resolve: (v) => v.estimate.computedAt,
    }),
    stale: t.boolean({
      description: 'The number of profiles has changed by more than 5 % since.',
      resolve: (v, _a, ctx) => isStale(ctx.app, v.sandboxId, v.estimate),
    }),
  }),
});

const estimateOf = (preview: Preview): EstimateView | null => {
  const estimate = preview.result?.estimate;
  return estimate ? { estimate, sandboxId: preview.sandboxId } : null;
};

const PreviewRef = builder.objectRef<Preview>('Preview');

builder.node(PreviewRef, {
  description: 'An expression evaluated on a sample of profiles, with a running size estimate. Expires after 24 hours.',
  interfaces: [JobRef],
  isTypeOf: (j) => (j as Job).kind === 'PREVIEW',
  id: { resolve: (j) => j.id },
  loadMany: async (ids, ctx) => {
    const found = await jobsByIds(ctx.conn, ctx.sandbox.id, ids.map(Number), 'PREVIEW');
    return ids.map((id) => found.get(Number(id)) ?? null);
  },
  fields: (t) => ({
    expression: t.field({
      type: PqlExpressionType,
      description: 'The expression evaluated on the sample.',
      resolve: (j) => j.input.expression,
    }),
    segmentDefinition: t.field({
      type: SegmentDefinitionRef,
      nullable: true,
      description: 'The definition previewed, when it was started from one (and still exists).',
      resolve: (j, _a, ctx) => {
        const id = j.input.definitionId;
        return id == null ? null : ctx.loaders.definition.load(id);
      },
    }),
    sampleSize: t.int({
      description: 'Profiles the preview has read.',
      resolve: (j) => j.result?.sampleSize ?? j.progressDone,
    }),
    seed: t.int({
      description: 'The seed of the sample; the same seed draws the same sample.',
      resolve: (j) => j.input.seed,
    }),
    results: t.connection(
      {
        type: ProfileRef,
        description: 'Qualifying profiles of the sample (once the preview has succeeded).',
        complexity: connectionComplexity,
        resolve: async (j, args, ctx) => toConnection(await listPreviewResults(ctx.app, ctx.sandbox.id, j.id, args)),
      },
      ProfileConnection,
    ),
    estimate: t.field({
      type: EstimateType,
      nullable: true,
      description: 'The running estimate; null before the first part of the sample has been read.',
      resolve: estimateOf,
    }),
  }),
});

const CreatePreviewInput = builder.inputType('CreatePreviewInput', {
  description: 'What to preview: an expression, or a saved definition (give one of the two).',
  fields: (t) => ({
    expression: t.field({ type: PqlExpressionInput, description: 'An expression to preview.' }),
    segmentDefinitionId: t.id({ description: 'A definition whose expression to preview.' }),
    sampleSize: t.int({ description: 'Default: the whole store up to 1 M profiles, 1 M up to 20 M, 5 % above.' }),
    confidenceLevel: t.float({
      defaultValue: 0.95,
      description: 'The confidence level of the interval, between 0 and 1.',
    }),
    at: t.field({ type: 'DateTime', description: 'Evaluate as of this instant (default: when the preview starts).' }),
    seed: t.int({ description: 'Makes the sample reproducible.' }),
  }),
});

builder.queryField('preview', (t) =>
  t.field({
    type: PreviewRef,
    nullable: true,
    description: 'A preview by global id; null when it does not exist in this sandbox (or has expired).',
    args: { id: t.arg.id({ required: true, description: 'The global id of the preview.' }) },
    resolve: async (_r, args, ctx) => {
      const id = decodeId(args.id, 'Preview');
      return id === undefined ? null : ((await jobsByIds(ctx.conn, ctx.sandbox.id, [id], 'PREVIEW')).get(id) ?? null);
    },
  }),
);

builder.mutationFields((t) => ({
  createPreview: t.field({
    type: PreviewRef,
    nullable: true,
    description: 'Starts a preview: a size estimate from a sample (watch it with previewUpdated); returns it QUEUED.',
    args: { input: t.arg({ type: CreatePreviewInput, required: true, description: 'What to preview.' }) },
    resolve: (_r, { input }, ctx) =>
      createPreview(ctx.app, ctx.sandbox.id, {
        expression: input.expression
          ? { format: (input.expression.format ?? 'PQL_TEXT') as PqlFormat, value: input.expression.value }
          : null,
        definitionId:
          input.segmentDefinitionId == null ? null : requireId(input.segmentDefinitionId, 'SegmentDefinition'),
        sampleSize: input.sampleSize,
        confidenceLevel: input.confidenceLevel,
        at: input.at,
        seed: input.seed,
      }),
  }),
  deletePreview: t.globalID({
    nullable: true,
    description: 'Deletes a preview (stopping it when it still runs); returns its id.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the preview.' }) },
    resolve: async (_r, args, ctx) => {
      const id = requireId(args.id, 'Preview');
      await requireJob(ctx.conn, ctx.sandbox.id, id, 'PREVIEW', 'Preview');
      return { type: 'Preview', id: await deletePreview(ctx.app, id) };
    },
  }),
}));

builder.subscriptionField('previewUpdated', (t) =>
  t.field({
    type: PreviewRef,
    description:
      'The preview now, then every change (each progress event carries the running estimate); completes after it ends.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the preview.' }) },
    subscribe: async (_r, args, ctx) => {
      const id = requireId(args.id, 'Preview');
      await requireJob(ctx.conn, ctx.sandbox.id, id, 'PREVIEW', 'Preview');
      return watchJob(ctx, id, 'PREVIEW');
    },
    resolve: (job) => job,
  }),
);

builder.objectField(SegmentDefinitionRef, 'estimate', (t) =>
  t.field({
    type: EstimateType,
    nullable: true,
    description:
      "The estimate of the definition's latest preview (null before the first); a query only reads it: start a new one with refreshEstimate.",
    resolve: async (d, _a, ctx) => {
      const latest = await latestDefinitionPreview(ctx.app, ctx.sandbox.id, d.id);
      return latest ? estimateOf(latest) : null;
    },
  }),
);

builder.mutationField('refreshEstimate', (t) =>
  t.field({
    type: PreviewRef,
    nullable: true,
    description:
      "Starts a new preview of a saved definition; its estimate becomes the definition's estimate (watch it with previewUpdated).",
    args: { segmentDefinitionId: t.arg.id({ required: true, description: 'The definition to estimate.' }) },
    resolve: (_r, args, ctx) =>
      createPreview(ctx.app, ctx.sandbox.id, {
        definitionId: requireId(args.segmentDefinitionId, 'SegmentDefinition'),
      }),
  }),
);

builder.objectField(SegmentDefinitionRef, 'latestPreview', (t) =>
  t.field({
    type: PreviewRef,
    nullable: true,
    description: 'The newest preview of this definition (watch it with previewUpdated).',
    resolve: async (d, _a, ctx) => (await latestDefinitionPreview(ctx.app, ctx.sandbox.id, d.id)) ?? null,
  }),
);
