import {
  AUDIENCE_ORDER_FIELDS,
  AUDIENCE_ORIGINS,
  type Audience,
  type AudienceOrigin,
  createManualAudience,
  deleteAudience,
  listAudiences,
  updateAudience,
} from '../../domain/audiences.js';
import { addAudienceMembers, listMembers, type Membership, removeAudienceMembers } from '../../domain/memberships.js';
import { type AudienceOverlap, type AudiencePair, audienceOverlap, type OverlapRegion } from '../../domain/overlap.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { enumFromDomain } from '../enums.js';
import { decodeId, requireId } from '../ids.js';
import { IdentityInput, ProfileRef } from './profile.js';
import {
  AudienceRef,
  EvaluationMethodEnum,
  FolderRef,
  LifecycleStateEnum,
  MembershipStatusEnum,
  membershipStateFields,
  OrderDirectionEnum,
  SegmentDefinitionRef,
} from './refs.js';

const AudienceOriginEnum = enumFromDomain('AudienceOrigin', 'Where an audience comes from.', AUDIENCE_ORIGINS, {
  SEGMENTATION_SERVICE: 'Made by a segment definition.',
  CUSTOM_UPLOAD: 'An external audience imported from a file.',
  MANUAL: 'Members added and removed through the API.',
});

const AudienceMemberType = builder.objectRef<Membership>('AudienceMember').implement({
  description: "A profile's membership in the audience being listed.",
  fields: (t) => ({
    profile: t.field({
      type: ProfileRef,
      description: 'The member.',
      resolve: async (m, _a, ctx) => (await ctx.loaders.profile.load(m.profileId))!,
    }),
    ...membershipStateFields(t, 'it'),
    payload: t.field({
      type: 'JSON',
      nullable: true,
      description:
        "For an external audience: the other values of the member's row in its list, by field name; null for other audiences.",
      resolve: (m) => (m.payload === null ? null : JSON.parse(m.payload)),
    }),
  }),
});

builder.node(AudienceRef, {
  description: 'A set of profiles: made by a definition, imported, or kept by hand.',
  id: { resolve: (a) => a.id },
  loadMany: (ids, ctx) => Promise.all(ids.map((id) => ctx.loaders.audience.load(Number(id)))),
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Its name, unique in the sandbox.' }),
    namespace: t.exposeString('namespace', { description: 'The namespace it belongs to ("segql" unless given).' }),
    description: t.exposeString('description', { nullable: true, description: 'What it is for, in words.' }),
    origin: t.field({ type: AudienceOriginEnum, description: 'Where it comes from.', resolve: (a) => a.origin }),
    lifecycleState: t.field({
      type: LifecycleStateEnum,
      description: 'Whether it is evaluated.',
      resolve: (a) => a.lifecycleState,
    }),
    labels: t.exposeStringList('labels', { description: 'Free-form labels to filter by.' }),
    segmentDefinition: t.field({
      type: SegmentDefinitionRef,
      nullable: true,
      description: 'The definition that makes it (SEGMENTATION_SERVICE audiences only).',
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
      description: 'The folder it is filed in; null at the root.',
      resolve: async (a, _args, ctx) =>
        a.folderId == null ? null : ((await ctx.loaders.folders()).get(a.folderId) ?? null),
    }),
    size: t.exposeInt('size', { description: 'Members now REALIZED or EXISTING.' }),
    members: t.connection(
      {
        type: AudienceMemberType,
        description: 'Its members (and recent leavers), in profile order.',
        args: {
          statuses: t.arg({
            type: [MembershipStatusEnum],
            description: 'Only members with these statuses (default: all three).',
          }),
        },
        complexity: connectionComplexity,
        resolve: async (a, args, ctx) =>
          toConnection(await listMembers(ctx.conn, ctx.sandbox.id, a.id, args.statuses, args)),
      },
      { name: 'AudienceMemberConnection', description: 'A page of the members of an audience.' },
      { name: 'AudienceMemberEdge', description: 'A member in a page, with its cursor.' },
    ),
    lastEvaluatedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When a job or streaming last evaluated it; null before the first evaluation.',
      resolve: (a) => a.lastEvaluatedAt,
    }),
    version: t.exposeInt('version', { description: 'Goes up with every change; pass it as expectedVersion.' }),
    createdAt: t.field({ type: 'DateTime', description: 'When it was made.', resolve: (a) => a.createdAt }),
    updatedAt: t.field({ type: 'DateTime', description: 'When it was last changed.', resolve: (a) => a.updatedAt }),
  }),
});

const AudienceFilter = builder.inputType('AudienceFilter', {
  description: 'Narrows an audience list; the conditions given must all hold.',
  fields: (t) => ({
    nameContains: t.string({ description: 'Case-insensitive substring of the name.' }),
    namespace: t.string({ description: 'Only audiences of this namespace.' }),
    origin: t.field({ type: AudienceOriginEnum, description: 'Only audiences of this origin.' }),
    lifecycleState: t.field({ type: LifecycleStateEnum, description: 'Only audiences in this state.' }),
    label: t.string({ description: 'Only audiences carrying this label.' }),
    folderId: t.id({ description: 'Only audiences filed in this folder (not its subfolders).' }),
    evaluationMethod: t.field({
      type: EvaluationMethodEnum,
      description: 'Only audiences whose definition is evaluated this way.',
    }),
    updatedAfter: t.field({ type: 'DateTime', description: 'Only audiences changed after this instant.' }),
  }),
});

const AudienceOrderFieldEnum = enumFromDomain(
  'AudienceOrderField',
  'What an audience list is sorted by.',
  AUDIENCE_ORDER_FIELDS,
  {
    NAME: 'The name.',
    CREATED_AT: 'When it was made.',
    UPDATED_AT: 'When it was last changed.',
    SIZE: 'How many members it has now.',
  },
);

const AudienceOrder = builder.inputType('AudienceOrder', {
  description: 'The order of an audience list (ties are broken by id).',
  fields: (t) => ({
    field: t.field({ type: AudienceOrderFieldEnum, required: true, description: 'What to sort by.' }),
    direction: t.field({ type: OrderDirectionEnum, required: true, description: 'Which way.' }),
  }),
});

/** A folder id filter that names no folder of this sandbox matches nothing (-1), rather than everything. */
const folderFilter = (id: string | null | undefined) => (id == null ? null : (decodeId(id, 'Folder') ?? -1));

builder.queryFields((t) => ({
  audience: t.field({
    type: AudienceRef,
    nullable: true,
    description: 'An audience by global id; null when it does not exist in this sandbox.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the audience.' }) },
    resolve: async (_r, args, ctx) => {
      const id = decodeId(args.id, 'Audience');
      return id === undefined ? null : ((await ctx.loaders.audience.load(id)) ?? null);
    },
  }),
  audiences: t.connection(
    {
      type: AudienceRef,
      description: 'The audiences of the sandbox, filtered and sorted (default: by creation).',
      args: {
        filter: t.arg({ type: AudienceFilter, description: 'Conditions the audiences must meet.' }),
        orderBy: t.arg({ type: AudienceOrder, description: 'The sort order.' }),
      },
      complexity: connectionComplexity,
      resolve: async (_r, args, ctx) => {
        const f = args.filter;
        const page = await listAudiences(
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
          args.orderBy ? { field: args.orderBy.field, direction: args.orderBy.direction } : undefined,
          args,
        );
        // Prime the loader so nested fields reuse these rows.
        for (const a of page.items) ctx.loaders.audience.prime(a.id, a);
        return toConnection(page);
      },
    },
    { name: 'AudienceConnection', description: 'A page of audiences.' },
    { name: 'AudienceEdge', description: 'An audience in a page, with its cursor.' },
  ),
}));

const CreateAudienceInput = builder.inputType('CreateAudienceInput', {
  description: 'A new MANUAL audience.',
  fields: (t) => ({
    name: t.string({ required: true, description: 'Its name, unique in the sandbox.' }),
    description: t.string({ description: 'What it is for, in words.' }),
    namespace: t.string({ description: 'Default "segql".' }),
    labels: t.stringList({ description: 'Free-form labels to filter by.' }),
    folderId: t.id({ description: 'The folder to file it in (default: the root).' }),
    lifecycleState: t.field({ type: LifecycleStateEnum, description: 'Its first state (default DRAFT).' }),
  }),
});

const UpdateAudienceInput = builder.inputType('UpdateAudienceInput', {
  description: 'Changes to an audience; fields left out stay as they are.',
  fields: (t) => ({
    name: t.string({ description: 'A new name, unique in the sandbox.' }),
    description: t.string({ description: 'A new description.' }),
    lifecycleState: t.field({
      type: LifecycleStateEnum,
      description: 'A new state (ARCHIVED is final; PUBLISHED cannot go back to DRAFT).',
    }),
    labels: t.stringList({ description: 'The new labels (replacing the old ones).' }),
  }),
});

const audienceIdArg = 'The global id of the audience.';
const identitiesArg = 'Identities of the profiles; each must name an existing profile.';

builder.mutationFields((t) => ({
  createAudience: t.field({
    type: AudienceRef,
    nullable: true,
    description: 'A MANUAL audience: members are added and removed with addAudienceMembers / removeAudienceMembers.',
    args: { input: t.arg({ type: CreateAudienceInput, required: true, description: 'The new audience.' }) },
    resolve: (_r, { input }, ctx) =>
      createManualAudience(ctx.conn, ctx.sandbox.id, {
        ...input,
        folderId: input.folderId == null ? null : requireId(input.folderId, 'Folder'),
      }),
  }),
  updateAudience: t.field({
    type: AudienceRef,
    nullable: true,
    description: 'Changes the name, description, labels or lifecycle state of an audience; returns it changed.',
    args: {
      id: t.arg.id({ required: true, description: audienceIdArg }),
      input: t.arg({ type: UpdateAudienceInput, required: true, description: 'The changes.' }),
      expectedVersion: t.arg.int({ description: 'The version the client last read; a stale one is a CONFLICT.' }),
    },
    resolve: (_r, args, ctx) =>
      updateAudience(ctx.conn, ctx.sandbox.id, requireId(args.id, 'Audience'), args.input, args.expectedVersion),
  }),
  deleteAudience: t.globalID({
    nullable: true,
    description:
      'Deletes an audience (with its definition, when it has one); CONFLICT while definitions use it. Returns its id.',
    args: { id: t.arg.id({ required: true, description: audienceIdArg }) },
    resolve: async (_r, args, ctx) => ({
      type: 'Audience',
      id: await deleteAudience(ctx.conn, ctx.sandbox.id, requireId(args.id, 'Audience')),
    }),
  }),
  addAudienceMembers: t.field({
    type: AudienceRef,
    nullable: true,
    description: 'Adds profiles to a MANUAL audience (as REALIZED members); returns the audience.',
    args: {
      audienceId: t.arg.id({ required: true, description: audienceIdArg }),
      identities: t.arg({ type: [IdentityInput], required: true, description: identitiesArg }),
    },
    resolve: async (_r, args, ctx) => {
      const id = requireId(args.audienceId, 'Audience');
      await addAudienceMembers(ctx.conn, ctx.sandbox.id, id, args.identities);
      ctx.loaders.audience.clear(id);
      return (await ctx.loaders.audience.load(id))!;
    },
  }),
  removeAudienceMembers: t.field({
    type: AudienceRef,
    nullable: true,
    description: 'Removes profiles from a MANUAL audience (they become EXITED); returns the audience.',
    args: {
      audienceId: t.arg.id({ required: true, description: audienceIdArg }),
      identities: t.arg({ type: [IdentityInput], required: true, description: identitiesArg }),
    },
    resolve: async (_r, args, ctx) => {
      const id = requireId(args.audienceId, 'Audience');
      await removeAudienceMembers(ctx.conn, ctx.sandbox.id, id, args.identities);
      ctx.loaders.audience.clear(id);
      return (await ctx.loaders.audience.load(id))!;
    },
  }),
  moveAudience: t.field({
    type: AudienceRef,
    nullable: true,
    description: 'Moves an audience into a folder (null: to the root); returns it moved.',
    args: {
      id: t.arg.id({ required: true, description: audienceIdArg }),
      folderId: t.arg.id({ description: 'The folder to move it to; null or left out: the root.' }),
    },
    resolve: (_r, args, ctx) =>
      updateAudience(ctx.conn, ctx.sandbox.id, requireId(args.id, 'Audience'), {
        folderGiven: true,
        folderId: args.folderId == null ? null : requireId(args.folderId, 'Folder'),
      }),
  }),
}));

export type { AudienceOrigin };

const AudiencePairType = builder.objectRef<AudiencePair>('AudiencePair').implement({
  description: 'Two audiences and how many profiles are current members of both.',
  fields: (t) => ({
    a: t.field({
      type: AudienceRef,
      description: 'The first audience.',
      resolve: async (p, _a, ctx) => (await ctx.loaders.audience.load(p.a))!,
    }),
    b: t.field({
      type: AudienceRef,
      description: 'The second audience.',
      resolve: async (p, _a, ctx) => (await ctx.loaders.audience.load(p.b))!,
    }),
    intersection: t.exposeInt('intersection', { description: 'Profiles that are current members of both.' }),
  }),
});

const OverlapRegionType = builder.objectRef<OverlapRegion>('OverlapRegion').implement({
  description:
    'One exclusive region of a Venn diagram: profiles in exactly these audiences and in none of the others asked.',
  fields: (t) => ({
    audiences: t.field({
      type: [AudienceRef],
      description: 'The audiences every profile of the region is in.',
      resolve: async (r, _a, ctx) => (await ctx.loaders.audience.loadMany(r.audienceIds)) as Audience[],
    }),
    count: t.exposeInt('count', { description: 'Profiles in the region.' }),
  }),
});

const AudienceOverlapType = builder.objectRef<AudienceOverlap>('AudienceOverlap').implement({
  description: 'Exact overlap of 2 to 10 audiences, from their stored memberships (REALIZED and EXISTING).',
  fields: (t) => ({
    pairs: t.field({
      type: [AudiencePairType],
      description: 'Every pair of the audiences asked, with its intersection.',
      resolve: (o) => o.pairs,
    }),
    regions: t.field({
      type: [OverlapRegionType],
      description: 'For 2 or 3 audiences, every non-empty exclusive region (a Venn diagram); empty for more.',
      resolve: (o) => o.regions,
    }),
  }),
});

builder.queryField('audienceOverlap', (t) =>
  t.field({
    type: AudienceOverlapType,
    description: 'How 2 to 10 audiences overlap, exactly, from stored memberships.',
    args: {
      audienceIds: t.arg.idList({ required: true, description: 'The audiences, 2 to 10 of them.' }),
    },
    resolve: (_r, args, ctx) =>
      audienceOverlap(
        ctx.conn,
        ctx.sandbox.id,
        args.audienceIds.map((id) => requireId(String(id), 'Audience')),
      ),
  }),
);
