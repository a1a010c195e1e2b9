import {
  type DefinitionChangePreview,
  listChangeSample,
  previewDefinitionChange,
} from '../../domain/definition-changes/definition-change-preview.js';
import type { AffectedDependent, CountEstimate } from '../../domain/definition-changes/definition-change-task.js';
import type { PqlFormat } from '../../domain/expressions.js';
import { type Job, jobsByIds, requireJob } from '../../domain/jobs/job-store.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { decodeId, requireId } from '../ids.js';
import { JobRef, watchJob } from './job.js';
import { ProfileConnection, ProfileRef } from './profile.js';
import { SegmentDefinitionRef } from './refs.js';
import {
  EvaluationInfoInput,
  EvaluationInfoType,
  PqlExpressionInput,
  PqlExpressionType,
} from './segment-definition.js';

const KIND = 'DEFINITION_CHANGE_PREVIEW';
const TYPE = 'DefinitionChangePreview';

const CountEstimateType = builder.objectRef<CountEstimate>('CountEstimate').implement({
  description: 'A count: a running estimate with a 95 % interval while a job reads, exact at the end.',
  fields: (t) => ({
    value: t.exposeInt('value', { description: 'The estimate (or the count, when exact).' }),
    low: t.exposeInt('low', { description: 'Low end of the interval.' }),
    high: t.exposeInt('high', { description: 'High end of the interval.' }),
    exact: t.exposeBoolean('exact', { description: 'The count is exact (low = high = value).' }),
  }),
});

const AffectedDependentType = builder.objectRef<AffectedDependent>('AffectedDependent').implement({
  description:
    'A definition reading this audience through inSegment (directly or through another dependent) whose members would change, with how many.',
  fields: (t) => ({
    segmentDefinition: t.field({
      type: SegmentDefinitionRef,
      nullable: true,
      description: 'The dependent definition; null when it has been deleted since.',
      resolve: (d, _a, ctx) => ctx.loaders.definition.load(d.definitionId),
    }),
    wouldJoin: t.exposeInt('wouldJoin', { description: 'Profiles that would enter it.' }),
    wouldLeave: t.exposeInt('wouldLeave', { description: 'Profiles that would leave it.' }),
  }),
});

const pending: CountEstimate = { value: 0, low: 0, high: 0, exact: false };

export const DefinitionChangePreviewRef = builder.objectRef<DefinitionChangePreview>(TYPE);

builder.node(DefinitionChangePreviewRef, {
  description:
    "A dry run of a definition change: the new expression evaluated against the store at one now, compared with the audience's current members.",
  interfaces: [JobRef],
  isTypeOf: (j) => (j as Job).kind === KIND,
  id: { resolve: (j) => j.id },
  loadMany: async (ids, ctx) => {
    const found = await jobsByIds(ctx.conn, ctx.sandbox.id, ids.map(Number), KIND);
    return ids.map((id) => found.get(Number(id)) ?? null);
  },
  fields: (t) => ({
    segmentDefinition: t.field({
      type: SegmentDefinitionRef,
      nullable: true,
      description: 'The definition whose change is previewed (null when deleted since).',
      resolve: (j, _a, ctx) => ctx.loaders.definition.load(j.input.definitionId),
    }),
    expression: t.field({
      type: PqlExpressionType,
      description: 'The new expression.',
      resolve: (j) => j.input.expression,
    }),
    evaluationInfo: t.field({
      type: EvaluationInfoType,
      nullable: true,
      description:
        'The evaluation settings the change would save, as updateSegmentDefinition would settle them for the new expression (null on dry runs from before settings were recorded).',
      resolve: (j) => j.input.evaluationInfo ?? null,
    }),
    evaluationWarnings: t.stringList({
      description:
        'Why a requested streaming or edge evaluation would run as batch under the new expression, naming the clauses that force batch; empty when nothing would be refused.',
      resolve: (j) => j.input.evaluationWarnings ?? [],
    }),
    seed: t.int({
      description:
        'The seed of the random reading order; the same seed on the same store gives the same running estimates.',
      resolve: (j) => j.input.seed,
    }),
    wouldJoin: t.field({
      type: CountEstimateType,
      description: 'Profiles that qualify under the new expression and are not members now.',
      resolve: (j) => j.result?.wouldJoin ?? pending,
    }),
    wouldLeave: t.field({
      type: CountEstimateType,
      description: 'Members now that would not qualify under the new expression.',
      resolve: (j) => j.result?.wouldLeave ?? pending,
    }),
    wouldStay: t.field({
      type: CountEstimateType,
      description: 'Members now that still qualify.',
      resolve: (j) => j.result?.wouldStay ?? pending,
    }),
    joinSample: t.connection(
      {
        type: ProfileRef,
        description: 'Up to 100 profiles that would join, in id order (once it has succeeded).',
        complexity: connectionComplexity,
        resolve: async (j, args, ctx) =>
          toConnection(await listChangeSample(ctx.conn, ctx.sandbox.id, j, 'join', args)),
      },
      ProfileConnection,
    ),
    leaveSample: t.connection(
      {
        type: ProfileRef,
        description: 'Up to 100 members that would leave, in id order (once it has succeeded).',
        complexity: connectionComplexity,
        resolve: async (j, args, ctx) =>
          toConnection(await listChangeSample(ctx.conn, ctx.sandbox.id, j, 'leave', args)),
      },
      ProfileConnection,
    ),
    affectedDependents: t.field({
      type: [SegmentDefinitionRef],
      description:
        'Definitions reading this audience through inSegment, directly or through another dependent, whose members would change, in dependency order (once it has succeeded; deleted ones left out).',
      resolve: async (j, _a, ctx) => {
        const defs = await Promise.all(
          (j.result?.affectedDependents ?? []).map((d) => ctx.loaders.definition.load(d.definitionId)),
        );
        return defs.filter((d) => d != null);
      },
    }),
    dependentChanges: t.field({
      type: [AffectedDependentType],
      description:
        'The affectedDependents with how many profiles would join and leave each, in the same order (once it has succeeded).',
      resolve: (j) => j.result?.affectedDependents ?? [],
    }),
  }),
});

builder.mutationField('previewDefinitionChange', (t) =>
  t.field({
    type: DefinitionChangePreviewRef,
    nullable: true,
    description:
      "Starts a dry run of changing a definition's expression (watch it with definitionChangePreviewUpdated); returns it QUEUED. Save with updateSegmentDefinition(expectedVersion) after.",
    args: {
      id: t.arg.id({ required: true, description: 'The global id of the definition.' }),
      expression: t.arg({ type: PqlExpressionInput, required: true, description: 'The new expression.' }),
      evaluationInfo: t.arg({
        type: EvaluationInfoInput,
        description:
          'The evaluation settings to change with it, checked as updateSegmentDefinition checks them (see evaluationWarnings); left out keeps the current ones.',
      }),
      seed: t.arg.int({ description: 'Makes the random reading order, and so the running estimates, reproducible.' }),
    },
    resolve: (_r, args, ctx) =>
      previewDefinitionChange(
        ctx.app,
        ctx.sandbox.id,
        requireId(args.id, 'SegmentDefinition'),
        { format: (args.expression.format ?? 'PQL_TEXT') as PqlFormat, value: args.expression.value },
        { evaluationInfo: args.evaluationInfo, seed: args.seed },
      ),
  }),
);

builder.queryField('definitionChangePreview', (t) =>
  t.field({
    type: DefinitionChangePreviewRef,
    nullable: true,
    description: 'A definition change dry run by global id; null when it does not exist in this sandbox.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the dry run.' }) },
    resolve: async (_r, args, ctx) => {
      const id = decodeId(args.id, TYPE);
      return id === undefined ? null : ((await jobsByIds(ctx.conn, ctx.sandbox.id, [id], KIND)).get(id) ?? null);
    },
  }),
);

builder.subscriptionField('definitionChangePreviewUpdated', (t) =>
  t.field({
    type: DefinitionChangePreviewRef,
    description: 'The dry run now, then every change (running estimates with intervals); completes after it ends.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the dry run.' }) },
    subscribe: async (_r, args, ctx) => {
      const id = requireId(args.id, TYPE);
      await requireJob(ctx.conn, ctx.sandbox.id, id, KIND, TYPE);
      return watchJob(ctx, id, KIND);
    },
    resolve: (job) => job,
  }),
);
