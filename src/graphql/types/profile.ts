import { badInput } from '../../domain/errors.js';
import { type IngestResult, ingestEvents, ingestProfiles, type ProfileRecord } from '../../domain/profile-ingest.js';
import {
  deleteProfile,
  eventsByIds,
  type Identity,
  listEvents,
  listProfiles,
  type Profile,
  profileByIdentity,
  type StoredEvent,
} from '../../domain/profiles.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import type { Context } from '../context.js';
import { decodeId } from '../ids.js';

export const IdentityType = builder.objectRef<Identity>('Identity').implement({
  description: 'One way to recognise a person: a namespace (email, crmId, phone, …) and the id in it.',
  fields: (t) => ({
    namespace: t.exposeString('namespace'),
    id: t.exposeString('id'),
  }),
});

export const IdentityInput = builder.inputType('IdentityInput', {
  fields: (t) => ({
    namespace: t.string({ required: true }),
    id: t.string({ required: true }),
  }),
});

export const ProfileRef = builder.objectRef<Profile>('Profile');
export const EventRef = builder.objectRef<StoredEvent>('Event');

builder.node(EventRef, {
  description: 'An experience event: timestamp, type and its document.',
  id: { resolve: (e) => e.id },
  loadMany: (ids, ctx) => {
    const found = eventsByIds(ctx.conn, ctx.sandbox.id, ids.map(Number));
    return ids.map((id) => found.get(Number(id)) ?? null);
  },
  fields: (t) => ({
    eventId: t.exposeString('eventId', { description: 'The client-given id that makes ingestion idempotent.' }),
    timestamp: t.field({ type: 'DateTime', resolve: (e) => e.timestamp }),
    eventType: t.exposeString('eventType'),
    data: t.field({ type: 'JSON', description: 'The rest of the event document.', resolve: (e) => e.payload }),
    profile: t.field({
      type: ProfileRef,
      nullable: true,
      resolve: (e, _args, ctx) => ctx.loaders.profile.load(e.profileId),
    }),
  }),
});

builder.node(ProfileRef, {
  description: 'One person: identities, an attribute document shaped by the profile schema, and events.',
  id: { resolve: (p) => p.id },
  loadMany: async (ids, ctx) => Promise.all(ids.map((id) => ctx.loaders.profile.load(Number(id)))),
  fields: (t) => ({
    identities: t.field({
      type: [IdentityType],
      // Profiles have a handful of identities, not the ten a list is assumed to have.
      complexity: { field: 1, multiplier: 2 },
      resolve: (p, _args, ctx) => ctx.loaders.identities.load(p.id),
    }),
    attributes: t.field({ type: 'JSON', resolve: (p) => p.attributes }),
    createdAt: t.field({ type: 'DateTime', resolve: (p) => p.createdAt }),
    updatedAt: t.field({ type: 'DateTime', resolve: (p) => p.updatedAt }),
    events: t.connection(
      {
        type: EventRef,
        description: 'Newest first.',
        args: {
          eventType: t.arg.string(),
          from: t.arg({ type: 'DateTime' }),
          to: t.arg({ type: 'DateTime' }),
        },
        complexity: connectionComplexity,
        resolve: (p, args, ctx) =>
          toConnection(
            listEvents(
              ctx.conn,
              ctx.sandbox.id,
              p.id,
              { eventType: args.eventType, from: args.from, to: args.to },
              args,
            ),
          ),
      },
      { name: 'EventConnection' },
      { name: 'EventEdge' },
    ),
  }),
});

const ProfileFilter = builder.inputType('ProfileFilter', {
  fields: (t) => ({
    identityNamespace: t.string(),
    identityValue: t.string(),
    updatedAfter: t.field({ type: 'DateTime' }),
  }),
});

builder.queryFields((t) => ({
  profile: t.field({
    type: ProfileRef,
    nullable: true,
    description: 'A profile by global id or by one of its identities.',
    args: { id: t.arg.id(), identity: t.arg({ type: IdentityInput }) },
    resolve: async (_root, args, ctx) => {
      if ((args.id == null) === (args.identity == null)) throw badInput('Give either "id" or "identity"', 'id');
      if (args.identity) return profileByIdentity(ctx.conn, ctx.sandbox.id, args.identity) ?? null;
      const id = decodeId(args.id!, 'Profile');
      return id === undefined ? null : ((await ctx.loaders.profile.load(id)) ?? null);
    },
  }),
  profiles: t.connection(
    {
      type: ProfileRef,
      args: { filter: t.arg({ type: ProfileFilter }) },
      complexity: connectionComplexity,
      resolve: (_root, args, ctx) =>
        toConnection(
          listProfiles(
            ctx.conn,
            ctx.sandbox.id,
            {
              identityNamespace: args.filter?.identityNamespace,
              identityValue: args.filter?.identityValue,
              updatedAfter: args.filter?.updatedAfter,
            },
            args,
          ),
        ),
    },
    { name: 'ProfileConnection' },
    { name: 'ProfileEdge' },
  ),
}));

const IngestErrorType = builder.simpleObject('IngestError', {
  fields: (t) => ({
    index: t.int({ description: '0-based position of the record in the input list.' }),
    message: t.string(),
    code: t.string({ description: 'BAD_USER_INPUT for invalid records, GUARDRAIL for records over a guardrail.' }),
  }),
});

const IngestResultType = builder.objectRef<IngestResult>('IngestResult').implement({
  fields: (t) => ({
    accepted: t.exposeInt('accepted'),
    rejected: t.exposeInt('rejected'),
    duplicates: t.exposeInt('duplicates', { description: 'Accepted events whose id was already stored (kept once).' }),
    errors: t.field({ type: [IngestErrorType], resolve: (r) => r.errors }),
    profileIds: t.globalIDList({
      description: 'Per accepted record, in input order: the profile it landed in.',
      resolve: (r) => r.profileIds.map((id) => ({ type: 'Profile', id })),
    }),
  }),
});

const ProfileInput = builder.inputType('ProfileInput', {
  fields: (t) => ({
    identities: t.field({ type: [IdentityInput], required: true }),
    attributes: t.field({ type: 'JSON', required: true }),
  }),
});

const EventInput = builder.inputType('EventInput', {
  fields: (t) => ({
    id: t.string({ description: 'Makes retries idempotent: an id already stored is not stored again.' }),
    identity: t.field({ type: IdentityInput, required: true }),
    timestamp: t.string({ required: true, description: 'ISO-8601 datetime.' }),
    eventType: t.string({ required: true }),
    data: t.field({
      type: 'JSON',
      description: 'The rest of the event document (commerce, productListItems, web, …).',
    }),
  }),
});

function counted(ctx: Context, kind: 'profile' | 'event', result: IngestResult): IngestResult {
  const { ingested } = ctx.metrics;
  ingested.inc({ kind, outcome: 'accepted' }, result.accepted - result.duplicates);
  ingested.inc({ kind, outcome: 'duplicate' }, result.duplicates);
  ingested.inc({ kind, outcome: 'rejected' }, result.rejected);
  return result;
}

builder.mutationFields((t) => ({
  ingestProfiles: t.field({
    type: IngestResultType,
    description:
      'Merges records into profiles by identity (joining profiles that share one); bad records are reported by index.',
    args: { records: t.arg({ type: [ProfileInput], required: true }) },
    resolve: (_root, args, ctx) =>
      ingestProfiles(ctx.conn, ctx.sandbox.id, args.records as ProfileRecord[], {
        limits: ctx.limits,
        ...ctx.app.ingestHooks,
      }),
  }),
  ingestEvents: t.field({
    type: IngestResultType,
    args: { events: t.arg({ type: [EventInput], required: true }) },
    resolve: (_root, args, ctx) =>
      counted(
        ctx,
        'event',
        ingestEvents(ctx.conn, ctx.sandbox.id, args.events, { limits: ctx.limits, ...ctx.app.ingestHooks }),
      ),
  }),
  deleteProfile: t.globalID({
    description: 'Deletes the profile with this identity, with its events and memberships; returns its id.',
    args: { identity: t.arg({ type: IdentityInput, required: true }) },
    resolve: (_root, args, ctx) => ({ type: 'Profile', id: deleteProfile(ctx.conn, ctx.sandbox.id, args.identity) }),
  }),
}));
