import { badInput } from '../../domain/errors.js';
import { INGEST_ERROR_CODES, type IngestResult, type ProfileRecord } from '../../domain/profile-ingest.js';
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
import { enumFromDomain } from '../enums.js';
import { decodeId } from '../ids.js';

const IdentityType = builder.objectRef<Identity>('Identity').implement({
  description:
    'One way to recognise a person: a namespace (email, crmId, phone, …) and the value in it. It has no global key of its own: the same value can live in two namespaces.',
  fields: (t) => ({
    namespace: t.exposeString('namespace', { description: 'The identity namespace: email, crmId, phone, ….' }),
    // Not `id`: normalised caches (Apollo, Relay, urql) take `id` as a global key, and one value can
    // live in two namespaces, so `{email: x}` and `{crmId: x}` would merge into one cache entry.
    value: t.exposeString('id', { description: 'The identity value in its namespace, e.g. an email address.' }),
  }),
});

export const IdentityInput = builder.inputType('IdentityInput', {
  description: 'An identity to find or file a profile by.',
  fields: (t) => ({
    namespace: t.string({ required: true, description: 'The identity namespace: email, crmId, phone, ….' }),
    id: t.string({ required: true, description: 'The identity value in that namespace.' }),
  }),
});

export const ProfileRef = builder.objectRef<Profile>('Profile');
const EventRef = builder.objectRef<StoredEvent>('Event');

builder.node(EventRef, {
  description: 'An experience event: timestamp, type and its document.',
  id: { resolve: (e) => e.id },
  loadMany: async (ids, ctx) => {
    const found = await eventsByIds(ctx.conn, ctx.sandbox.id, ids.map(Number));
    return ids.map((id) => found.get(Number(id)) ?? null);
  },
  fields: (t) => ({
    eventId: t.exposeString('eventId', { description: 'The client-given id that makes ingestion idempotent.' }),
    timestamp: t.field({ type: 'DateTime', description: 'When the event happened.', resolve: (e) => e.timestamp }),
    eventType: t.exposeString('eventType', { description: 'What happened, e.g. commerce.purchases or web.pageViews.' }),
    data: t.field({ type: 'JSON', description: 'The rest of the event document.', resolve: (e) => e.payload }),
    profile: t.field({
      type: ProfileRef,
      nullable: true,
      description: 'The profile the event belongs to; null when it has been deleted since.',
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
      description: 'Every identity joined into this profile.',
      // Profiles have a handful of identities, not the ten a list is assumed to have.
      complexity: { field: 1, multiplier: 2 },
      resolve: (p, _args, ctx) => ctx.loaders.identities.load(p.id),
    }),
    attributes: t.field({
      type: 'JSON',
      description: 'The attribute document, shaped by the profile schema.',
      resolve: (p) => p.attributes,
    }),
    createdAt: t.field({
      type: 'DateTime',
      description: 'When the profile was first ingested.',
      resolve: (p) => p.createdAt,
    }),
    updatedAt: t.field({
      type: 'DateTime',
      description: 'When it last changed: its record ingested, or an event of it ingested, whichever is later.',
      resolve: (p) => p.updatedAt,
    }),
    events: t.connection(
      {
        type: EventRef,
        description: "The profile's experience events, newest first.",
        args: {
          eventType: t.arg.string({ description: 'Only events of this type.' }),
          from: t.arg({ type: 'DateTime', description: 'Only events at or after this instant.' }),
          to: t.arg({ type: 'DateTime', description: 'Only events before this instant.' }),
        },
        complexity: connectionComplexity,
        resolve: async (p, args, ctx) =>
          toConnection(
            await listEvents(
              ctx.conn,
              ctx.sandbox.id,
              p.id,
              { eventType: args.eventType, from: args.from, to: args.to },
              args,
            ),
          ),
      },
      { name: 'EventConnection', description: 'A page of experience events.' },
      { name: 'EventEdge', description: 'An experience event in a page, with its cursor.' },
    ),
  }),
});

const ProfileFilter = builder.inputType('ProfileFilter', {
  description: 'Narrows a profile list; the conditions given must all hold.',
  fields: (t) => ({
    identityNamespace: t.string({ description: 'Only profiles with an identity in this namespace.' }),
    identityValue: t.string({ description: 'Only profiles with an identity of this value (in any namespace).' }),
    updatedAfter: t.field({
      type: 'DateTime',
      description: 'Only profiles changed after this instant (their record, or an event of theirs, ingested since).',
    }),
  }),
});

/** The one list type of profiles: `profiles`, `profilesMatching` and `Preview.results`, so one fragment fits all three. */
export const ProfileConnection = builder.connectionObject(
  { type: ProfileRef, name: 'ProfileConnection', description: 'A page of profiles.' },
  { name: 'ProfileEdge', description: 'A profile in a page, with its cursor.' },
);

builder.queryFields((t) => ({
  profile: t.field({
    type: ProfileRef,
    nullable: true,
    description: 'A profile by global id or by one of its identities (give one of the two); null when none matches.',
    args: {
      id: t.arg.id({ description: 'The global id of the profile.' }),
      identity: t.arg({ type: IdentityInput, description: 'One of its identities.' }),
    },
    resolve: async (_root, args, ctx) => {
      if ((args.id == null) === (args.identity == null)) throw badInput('Give either "id" or "identity"', 'id');
      if (args.identity) return (await profileByIdentity(ctx.conn, ctx.sandbox.id, args.identity)) ?? null;
      const id = decodeId(args.id!, 'Profile');
      return id === undefined ? null : ((await ctx.loaders.profile.load(id)) ?? null);
    },
  }),
  profiles: t.connection(
    {
      type: ProfileRef,
      description: 'Every profile of the sandbox, optionally filtered, in id order.',
      args: { filter: t.arg({ type: ProfileFilter, description: 'Conditions the profiles must meet.' }) },
      complexity: connectionComplexity,
      resolve: async (_root, args, ctx) =>
        toConnection(
          await listProfiles(
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
    ProfileConnection,
  ),
}));

const IngestErrorCodeEnum = enumFromDomain(
  'IngestErrorCode',
  'Why a record of an ingest was rejected.',
  INGEST_ERROR_CODES,
  {
    BAD_USER_INPUT: 'The record is invalid: a missing identity, a wrong type or a field the profile schema lacks.',
    GUARDRAIL: 'The record is over a guardrail: too large, or too many identities for one profile.',
  },
);

const IngestErrorType = builder.simpleObject('IngestError', {
  description: 'A record an ingest rejected (the other records of the batch landed).',
  fields: (t) => ({
    index: t.int({ description: '0-based position of the record in the input list.' }),
    message: t.string({ description: 'What is wrong with the record, in words a person can act on.' }),
    code: t.field({ type: IngestErrorCodeEnum, description: 'Why the record was rejected.' }),
  }),
});

const IngestResultType = builder.objectRef<IngestResult>('IngestResult').implement({
  description: 'What an ingest did with each record of the batch.',
  fields: (t) => ({
    accepted: t.exposeInt('accepted', { description: 'Records stored (duplicates included).' }),
    rejected: t.exposeInt('rejected', { description: 'Records rejected; each is listed in errors.' }),
    duplicates: t.exposeInt('duplicates', { description: 'Accepted events whose id was already stored (kept once).' }),
    errors: t.field({
      type: [IngestErrorType],
      description: 'One entry per rejected record, by position.',
      resolve: (r) => r.errors,
    }),
    profileIds: t.globalIDList({
      description: 'Per accepted record, in input order: the profile it landed in.',
      resolve: (r) => r.profileIds.map((id) => ({ type: 'Profile', id })),
    }),
  }),
});

const ProfileInput = builder.inputType('ProfileInput', {
  description: 'A profile record to merge in: who it is, and attributes to set.',
  fields: (t) => ({
    identities: t.field({
      type: [IdentityInput],
      required: true,
      description: 'Identities of the person; a record naming identities of two profiles joins them.',
    }),
    attributes: t.field({
      type: 'JSON',
      required: true,
      description: 'Attributes to merge (later values win per field, arrays are replaced, null clears).',
    }),
  }),
});

const EventInput = builder.inputType('EventInput', {
  description: 'An experience event to store on the profile of its identity.',
  fields: (t) => ({
    id: t.string({ description: 'Makes retries idempotent: an id already stored is not stored again.' }),
    identity: t.field({
      type: IdentityInput,
      required: true,
      description: 'Whose event it is; an identity never seen before makes a new profile.',
    }),
    timestamp: t.field({ type: 'DateTime', required: true, description: 'When the event happened.' }),
    eventType: t.string({ required: true, description: 'What happened, e.g. commerce.purchases or web.pageViews.' }),
    data: t.field({
      type: 'JSON',
      description: 'The rest of the event document (commerce, productListItems, web, …).',
    }),
  }),
});

builder.mutationFields((t) => ({
  ingestProfiles: t.field({
    type: IngestResultType,
    nullable: true,
    description:
      'Merges records into profiles by identity (joining profiles that share one); bad records are reported by index.',
    args: { records: t.arg({ type: [ProfileInput], required: true, description: 'The profile records, in order.' }) },
    resolve: (_root, args, ctx) => ctx.app.ingest.profiles(ctx.sandbox.id, args.records as ProfileRecord[]),
  }),
  ingestEvents: t.field({
    type: IngestResultType,
    nullable: true,
    description:
      'Stores experience events on the profiles of their identities (streaming audiences follow at once); bad events are reported by index.',
    args: { events: t.arg({ type: [EventInput], required: true, description: 'The events, in order.' }) },
    resolve: (_root, args, ctx) =>
      // The DateTime scalar has read each timestamp into epoch ms, which ingestion takes as is.
      ctx.app.ingest.events(ctx.sandbox.id, args.events),
  }),
  deleteProfile: t.globalID({
    nullable: true,
    description: 'Deletes the profile with this identity, with its events and memberships; returns its id.',
    args: { identity: t.arg({ type: IdentityInput, required: true, description: 'Any identity of the profile.' }) },
    resolve: async (_root, args, ctx) => ({
      type: 'Profile',
      id: await deleteProfile(ctx.conn, ctx.sandbox.id, args.identity),
    }),
  }),
}));
