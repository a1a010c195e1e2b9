import { listMembershipHistory, type Membership, type MembershipTransition } from '../../domain/memberships.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
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
