import {
  createSegmentDefinition,
  type DefinitionOrderField,
  deleteSegmentDefinition,
  listSegmentDefinitions,
  updateSegmentDefinition,
} from '../../domain/definitions.js';
import type { PqlFormat } from '../../domain/expressions.js';
import type { Eligibility } from '../../pql/types.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { decodeId, requireId } from '../ids.js';
import {
  AudienceRef,
  EvaluationMethodEnum,
  LifecycleStateEnum,
  OrderDirectionEnum,
  PqlFormatEnum,
  SegmentDefinitionRef,
} from './refs.js';

export const PqlExpressionType = builder.objectRef<{ format: PqlFormat; value: string }>('PqlExpression').implement({
  fields: (t) => ({
    type: t.string({ resolve: () => 'PQL' }),
    format: t.field({ type: PqlFormatEnum, resolve: (e) => e.format }),
    value: t.exposeString('value'),
  }),
});

const EvaluationInfoType = builder
  .objectRef<{ batch: boolean; streaming: boolean; edge: boolean }>('EvaluationInfo')
  .implement({
    fields: (t) => ({
      batch: t.exposeBoolean('batch'),
      streaming: t.exposeBoolean('streaming'),
      edge: t.exposeBoolean('edge'),
    }),
  });

export const EligibilityType = builder.objectRef<Eligibility>('Eligibility').implement({
  description: 'How an expression can run (docs/pql.md §7), with the reasons when streaming or edge are not possible.',
  fields: (t) => ({
    batch: t.exposeBoolean('batch'),
    streaming: t.exposeBoolean('streaming'),
    edge: t.exposeBoolean('edge'),
    reasons: t.exposeStringList('reasons'),
  }),
});

export const PqlExpressionInput = builder.inputType('PqlExpressionInput', {
  fields: (t) => ({
    format: t.field({ type: PqlFormatEnum, defaultValue: 'PQL_TEXT' }),
    value: t.string({ required: true }),
  }),
});

const EvaluationInfoInput = builder.inputType('EvaluationInfoInput', {
  fields: (t) => ({ batch: t.boolean(), streaming: t.boolean(), edge: t.boolean() }),
});

builder.node(SegmentDefinitionRef, {
  description: 'A named PQL expression; it makes and evaluates its audience.',
  id: { resolve: (d) => d.id },
  loadMany: (ids, ctx) => Promise.all(ids.map((id) => ctx.loaders.definition.load(Number(id)))),
  fields: (t) => ({
    name: t.exposeString('name'),
    description: t.exposeString('description', { nullable: true }),
    expression: t.field({ type: PqlExpressionType, resolve: (d) => d.expression }),
    normalizedExpression: t.exposeString('expressionText', { description: 'Canonical PQL text of the expression.' }),
    schemaName: t.string({ resolve: () => '_xdm.context.profile' }),
    evaluationInfo: t.field({
      type: EvaluationInfoType,
      description: 'What it runs as.',
      resolve: (d) => d.evaluationInfo,
    }),
    eligibility: t.field({
      type: EvaluationInfoType,
      description: 'What the expression allows.',
      resolve: (d) => ({ batch: true, streaming: d.eligibility.streaming, edge: d.eligibility.edge }),
    }),
    eligibilityReasons: t.stringList({ resolve: (d) => d.eligibility.reasons }),
    referencedFields: t.exposeStringList('referencedFields'),
    ttlInDays: t.exposeInt('ttlInDays', { nullable: true }),
    version: t.exposeInt('version'),
    createdAt: t.field({ type: 'DateTime', resolve: (d) => d.createdAt }),
    updatedAt: t.field({ type: 'DateTime', resolve: (d) => d.updatedAt }),
    audience: t.field({
      type: AudienceRef,
      resolve: async (d, _a, ctx) => (await ctx.loaders.audience.load(d.audienceId))!,
    }),
    dependsOn: t.field({
      type: [AudienceRef],
      description: 'Audiences named by inSegment.',
      resolve: async (d, _a, ctx) => {
        const ids = await ctx.loaders.dependsOn.load(d.id);
        return (await ctx.loaders.audience.loadMany(ids)).filter((a) => a && !(a instanceof Error)) as never;
      },
    }),
  }),
});

const SegmentDefinitionFilter = builder.inputType('SegmentDefinitionFilter', {
  fields: (t) => ({
    nameContains: t.string(),
    lifecycleState: t.field({ type: LifecycleStateEnum }),
    evaluationMethod: t.field({ type: EvaluationMethodEnum }),
    label: t.string(),
    folderId: t.id(),
    updatedAfter: t.field({ type: 'DateTime' }),
  }),
});

const SegmentDefinitionOrderFieldEnum = builder.enumType('SegmentDefinitionOrderField', {
  values: ['NAME', 'CREATED_AT', 'UPDATED_AT'] as const,
});

const SegmentDefinitionOrder = builder.inputType('SegmentDefinitionOrder', {
  fields: (t) => ({
    field: t.field({ type: SegmentDefinitionOrderFieldEnum, required: true }),
    direction: t.field({ type: OrderDirectionEnum, required: true }),
  }),
});

builder.queryFields((t) => ({
  segmentDefinition: t.field({
    type: SegmentDefinitionRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_r, args, ctx) => {
      const id = decodeId(args.id, 'SegmentDefinition');
      return id === undefined ? null : ((await ctx.loaders.definition.load(id)) ?? null);
    },
  }),
  segmentDefinitions: t.connection(
    {
      type: SegmentDefinitionRef,
      args: { filter: t.arg({ type: SegmentDefinitionFilter }), orderBy: t.arg({ type: SegmentDefinitionOrder }) },
      complexity: connectionComplexity,
      resolve: (_r, args, ctx) => {
        const f = args.filter;
        const page = listSegmentDefinitions(
          ctx.conn,
          ctx.sandbox.id,
          {
            nameContains: f?.nameContains,
            lifecycleState: f?.lifecycleState,
            evaluationMethod: f?.evaluationMethod,
            label: f?.label,
            folderId: f?.folderId == null ? null : (decodeId(f.folderId, 'Folder') ?? -1),
            updatedAfter: f?.updatedAfter,
          },
          args.orderBy
            ? { field: args.orderBy.field as DefinitionOrderField, direction: args.orderBy.direction }
            : undefined,
          args,
        );
        for (const d of page.items) ctx.loaders.definition.prime(d.id, d);
        return toConnection(page);
      },
    },
    { name: 'SegmentDefinitionConnection' },
    { name: 'SegmentDefinitionEdge' },
  ),
}));

const CreateSegmentDefinitionInput = builder.inputType('CreateSegmentDefinitionInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    description: t.string(),
    expression: t.field({ type: PqlExpressionInput, required: true }),
    evaluationInfo: t.field({ type: EvaluationInfoInput }),
    ttlInDays: t.int(),
    lifecycleState: t.field({ type: LifecycleStateEnum, defaultValue: 'DRAFT' }),
    labels: t.stringList(),
    folderId: t.id(),
  }),
});

const UpdateSegmentDefinitionInput = builder.inputType('UpdateSegmentDefinitionInput', {
  fields: (t) => ({
    name: t.string(),
    description: t.string(),
    expression: t.field({ type: PqlExpressionInput }),
    evaluationInfo: t.field({ type: EvaluationInfoInput }),
    ttlInDays: t.int(),
    lifecycleState: t.field({ type: LifecycleStateEnum }),
    labels: t.stringList(),
  }),
});

const expressionOf = (e: { format?: string | null; value: string }) => ({
  format: (e.format ?? 'PQL_TEXT') as PqlFormat,
  value: e.value,
});

builder.mutationFields((t) => ({
  createSegmentDefinition: t.field({
    type: SegmentDefinitionRef,
    description: 'Checks the expression and creates the definition with its audience, in one transaction.',
    args: { input: t.arg({ type: CreateSegmentDefinitionInput, required: true }) },
    resolve: (_r, { input }, ctx) =>
      createSegmentDefinition(ctx.conn, ctx.sandbox.id, {
        ...input,
        expression: expressionOf(input.expression),
        folderId: input.folderId == null ? null : requireId(input.folderId, 'Folder'),
      }),
  }),
  updateSegmentDefinition: t.field({
    type: SegmentDefinitionRef,
    args: {
      id: t.arg.id({ required: true }),
      input: t.arg({ type: UpdateSegmentDefinitionInput, required: true }),
      expectedVersion: t.arg.int({ description: 'The version the client last read; a stale one is a CONFLICT.' }),
    },
    resolve: (_r, args, ctx) =>
      updateSegmentDefinition(
        ctx.conn,
        ctx.sandbox.id,
        requireId(args.id, 'SegmentDefinition'),
        { ...args.input, expression: args.input.expression ? expressionOf(args.input.expression) : null },
        args.expectedVersion,
      ),
  }),
  deleteSegmentDefinition: t.globalID({
    description: 'Deletes the definition with its audience; CONFLICT (listing them) while other definitions use it.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_r, args, ctx) => ({
      type: 'SegmentDefinition',
      id: deleteSegmentDefinition(ctx.conn, ctx.sandbox.id, requireId(args.id, 'SegmentDefinition')),
    }),
  }),
}));
