import { audiencesByIds } from '../../domain/audiences.js';
import { notFound } from '../../domain/errors.js';
import { topics } from '../../domain/events.js';
import {
  listMembershipHistory,
  type Membership,
  type MembershipChange,
  type MembershipTransition,
} from '../../domain/memberships.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { requireId } from '../ids.js';
import { ProfileRef } from './profile.js';
import { AudienceRef, MembershipStatusEnum } from './refs.js';

const AudienceMembershipType = builder.objectRef<Membership>('AudienceMembership').implement({
  fields: (t) => ({
    audience: t.field({
      type: AudienceRef,
      resolve: async (m, _a, ctx) => (await ctx.loaders.audience.load(m.audienceId))!,
    }),
    status: t.field({ type: MembershipStatusEnum, resolve: (m) => m.status }),
    qualifiedAt: t.field({ type: 'DateTime', nullable: true, resolve: (m) => m.qualifiedAt }),
    lastEvaluatedAt: t.field({ type: 'DateTime', nullable: true, resolve: (m) => m.lastEvaluatedAt }),
    exitedAt: t.field({ type: 'DateTime', nullable: true, resolve: (m) => m.exitedAt }),
  }),
});

const MembershipTransitionType = builder.objectRef<MembershipTransition>('MembershipTransition').implement({
  description: "One change of a profile's membership in an audience.",
  fields: (t) => ({
    audience: t.field({
      type: AudienceRef,
      nullable: true,
      resolve: (m, _a, ctx) => ctx.loaders.audience.load(m.audienceId),
    }),
    at: t.field({ type: 'DateTime', resolve: (m) => m.at }),
    from: t.field({ type: MembershipStatusEnum, nullable: true, resolve: (m) => m.fromStatus }),
    to: t.field({ type: MembershipStatusEnum, resolve: (m) => m.toStatus }),
    cause: t.exposeString('cause', { description: '"job:<id>", "streaming", "manual" or "expiry".' }),
  }),
});

builder.objectFields(ProfileRef, (t) => ({
  memberships: t.field({
    type: [AudienceMembershipType],
    description: 'Every audience this profile is or was (EXITED, last 30 days) a member of.',
    resolve: (p, _a, ctx) => ctx.loaders.memberships.load(p.id),
  }),
  membershipHistory: t.connection(
    {
      type: MembershipTransitionType,
      description: 'Newest first.',
      complexity: connectionComplexity,
      resolve: (p, args, ctx) => toConnection(listMembershipHistory(ctx.conn, ctx.sandbox.id, p.id, args)),
    },
    { name: 'MembershipTransitionConnection' },
    { name: 'MembershipTransitionEdge' },
  ),
}));

const MembershipChangeType = builder.objectRef<MembershipChange>('MembershipChange').implement({
  description:
    "A change of a profile's membership made by streaming segmentation (an ingest, or a time window that passed).",
  fields: (t) => ({
    audience: t.field({
      type: AudienceRef,
      nullable: true,
      resolve: (c, _a, ctx) => ctx.loaders.audience.load(c.audienceId),
    }),
    profile: t.field({
      type: ProfileRef,
      nullable: true,
      description: 'Null when the profile has been deleted since.',
      resolve: (c, _a, ctx) => ctx.loaders.profile.load(c.profileId),
    }),
    from: t.field({ type: MembershipStatusEnum, nullable: true, resolve: (c) => c.from }),
    to: t.field({ type: MembershipStatusEnum, resolve: (c) => c.to }),
    at: t.field({ type: 'DateTime', resolve: (c) => c.at }),
    cause: t.exposeString('cause', { description: '"streaming" (an ingest) or "expiry" (a time window passed).' }),
  }),
});

builder.subscriptionField('audienceMembershipChanged', (t) =>
  t.field({
    type: MembershipChangeType,
    description:
      "Streaming segmentation's membership changes in this sandbox as they commit (only one audience's with audienceId).",
    args: { audienceId: t.arg.id() },
    subscribe: (_r, args, ctx) => {
      const audienceId = args.audienceId == null ? undefined : requireId(String(args.audienceId), 'Audience');
      if (audienceId !== undefined && !audiencesByIds(ctx.conn, ctx.sandbox.id, [audienceId]).has(audienceId)) {
        throw notFound(`No Audience with id "${args.audienceId}" in this sandbox`, String(args.audienceId));
      }
      return membershipChanges(
        ctx.app.bus.subscribe<MembershipChange>(topics.memberships(ctx.sandbox.id), ctx.signal),
        audienceId,
      );
    },
    resolve: (change) => change,
  }),
);

async function* membershipChanges(
  changes: AsyncIterableIterator<MembershipChange> & { close(): void },
  audienceId: number | undefined,
): AsyncGenerator<MembershipChange> {
  try {
    for await (const change of changes) if (audienceId === undefined || change.audienceId === audienceId) yield change;
  } finally {
    changes.close();
  }
}
