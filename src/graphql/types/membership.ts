import { audiencesByIds } from '../../domain/audiences.js';
import { badInput, notFound } from '../../domain/errors.js';
import { mapDeliveries, topics } from '../../domain/events.js';
import {
  listMembershipHistory,
  MEMBERSHIP_CAUSES,
  type Membership,
  type MembershipCause,
  type MembershipChange,
  type MembershipTransition,
} from '../../domain/memberships.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { renewLoaders } from '../context.js';
import { enumFromDomain } from '../enums.js';
import { requireId } from '../ids.js';
import { ProfileRef } from './profile.js';
import { AudienceRef, MembershipStatusEnum, membershipStateFields } from './refs.js';
import { SegmentJobRef } from './segment-job.js';

const MembershipCauseEnum = enumFromDomain('MembershipCause', "What moved a profile's membership.", MEMBERSHIP_CAUSES, {
  job: 'A segment job (see segmentJob).',
  streaming: 'Streaming segmentation, evaluating a profile an ingest changed.',
  manual: 'addAudienceMembers or removeAudienceMembers on a MANUAL audience.',
  expiry: "A time window of the expression passed (the streaming sweep), or an external audience member's TTL ran out.",
  import: 'A profile gained an identity that an external audience list named before it arrived.',
});

/** The cause as stored (`job:<id>` for a segment job) split into the cause and the job's id. */
function parseCause(stored: string): { cause: MembershipCause; jobId: number | null } {
  const [cause, jobId] = stored.split(':');
  return { cause: cause as MembershipCause, jobId: jobId === undefined ? null : Number(jobId) };
}

const AudienceMembershipType = builder.objectRef<Membership>('AudienceMembership').implement({
  description: "A profile's membership in one audience.",
  fields: (t) => ({
    audience: t.field({
      type: AudienceRef,
      description: 'The audience.',
      resolve: async (m, _a, ctx) => (await ctx.loaders.audience.load(m.audienceId))!,
    }),
    ...membershipStateFields(t, 'the profile'),
  }),
});

const MembershipTransitionType = builder.objectRef<MembershipTransition>('MembershipTransition').implement({
  description: "One change of a profile's membership in an audience.",
  fields: (t) => ({
    audience: t.field({
      type: AudienceRef,
      nullable: true,
      description: 'The audience; null when it has been deleted since.',
      resolve: (m, _a, ctx) => ctx.loaders.audience.load(m.audienceId),
    }),
    at: t.field({ type: 'DateTime', description: 'When the change happened.', resolve: (m) => m.at }),
    from: t.field({
      type: MembershipStatusEnum,
      nullable: true,
      description: 'The status before; null when the profile had never been a member.',
      resolve: (m) => m.fromStatus,
    }),
    to: t.field({ type: MembershipStatusEnum, description: 'The status after.', resolve: (m) => m.toStatus }),
    cause: t.field({
      type: MembershipCauseEnum,
      description: 'What made the change.',
      resolve: (m) => parseCause(m.cause).cause,
    }),
    definitionVersion: t.int({
      nullable: true,
      description:
        "The version of the audience's definition that decided it (pass `at` to explainMembership to explain it); null for MANUAL audiences.",
      resolve: (m) => m.definitionVersion,
    }),
    segmentJob: t.field({
      type: SegmentJobRef,
      nullable: true,
      description:
        'The segment job that made the change (cause JOB); null otherwise, when the job is gone or was an ingestion run.',
      resolve: (m, _a, ctx) => {
        const { jobId } = parseCause(m.cause);
        return jobId === null ? null : ctx.loaders.segmentJob.load(jobId);
      },
    }),
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
      description: "Every change of this profile's memberships, newest first.",
      complexity: connectionComplexity,
      resolve: async (p, args, ctx) => toConnection(await listMembershipHistory(ctx.conn, ctx.sandbox.id, p.id, args)),
    },
    { name: 'MembershipTransitionConnection', description: 'A page of membership changes.' },
    { name: 'MembershipTransitionEdge', description: 'A membership change in a page, with its cursor.' },
  ),
}));

/**
 * A change as one subscriber receives it: with the count of changes it lost just before
 * (audienceMembershipChanged), or bare inside a MembershipChangeCommit, whose own count it is.
 */
type DeliveredChange = MembershipChange & { lagged?: number };

const MembershipChangeType = builder.objectRef<DeliveredChange>('MembershipChange').implement({
  description:
    "A change of a profile's membership made by streaming segmentation (an ingest, or a time window that passed).",
  fields: (t) => ({
    audience: t.field({
      type: AudienceRef,
      nullable: true,
      description: 'The audience; null when it has been deleted since.',
      resolve: (c, _a, ctx) => ctx.loaders.audience.load(c.audienceId),
    }),
    profile: t.field({
      type: ProfileRef,
      nullable: true,
      description: 'Null when the profile has been deleted since.',
      resolve: (c, _a, ctx) => ctx.loaders.profile.load(c.profileId),
    }),
    from: t.field({
      type: MembershipStatusEnum,
      nullable: true,
      description: 'The status before; null when the profile had never been a member.',
      resolve: (c) => c.from,
    }),
    to: t.field({ type: MembershipStatusEnum, description: 'The status after.', resolve: (c) => c.to }),
    at: t.field({ type: 'DateTime', description: 'When the change happened.', resolve: (c) => c.at }),
    cause: t.field({
      type: MembershipCauseEnum,
      description: 'STREAMING (an ingest) or EXPIRY (a time window passed).',
      resolve: (c) => c.cause,
    }),
    lagged: t.int({
      description:
        'How many changes this subscriber lost just before this one because it read more slowly than they came (more than SEGQL_SUBSCRIPTION_QUEUE_SIZE behind); 0 normally, and always 0 inside a MembershipChangeCommit (whose lagged counts them). The lost changes are in membershipHistory.',
      resolve: (c) => c.lagged ?? 0,
    }),
  }),
});

builder.subscriptionField('audienceMembershipChanged', (t) =>
  t.field({
    type: MembershipChangeType,
    description:
      "Streaming segmentation's membership changes in this sandbox as they commit (only one audience's with audienceId).",
    args: { audienceId: t.arg.id({ description: "Only this audience's changes." }) },
    subscribe: async (_r, args, ctx) => {
      const audienceId = args.audienceId == null ? undefined : requireId(String(args.audienceId), 'Audience');
      if (audienceId !== undefined && !(await audiencesByIds(ctx.conn, ctx.sandbox.id, [audienceId])).has(audienceId)) {
        throw notFound(`No Audience with id "${args.audienceId}" in this sandbox`, String(args.audienceId));
      }
      const changes = ctx.app.bus.subscribe<MembershipChange>(topics.memberships(ctx.sandbox.id), ctx.signal);
      // A gap is reported on the next change this subscriber gets, whichever audience the lost
      // ones were of (the subscriber cannot know what it did not receive).
      let lost = 0;
      return mapDeliveries(changes, ({ payload: change, lagged }) => {
        lost += lagged;
        if (audienceId !== undefined && change.audienceId !== audienceId) return undefined;
        const delivered = deliveredChange(change, lost);
        lost = 0;
        renewLoaders(ctx, delivered);
        return delivered;
      });
    },
    resolve: (change) => change,
  }),
);

/** Each change as delivered without a gap before it, made once for all its subscribers. */
const deliveredWhole = new WeakMap<MembershipChange, DeliveredChange>();

/**
 * The change as a subscriber gets it. Every subscriber that lost nothing gets the same object,
 * so they share its loaders and its executed result (src/server/shared-subscription-results.ts).
 */
function deliveredChange(change: MembershipChange, lost: number): DeliveredChange {
  if (lost > 0) return { ...change, lagged: lost };
  let delivered = deliveredWhole.get(change);
  if (!delivered) {
    delivered = { ...change, lagged: 0 };
    deliveredWhole.set(change, delivered);
  }
  return delivered;
}

/** A commit's changes as one subscriber receives them: those of its audiences, after a gap of `lagged`. */
interface DeliveredCommit {
  changes: readonly MembershipChange[];
  lagged: number;
}

const MembershipChangeCommitType = builder.objectRef<DeliveredCommit>('MembershipChangeCommit').implement({
  description:
    'The membership changes streaming segmentation committed together (one ingest, or one pass of the time-window sweep).',
  fields: (t) => ({
    changes: t.field({
      type: [MembershipChangeType],
      description: 'The changes of the audiences subscribed to, in the order they were made; never empty.',
      resolve: (c) => c.changes,
    }),
    lagged: t.exposeInt('lagged', {
      description:
        'How many changes (of any audience) this subscriber lost just before these because it read more slowly than they came (more than SEGQL_SUBSCRIPTION_QUEUE_SIZE changes behind); 0 normally. The lost changes are in membershipHistory.',
    }),
  }),
});

builder.subscriptionField('audienceMembershipChangesCommitted', (t) =>
  t.field({
    type: MembershipChangeCommitType,
    description:
      "Streaming segmentation's membership changes in this sandbox, one event per commit carrying all its changes (with audienceIds only those audiences' changes; a commit without any is not sent).",
    args: {
      audienceIds: t.arg.idList({ description: "Only these audiences' changes (default: every audience's)." }),
    },
    subscribe: async (_r, args, ctx) => {
      const audienceIds = args.audienceIds?.map((id) => requireId(String(id), 'Audience'));
      if (audienceIds?.length === 0)
        throw badInput('audienceIds is empty: leave it out for every audience', 'audienceIds');
      if (audienceIds) {
        const found = await audiencesByIds(ctx.conn, ctx.sandbox.id, audienceIds);
        const missing = audienceIds.findIndex((id) => !found.has(id));
        if (missing >= 0) {
          const id = String(args.audienceIds![missing]);
          throw notFound(`No Audience with id "${id}" in this sandbox`, id);
        }
      }
      const only = audienceIds && new Set(audienceIds);
      const filterKey = only ? [...only].sort((a, b) => a - b).join(',') : '*';
      const commits = ctx.app.bus.subscribeCommits<MembershipChange>(topics.memberships(ctx.sandbox.id), ctx.signal);
      // As for audienceMembershipChanged, a gap is reported with the next commit sent.
      let lost = 0;
      return mapDeliveries(commits, ({ payload, lagged }) => {
        lost += lagged;
        const delivered = deliveredCommit(payload, only, filterKey, lost);
        if (delivered === undefined) return undefined;
        lost = 0;
        renewLoaders(ctx, delivered);
        return delivered;
      });
    },
    resolve: (commit) => commit,
  }),
);

/** Per published commit and audience filter, the commit as delivered without a gap (null: none of its changes). */
const deliveredCommits = new WeakMap<readonly MembershipChange[], Map<string, DeliveredCommit | null>>();

/**
 * The commit as a subscriber filtering on `only` gets it; undefined when none of its changes
 * pass. Every subscriber with the same filter that lost nothing gets the same object, so they
 * share its loaders and its executed result (src/server/shared-subscription-results.ts): one
 * execution per commit per operation, however many changes it has.
 */
function deliveredCommit(
  changes: readonly MembershipChange[],
  only: ReadonlySet<number> | undefined,
  filterKey: string,
  lost: number,
): DeliveredCommit | undefined {
  const pick = () => {
    const kept = only ? changes.filter((c) => only.has(c.audienceId)) : changes;
    return kept.length === 0 ? null : kept;
  };
  if (lost > 0) {
    const kept = pick();
    return kept === null ? undefined : { changes: kept, lagged: lost };
  }
  let byFilter = deliveredCommits.get(changes);
  if (!byFilter) {
    byFilter = new Map();
    deliveredCommits.set(changes, byFilter);
  }
  let delivered = byFilter.get(filterKey);
  if (delivered === undefined) {
    const kept = pick();
    delivered = kept === null ? null : { changes: kept, lagged: 0 };
    byFilter.set(filterKey, delivered);
  }
  return delivered ?? undefined;
}
