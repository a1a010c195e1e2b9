import {
  type AudienceOrderField,
  type AudienceOrigin,
  createManualAudience,
  listAudiences,
  updateAudience,
} from '../../domain/audiences.js';
import { deleteAudience } from '../../domain/definitions.js';
import { addAudienceMembers, listMembers, type Membership, removeAudienceMembers } from '../../domain/memberships.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { decodeId, requireId } from '../ids.js';
import { IdentityInput, ProfileRef } from './profile.js';
import {
  AudienceRef,
  EvaluationMethodEnum,
  FolderRef,
  LifecycleStateEnum,
  MembershipStatusEnum,
  OrderDirectionEnum,
  SegmentDefinitionRef,
} from './refs.js';

export const AudienceOriginEnum = builder.enumType('AudienceOrigin', {
  values: {
    SEGMENTATION_SERVICE: { description: 'Made by a segment definition' },
    CUSTOM_UPLOAD: { description: 'An external audience imported from a file' },
    MANUAL: { description: 'Members added and removed through the API' },
  } as const,
});

const AudienceMemberType = builder.objectRef<Membership>('AudienceMember').implement({
  fields: (t) => ({
    profile: t.field({
      type: ProfileRef,
      resolve: async (m, _a, ctx) => (await ctx.loaders.profile.load(m.profileId))!,
    }),
    status: t.field({ type: MembershipStatusEnum, resolve: (m) => m.status }),
    qualifiedAt: t.field({ type: 'DateTime', nullable: true, resolve: (m) => m.qualifiedAt }),
    lastEvaluatedAt: t.field({ type: 'DateTime', nullable: true, resolve: (m) => m.lastEvaluatedAt }),
    exitedAt: t.field({ type: 'DateTime', nullable: true, resolve: (m) => m.exitedAt }),
  }),
});

builder.node(AudienceRef, {
  description: 'A set of profiles: made by a definition, imported, or kept by hand.',
  id: { resolve: (a) => a.id },
  loadMany: (ids, ctx) => Promise.all(ids.map((id) => ctx.loaders.audience.load(Number(id)))),
  fields: (t) => ({
    name: t.exposeString('name'),
    namespace: t.exposeString('namespace'),
    description: t.exposeString('description', { nullable: true }),
    origin: t.field({ type: AudienceOriginEnum, resolve: (a) => a.origin }),
    lifecycleState: t.field({ type: LifecycleStateEnum, resolve: (a) => a.lifecycleState }),
    labels: t.exposeStringList('labels'),
    segmentDefinition: t.field({
      type: SegmentDefinitionRef,
      nullable: true,
      resolve: (a, _args, ctx) => (a.definitionId == null ? null : ctx.loaders.definition.load(a.definitionId)),
    }),
    dependents: t.field({
      type: [SegmentDefinitionRef],
      description: 'Definitions that name this audience through inSegment.',
      resolve: async (a, _args, ctx) => {
        const ids = (await ctx.loaders.dependents.load(a.id)).filter((id) => id !== a.definitionId);
        return (await ctx.loaders.definition.loadMany(ids)).filter((d) => d && !(d instanceof Error)) as never;
      },
    }),
    folder: t.field({
      type: FolderRef,
      nullable: true,
      resolve: (a, _args, ctx) => (a.folderId == null ? null : (ctx.loaders.folders().get(a.folderId) ?? null)),
    }),
    size: t.exposeInt('size', { description: 'Members now REALIZED or EXISTING.' }),
    members: t.connection(
      {
        type: AudienceMemberType,
        args: { statuses: t.arg({ type: [MembershipStatusEnum] }) },
        complexity: connectionComplexity,
        resolve: (a, args, ctx) => toConnection(listMembers(ctx.conn, ctx.sandbox.id, a.id, args.statuses, args)),
      },
      { name: 'AudienceMemberConnection' },
      { name: 'AudienceMemberEdge' },
    ),
    lastEvaluatedAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.lastEvaluatedAt }),
    version: t.exposeInt('version'),
    createdAt: t.field({ type: 'DateTime', resolve: (a) => a.createdAt }),
    updatedAt: t.field({ type: 'DateTime', resolve: (a) => a.updatedAt }),
  }),
});

const AudienceFilter = builder.inputType('AudienceFilter', {
  fields: (t) => ({
    nameContains: t.string({ description: 'Case-insensitive substring of the name.' }),
    namespace: t.string(),
    origin: t.field({ type: AudienceOriginEnum }),
    lifecycleState: t.field({ type: LifecycleStateEnum }),
    label: t.string(),
    folderId: t.id(),
    evaluationMethod: t.field({ type: EvaluationMethodEnum }),
    updatedAfter: t.field({ type: 'DateTime' }),
  }),
});

const AudienceOrderFieldEnum = builder.enumType('AudienceOrderField', {
  values: ['NAME', 'CREATED_AT', 'UPDATED_AT', 'SIZE'] as const,
});

const AudienceOrder = builder.inputType('AudienceOrder', {
  fields: (t) => ({
    field: t.field({ type: AudienceOrderFieldEnum, required: true }),
    direction: t.field({ type: OrderDirectionEnum, required: true }),
  }),
});

/** A folder id filter that names no folder of this sandbox matches nothing (-1), rather than everything. */
const folderFilter = (id: string | null | undefined) => (id == null ? null : (decodeId(id, 'Folder') ?? -1));

builder.queryFields((t) => ({
  audience: t.field({
    type: AudienceRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_r, args, ctx) => {
      const id = decodeId(args.id, 'Audience');
      return id === undefined ? null : ((await ctx.loaders.audience.load(id)) ?? null);
    },
  }),
  audiences: t.connection(
    {
      type: AudienceRef,
      args: { filter: t.arg({ type: AudienceFilter }), orderBy: t.arg({ type: AudienceOrder }) },
      complexity: connectionComplexity,
      resolve: (_r, args, ctx) => {
        const f = args.filter;
        const page = listAudiences(
          ctx.conn,
          ctx.sandbox.id,
          {
            nameContains: f?.nameContains,
            namespace: f?.namespace,
            origin: f?.origin,
            lifecycleState: f?.lifecycleState,
            label: f?.label,
            folderId: folderFilter(f?.folderId),
            evaluationMethod: f?.evaluationMethod,
            updatedAfter: f?.updatedAfter,
          },
          args.orderBy
            ? { field: args.orderBy.field as AudienceOrderField, direction: args.orderBy.direction }
            : undefined,
          args,
        );
        // Prime the loader so nested fields reuse these rows.
        for (const a of page.items) ctx.loaders.audience.prime(a.id, a);
        return toConnection(page);
      },
    },
    { name: 'AudienceConnection' },
    { name: 'AudienceEdge' },
  ),
}));

const CreateAudienceInput = builder.inputType('CreateAudienceInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    description: t.string(),
    namespace: t.string({ description: 'Default "segql".' }),
    labels: t.stringList(),
    folderId: t.id(),
    lifecycleState: t.field({ type: LifecycleStateEnum }),
  }),
});

const UpdateAudienceInput = builder.inputType('UpdateAudienceInput', {
  fields: (t) => ({
    name: t.string(),
    description: t.string(),
    lifecycleState: t.field({ type: LifecycleStateEnum }),
    labels: t.stringList(),
  }),
});

builder.mutationFields((t) => ({
  createAudience: t.field({
    type: AudienceRef,
    description: 'A MANUAL audience: members are added and removed with addAudienceMembers / removeAudienceMembers.',
    args: { input: t.arg({ type: CreateAudienceInput, required: true }) },
    resolve: (_r, { input }, ctx) =>
      createManualAudience(ctx.conn, ctx.sandbox.id, {
        ...input,
        folderId: input.folderId == null ? null : requireId(input.folderId, 'Folder'),
      }),
  }),
  updateAudience: t.field({
    type: AudienceRef,
    args: {
      id: t.arg.id({ required: true }),
      input: t.arg({ type: UpdateAudienceInput, required: true }),
      expectedVersion: t.arg.int(),
    },
    resolve: (_r, args, ctx) =>
      updateAudience(ctx.conn, ctx.sandbox.id, requireId(args.id, 'Audience'), args.input, args.expectedVersion),
  }),
  deleteAudience: t.globalID({
    description: 'Deletes an audience (with its definition, when it has one); CONFLICT while definitions use it.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_r, args, ctx) => ({
      type: 'Audience',
      id: deleteAudience(ctx.conn, ctx.sandbox.id, requireId(args.id, 'Audience')),
    }),
  }),
  addAudienceMembers: t.field({
    type: AudienceRef,
    args: { audienceId: t.arg.id({ required: true }), identities: t.arg({ type: [IdentityInput], required: true }) },
    resolve: async (_r, args, ctx) => {
      const id = requireId(args.audienceId, 'Audience');
      addAudienceMembers(ctx.conn, ctx.sandbox.id, id, args.identities);
      ctx.loaders.audience.clear(id);
      return (await ctx.loaders.audience.load(id))!;
    },
  }),
  removeAudienceMembers: t.field({
    type: AudienceRef,
    args: { audienceId: t.arg.id({ required: true }), identities: t.arg({ type: [IdentityInput], required: true }) },
    resolve: async (_r, args, ctx) => {
      const id = requireId(args.audienceId, 'Audience');
      removeAudienceMembers(ctx.conn, ctx.sandbox.id, id, args.identities);
      ctx.loaders.audience.clear(id);
      return (await ctx.loaders.audience.load(id))!;
    },
  }),
  moveAudience: t.field({
    type: AudienceRef,
    description: 'Moves an audience into a folder (null: to the root).',
    args: { id: t.arg.id({ required: true }), folderId: t.arg.id() },
    resolve: (_r, args, ctx) =>
      updateAudience(ctx.conn, ctx.sandbox.id, requireId(args.id, 'Audience'), {
        folderGiven: true,
        folderId: args.folderId == null ? null : requireId(args.folderId, 'Folder'),
      }),
  }),
}));

export type { AudienceOrigin };
