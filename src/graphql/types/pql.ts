import { convertExpression, type PqlFormat } from '../../domain/expressions.js';
import type { EdgeEvaluation, PqlProblem } from '../../domain/pql-tools.js';
import { validatePql } from '../../domain/pql-tools.js';
import { evaluateProfile, profilesMatching } from '../../domain/queries/ad-hoc.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { requireId } from '../ids.js';
import { IdentityInput, ProfileRef } from './profile.js';
import { AudienceRef, PqlFormatEnum } from './refs.js';
import { EligibilityType } from './segment-definition.js';

const PqlErrorType = builder.objectRef<PqlProblem>('PqlError').implement({
  description: 'A problem in a PQL expression, at 1-based line and column (offset 0-based, in characters).',
  fields: (t) => ({
    message: t.exposeString('message'),
    code: t.exposeString('code', { description: 'PQL_SYNTAX_ERROR or PQL_TYPE_ERROR.' }),
    line: t.exposeInt('line'),
    column: t.exposeInt('column'),
    offset: t.exposeInt('offset'),
    length: t.exposeInt('length'),
    expected: t.exposeStringList('expected', { description: 'For syntax errors: what would have been accepted here.' }),
  }),
});

const PqlValidationType = builder.objectRef<ReturnType<typeof validatePql>>('PqlValidation').implement({
  fields: (t) => ({
    valid: t.exposeBoolean('valid'),
    errors: t.field({ type: [PqlErrorType], resolve: (v) => v.errors }),
    normalized: t.exposeString('normalized', { nullable: true, description: 'Canonical text.' }),
    json: t.field({ type: 'JSON', nullable: true, description: 'The pql/json form.', resolve: (v) => v.json }),
    eligibility: t.field({ type: EligibilityType, nullable: true, resolve: (v) => v.eligibility }),
    referencedFields: t.exposeStringList('referencedFields'),
    referencedAudiences: t.field({
      type: [AudienceRef],
      resolve: async (v, _a, ctx) =>
        (await ctx.loaders.audience.loadMany(v.referencedAudiences)).filter((a) => a && !(a instanceof Error)) as never,
    }),
  }),
});

const EdgeEvaluationType = builder.objectRef<EdgeEvaluation>('EdgeEvaluation').implement({
  fields: (t) => ({
    qualifies: t.exposeBoolean('qualifies', { nullable: true, description: 'When an expression was given.' }),
    audiences: t.field({
      type: [AudienceRef],
      description: 'Qualifying audiences, when audienceIds or no expression was given.',
      resolve: async (v, _a, ctx) =>
        (await ctx.loaders.audience.loadMany(v.audienceIds)).filter((a) => a && !(a instanceof Error)) as never,
    }),
    durationMs: t.exposeFloat('durationMs'),
  }),
});

const format = (f: string | null | undefined) => (f ?? 'PQL_TEXT') as PqlFormat;

builder.queryFields((t) => ({
  validatePql: t.field({
    type: PqlValidationType,
    description:
      'Parses and checks an expression against this sandbox: errors with positions, canonical text, eligibility.',
    args: {
      expression: t.arg.string({ required: true }),
      format: t.arg({ type: PqlFormatEnum, defaultValue: 'PQL_TEXT' }),
    },
    resolve: (_r, args, ctx) =>
      validatePql(ctx.conn, ctx.sandbox.id, { format: format(args.format), value: args.expression }),
  }),
  convertPql: t.string({
    description: 'Converts between the text and pql/json forms (syntax only).',
    args: {
      expression: t.arg.string({ required: true }),
      from: t.arg({ type: PqlFormatEnum, required: true }),
      to: t.arg({ type: PqlFormatEnum, required: true }),
    },
    resolve: (_r, args) => convertExpression({ format: args.from, value: args.expression }, args.to),
  }),
  profilesMatching: t.connection(
    {
      type: ProfileRef,
      description:
        "The exact set of qualifying profiles (SQL engine) at `at` (default: now). Runs within the server's time budget; past it the answer is QUERY_TIMEOUT.",
      args: {
        expression: t.arg.string({ required: true }),
        format: t.arg({ type: PqlFormatEnum, defaultValue: 'PQL_TEXT' }),
        at: t.arg({ type: 'DateTime' }),
      },
      complexity: connectionComplexity,
      resolve: async (_r, args, ctx) =>
        toConnection(
          await profilesMatching(
            ctx.app,
            ctx.sandbox.id,
            { format: format(args.format), value: args.expression },
            args.at ?? Date.now(),
            args,
          ),
        ),
    },
    { name: 'ProfileMatchConnection' },
    { name: 'ProfileMatchEdge' },
  ),
  evaluateProfile: t.field({
    type: EdgeEvaluationType,
    description:
      "Evaluates one profile with the JS engine: an expression, or the definitions of audienceIds (default: all edge-enabled). Runs within the server's time budget; past it the answer is QUERY_TIMEOUT.",
    args: {
      identity: t.arg({ type: IdentityInput, required: true }),
      expression: t.arg.string(),
      format: t.arg({ type: PqlFormatEnum, defaultValue: 'PQL_TEXT' }),
      audienceIds: t.arg.idList(),
      at: t.arg({ type: 'DateTime' }),
    },
    resolve: (_r, args, ctx) =>
      evaluateProfile(ctx.app, ctx.sandbox.id, args.identity, {
        expression: args.expression == null ? null : { format: format(args.format), value: args.expression },
        audienceIds: args.audienceIds?.map((id) => requireId(id, 'Audience')),
        at: args.at ?? Date.now(),
      }),
  }),
}));
