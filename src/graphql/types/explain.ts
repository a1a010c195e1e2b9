import { explainMembership, type MembershipExplanation } from '../../domain/explain-membership.js';
import type { ExplainNode } from '../../pql/index.js';
import { builder } from '../builder.js';
import { decodeId } from '../ids.js';
import { IdentityInput } from './profile.js';
import { MembershipStatusEnum } from './refs.js';

const ExplainNodeType = builder.objectRef<ExplainNode>('ExplainNode');
ExplainNodeType.implement({
  description: 'One sub-expression as the evaluator computed it, with what it read.',
  fields: (t) => ({
    text: t.exposeString('text', { description: 'The sub-expression, printed canonically.' }),
    line: t.exposeInt('line', { description: 'Its line in the expression (1-based).' }),
    column: t.exposeInt('column', { description: 'Its column in the expression (1-based).' }),
    value: t.field({
      type: 'JSON',
      nullable: true,
      description:
        'What it evaluated to (datetimes as ISO strings, long arrays cut to their first items); null when missing.',
      resolve: (n) => n.value,
    }),
    passed: t.boolean({
      nullable: true,
      description: 'For boolean sub-expressions, whether it held; null otherwise.',
      resolve: (n) => n.passed,
    }),
    evidence: t.field({
      type: 'JSON',
      nullable: true,
      description:
        'What was read: values compared, matching events (count and up to 5), windows at now, memberships, CHAIN steps.',
      resolve: (n) => n.evidence,
    }),
    children: t.field({
      type: [ExplainNodeType],
      description: 'Its evaluated sub-expressions (constants left out).',
      resolve: (n) => n.children,
    }),
  }),
});

const ExplanationType = builder.objectRef<MembershipExplanation>('Explanation').implement({
  description: 'Why a profile qualifies or not, told by the evaluator that decides memberships.',
  fields: (t) => ({
    qualifies: t.exposeBoolean('qualifies', { description: 'Whether the profile satisfies the expression at `at`.' }),
    storedStatus: t.field({
      type: MembershipStatusEnum,
      nullable: true,
      description: 'The stored membership, when an audience was given (null: never a member).',
      resolve: (e) => e.storedStatus,
    }),
    agreesWithStored: t.boolean({
      nullable: true,
      description: 'Whether the verdict matches the stored membership; null without an audience.',
      resolve: (e) => e.agreesWithStored,
    }),
    definitionVersion: t.int({
      nullable: true,
      description: 'The version of the definition explained, when an audience was given.',
      resolve: (e) => e.definitionVersion,
    }),
    root: t.field({ type: ExplainNodeType, description: 'The whole expression.', resolve: (e) => e.root }),
    nearestMiss: t.field({
      type: ExplainNodeType,
      nullable: true,
      description:
        'For a "no": the failing clause that would flip it (the smallest failing operand of an and; an or with its failing branches).',
      resolve: (e) => e.nearestMiss,
    }),
  }),
});

builder.queryField('explainMembership', (t) =>
  t.field({
    type: ExplanationType,
    nullable: true,
    description:
      'Why a profile is or is not in an audience (or matches an expression), from the evaluator itself; null when the profile or audience is unknown.',
    args: {
      profile: t.arg.id({ description: 'The profile, by id (or give identity).' }),
      identity: t.arg({ type: IdentityInput, description: 'The profile, by an identity (or give profile).' }),
      audienceId: t.arg.id({ description: 'The audience whose definition to explain (or give expression).' }),
      expression: t.arg.string({ description: 'A PQL expression to explain instead of an audience.' }),
      at: t.arg({
        type: 'DateTime',
        description:
          "The evaluation instant (default: now). With an audience, the definition version in force then is used; at a transition's instant, the version that decided it.",
      }),
    },
    resolve: (_r, args, ctx) => {
      const profileId = args.profile == null ? null : decodeId(String(args.profile), 'Profile');
      const audienceId = args.audienceId == null ? null : decodeId(String(args.audienceId), 'Audience');
      if ((args.profile != null && profileId === undefined) || (args.audienceId != null && audienceId === undefined))
        return null;
      return explainMembership(ctx.conn, ctx.sandbox.id, {
        profileId,
        identity: args.identity,
        audienceId,
        expression: args.expression,
        at: args.at,
      });
    },
  }),
);
