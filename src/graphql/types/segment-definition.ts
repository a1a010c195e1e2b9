import { actorName, listDefinitionVersions, type VersionWithDiff } from '../../domain/definition-versions.js';
import {
  createSegmentDefinition,
  DEFINITION_ORDER_FIELDS,
  deleteSegmentDefinition,
  listSegmentDefinitions,
  updateSegmentDefinition,
} from '../../domain/definitions.js';
import { EXPRESSION_TYPES, type PqlFormat } from '../../domain/expressions.js';
import type { Eligibility } from '../../pql/index.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { enumFromDomain } from '../enums.js';
import { decodeId, requireId } from '../ids.js';
import {
  AudienceRef,
  EvaluationMethodEnum,
  LifecycleStateEnum,
  OrderDirectionEnum,
  PqlFormatEnum,
  SegmentDefinitionRef,
} from './refs.js';
import { SegmentJobRef } from './segment-job.js';

const ExpressionTypeEnum = enumFromDomain(
  'ExpressionType',
  'The language an expression is written in.',
  EXPRESSION_TYPES,
  {
    PQL: 'The profile query language.',
  },
);

export const PqlExpressionType = builder.objectRef<{ format: PqlFormat; value: string }>('PqlExpression').implement({
  description: 'A PQL expression as it was given.',
  fields: (t) => ({
    type: t.field({
      type: ExpressionTypeEnum,
      description: 'Its language (always PQL).',
      resolve: () => 'PQL' as const,
    }),
    format: t.field({ type: PqlFormatEnum, description: 'The form of value.', resolve: (e) => e.format }),
    value: t.exposeString('value', { description: 'The expression, in that form.' }),
  }),
});

export const EvaluationInfoType = builder
  .objectRef<{ batch: boolean; streaming: boolean; edge: boolean }>('EvaluationInfo')
  .implement({
    description: 'Which ways of evaluation are on (or possible) for a definition.',
    fields: (t) => ({
      batch: t.exposeBoolean('batch', { description: 'Evaluated by segment jobs.' }),
      streaming: t.exposeBoolean('streaming', { description: 'Evaluated as ingests change profiles.' }),
      edge: t.exposeBoolean('edge', { description: 'Evaluated on demand for one profile by evaluateProfile.' }),
    }),
  });

const DefinitionVersionType = builder.objectRef<VersionWithDiff>('DefinitionVersion').implement({
  description: "One state of a definition's expression and evaluation settings.",
  fields: (t) => ({
    version: t.exposeInt('version', { description: "The definition's version when this state was saved." }),
    expression: t.field({
      type: PqlExpressionType,
      description: 'The expression as given.',
      resolve: (v) => v.expression,
    }),
    evaluationInfo: t.field({
      type: EvaluationInfoType,
      description: 'The ways of evaluation that were on.',
      resolve: (v) => v.evaluationInfo,
    }),
    changedAt: t.field({ type: 'DateTime', description: 'When it was saved.', resolve: (v) => v.changedAt }),
    changedBy: t.exposeString('changedBy', {
      description: 'The name of the API key that saved it; "open" when the server runs without keys.',
    }),
    diff: t.exposeString('diff', {
      nullable: true,
      description: 'A unified diff of the normalised PQL against the version before (the first: against nothing).',
    }),
  }),
});

export const EligibilityType = builder.objectRef<Eligibility>('Eligibility').implement({
  description: 'How an expression can run, with the reasons when streaming or edge are not possible.',
  fields: (t) => ({
    batch: t.exposeBoolean('batch', { description: 'It can run in segment jobs (every valid expression can).' }),
    streaming: t.exposeBoolean('streaming', { description: 'It can run as ingests arrive.' }),
    edge: t.exposeBoolean('edge', { description: 'It can run for one profile on demand.' }),
    reasons: t.exposeStringList('reasons', { description: 'Why streaming or edge is not possible, one per cause.' }),
  }),
});

export const PqlExpressionInput = builder.inputType('PqlExpressionInput', {
  description: 'A PQL expression in text or pql/json form.',
  fields: (t) => ({
    format: t.field({ type: PqlFormatEnum, defaultValue: 'PQL_TEXT', description: 'The form of value.' }),
    value: t.string({ required: true, description: 'The expression, in that form.' }),
  }),
});

export const EvaluationInfoInput = builder.inputType('EvaluationInfoInput', {
  description: 'Which ways of evaluation to turn on; one left out keeps its value (batch is on by default).',
  fields: (t) => ({
    batch: t.boolean({ description: 'Evaluate in segment jobs.' }),
    streaming: t.boolean({ description: 'Evaluate as ingests change profiles (the expression must allow it).' }),
    edge: t.boolean({ description: 'Evaluate on demand by evaluateProfile (the expression must allow it).' }),
  }),
});

builder.node(SegmentDefinitionRef, {
  description: 'A named PQL expression; it makes and evaluates its audience.',
  id: { resolve: (d) => d.id },
  loadMany: (ids, ctx) => Promise.all(ids.map((id) => ctx.loaders.definition.load(Number(id)))),
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Its name, unique in the sandbox (its audience has the same).' }),
    description: t.exposeString('description', { nullable: true, description: 'What it is for, in words.' }),
    expression: t.field({
      type: PqlExpressionType,
      description: 'The expression as it was given.',
      resolve: (d) => d.expression,
    }),
    normalizedExpression: t.exposeString('expressionText', { description: 'Canonical PQL text of the expression.' }),
    versions: t.connection(
      {
        type: DefinitionVersionType,
        description:
          'Every expression and evaluation settings it has had, the current one included, newest first, each with a diff.',
        complexity: connectionComplexity,
        resolve: async (d, args, ctx) =>
          toConnection(await listDefinitionVersions(ctx.conn, ctx.sandbox.id, d.id, args)),
      },
      { name: 'DefinitionVersionConnection', description: 'A page of definition versions.' },
      { name: 'DefinitionVersionEdge', description: 'A definition version in a page, with its cursor.' },
    ),
    schemaName: t.string({
      description: 'The profile schema the expression is checked against.',
      resolve: () => '_xdm.context.profile',
    }),
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
    eligibilityReasons: t.stringList({
      description: 'Why streaming or edge is not possible, one per cause.',
      resolve: (d) => d.eligibility.reasons,
    }),
    evaluationWarnings: t.exposeStringList('evaluationWarnings', {
      description:
        'Why a requested streaming or edge evaluation runs as batch instead, naming the clauses that force batch; empty when nothing was refused.',
    }),
    referencedFields: t.exposeStringList('referencedFields', {
      description: 'Profile and event fields the expression reads, as paths.',
    }),
    ttlInDays: t.exposeInt('ttlInDays', {
      nullable: true,
      description: 'How many days the audience keeps a membership (1 to 3650), as given; null when none was given.',
    }),
    version: t.exposeInt('version', { description: 'Goes up with every change; pass it as expectedVersion.' }),
    createdAt: t.field({ type: 'DateTime', description: 'When it was made.', resolve: (d) => d.createdAt }),
    updatedAt: t.field({ type: 'DateTime', description: 'When it was last changed.', resolve: (d) => d.updatedAt }),
    audience: t.field({
      type: AudienceRef,
      description: 'The audience it makes.',
      resolve: async (d, _a, ctx) => (await ctx.loaders.audience.load(d.audienceId))!,
    }),
    latestJob: t.field({
      type: SegmentJobRef,
      nullable: true,
      description:
        'The newest segment job asked to evaluate it: one that named it, or an all: true job queued while it was batch-enabled; null before the first.',
      resolve: async (d, _a, ctx) => (await ctx.loaders.latestSegmentJob.load(d.id)) ?? null,
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
  description: 'Narrows a definition list; the conditions given must all hold.',
  fields: (t) => ({
    nameContains: t.string({ description: 'Case-insensitive substring of the name.' }),
    lifecycleState: t.field({
      type: LifecycleStateEnum,
      description: 'Only definitions whose audience is in this state.',
    }),
    evaluationMethod: t.field({ type: EvaluationMethodEnum, description: 'Only definitions evaluated this way.' }),
    label: t.string({ description: 'Only definitions whose audience carries this label.' }),
    folderId: t.id({ description: 'Only definitions whose audience is filed in this folder.' }),
    updatedAfter: t.field({ type: 'DateTime', description: 'Only definitions changed after this instant.' }),
  }),
});

const SegmentDefinitionOrderFieldEnum = enumFromDomain(
  'SegmentDefinitionOrderField',
  'What a definition list is sorted by.',
  DEFINITION_ORDER_FIELDS,
  { NAME: 'The name.', CREATED_AT: 'When it was made.', UPDATED_AT: 'When it was last changed.' },
);

const SegmentDefinitionOrder = builder.inputType('SegmentDefinitionOrder', {
  description: 'The order of a definition list (ties are broken by id).',
  fields: (t) => ({
    field: t.field({ type: SegmentDefinitionOrderFieldEnum, required: true, description: 'What to sort by.' }),
    direction: t.field({ type: OrderDirectionEnum, required: true, description: 'Which way.' }),
  }),
});

builder.queryFields((t) => ({
  segmentDefinition: t.field({
    type: SegmentDefinitionRef,
    nullable: true,
    description: 'A definition by global id; null when it does not exist in this sandbox.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the definition.' }) },
    resolve: async (_r, args, ctx) => {
      const id = decodeId(args.id, 'SegmentDefinition');
      return id === undefined ? null : ((await ctx.loaders.definition.load(id)) ?? null);
    },
  }),
  segmentDefinitions: t.connection(
    {
      type: SegmentDefinitionRef,
      description: 'The definitions of the sandbox, filtered and sorted (default: by creation).',
      args: {
        filter: t.arg({ type: SegmentDefinitionFilter, description: 'Conditions the definitions must meet.' }),
        orderBy: t.arg({ type: SegmentDefinitionOrder, description: 'The sort order.' }),
      },
      complexity: connectionComplexity,
      resolve: async (_r, args, ctx) => {
        const f = args.filter;
        const page = await listSegmentDefinitions(
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
          args.orderBy ? { field: args.orderBy.field, direction: args.orderBy.direction } : undefined,
          args,
        );
        for (const d of page.items) ctx.loaders.definition.prime(d.id, d);
        return toConnection(page);
      },
    },
    { name: 'SegmentDefinitionConnection', description: 'A page of segment definitions.' },
    { name: 'SegmentDefinitionEdge', description: 'A segment definition in a page, with its cursor.' },
  ),
}));

const CreateSegmentDefinitionInput = builder.inputType('CreateSegmentDefinitionInput', {
  description: 'A new definition; its audience is made with it.',
  fields: (t) => ({
    name: t.string({ required: true, description: 'Its name, unique in the sandbox (its audience gets it too).' }),
    description: t.string({ description: 'What it is for, in words.' }),
    expression: t.field({ type: PqlExpressionInput, required: true, description: 'Who qualifies.' }),
    evaluationInfo: t.field({ type: EvaluationInfoInput, description: 'How it is evaluated (default: batch only).' }),
    ttlInDays: t.int({ description: 'How many days the audience keeps a membership, 1 to 3650.' }),
    lifecycleState: t.field({
      type: LifecycleStateEnum,
      defaultValue: 'DRAFT',
      description: "The audience's first state.",
    }),
    labels: t.stringList({ description: "The audience's labels." }),
    folderId: t.id({ description: 'The folder to file the audience in (default: the root).' }),
  }),
});

const UpdateSegmentDefinitionInput = builder.inputType('UpdateSegmentDefinitionInput', {
  description: 'Changes to a definition; fields left out stay as they are.',
  fields: (t) => ({
    name: t.string({ description: 'A new name (the audience is renamed too).' }),
    description: t.string({ description: 'A new description.' }),
    expression: t.field({
      type: PqlExpressionInput,
      description: 'A new expression; checked as on create, and against definitions that use this one.',
    }),
    evaluationInfo: t.field({ type: EvaluationInfoInput, description: 'Ways of evaluation to turn on or off.' }),
    ttlInDays: t.int({ description: 'A new membership lifetime in days, 1 to 3650.' }),
    lifecycleState: t.field({ type: LifecycleStateEnum, description: 'A new state for the audience.' }),
    labels: t.stringList({ description: "The audience's new labels (replacing the old ones)." }),
  }),
});

const definitionIdArg = 'The global id of the definition.';

const expressionOf = (e: { format?: string | null; value: string }) => ({
  format: (e.format ?? 'PQL_TEXT') as PqlFormat,
  value: e.value,
});

builder.mutationFields((t) => ({
  createSegmentDefinition: t.field({
    type: SegmentDefinitionRef,
    nullable: true,
    description: 'Checks the expression and creates the definition with its audience, in one transaction.',
    args: { input: t.arg({ type: CreateSegmentDefinitionInput, required: true, description: 'The new definition.' }) },
    resolve: async (_r, { input }, ctx) =>
      createSegmentDefinition(ctx.conn, ctx.sandbox.id, {
        ...input,
        changedBy: await actorName(ctx.conn, ctx.principal.keyId),
        expression: expressionOf(input.expression),
        folderId: input.folderId == null ? null : requireId(input.folderId, 'Folder'),
      }),
  }),
  updateSegmentDefinition: t.field({
    type: SegmentDefinitionRef,
    nullable: true,
    description: 'Changes a definition (and its audience) in one transaction; returns it changed, with a new version.',
    args: {
      id: t.arg.id({ required: true, description: definitionIdArg }),
      input: t.arg({ type: UpdateSegmentDefinitionInput, required: true, description: 'The changes.' }),
      expectedVersion: t.arg.int({ description: 'The version the client last read; a stale one is a CONFLICT.' }),
    },
    resolve: async (_r, args, ctx) =>
      updateSegmentDefinition(
        ctx.conn,
        ctx.sandbox.id,
        requireId(args.id, 'SegmentDefinition'),
        {
          ...args.input,
          expression: args.input.expression ? expressionOf(args.input.expression) : null,
          changedBy: await actorName(ctx.conn, ctx.principal.keyId),
        },
        args.expectedVersion,
      ),
  }),
  deleteSegmentDefinition: t.globalID({
    nullable: true,
    description:
      'Deletes the definition with its audience; CONFLICT (listing them) while other definitions use it. Returns its id.',
    args: { id: t.arg.id({ required: true, description: definitionIdArg }) },
    resolve: async (_r, args, ctx) => ({
      type: 'SegmentDefinition',
      id: await deleteSegmentDefinition(ctx.conn, ctx.sandbox.id, requireId(args.id, 'SegmentDefinition')),
    }),
  }),
}));
