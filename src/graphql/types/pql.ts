import type { Audience } from '../../domain/audiences.js';
import type { EdgeEvaluation } from '../../domain/evaluation.js';
import type { PqlProblem } from '../../domain/expressions.js';
import { convertExpression, type PqlFormat, type PqlValidation, validatePql } from '../../domain/expressions.js';
import { evaluateProfile, profilesMatching } from '../../domain/queries/ad-hoc.js';
import { PQL_ERROR_CODES } from '../../pql/index.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { enumFromDomain } from '../enums.js';
import { requireId } from '../ids.js';
import { selectsOnlyId } from '../selection.js';
import { IdentityInput, ProfileConnection, ProfileRef } from './profile.js';
import { AudienceRef, PqlFormatEnum } from './refs.js';
import { EligibilityType } from './segment-definition.js';

const PqlErrorCodeEnum = enumFromDomain('PqlErrorCode', 'The kind of problem in a PQL expression.', PQL_ERROR_CODES, {
  PQL_SYNTAX_ERROR: 'The text does not parse: see expected for what would fit.',
  PQL_TYPE_ERROR: 'It parses but does not check: an unknown field, a wrong type or an unknown audience.',
});

const PqlErrorType = builder.objectRef<PqlProblem>('PqlError').implement({
  description: 'A problem in a PQL expression, at 1-based line and column (offset 0-based, in characters).',
  fields: (t) => ({
    message: t.exposeString('message', { description: 'What is wrong, in words a person can act on.' }),
    code: t.field({ type: PqlErrorCodeEnum, description: 'The kind of problem.', resolve: (e) => e.code }),
    line: t.exposeInt('line', { description: 'Line of the problem, from 1.' }),
    column: t.exposeInt('column', { description: 'Column of the problem, from 1.' }),
    offset: t.exposeInt('offset', { description: 'Offset of the problem in characters, from 0.' }),
    length: t.exposeInt('length', { description: 'Length of the offending span, in characters.' }),
    expected: t.exposeStringList('expected', { description: 'For syntax errors: what would have been accepted here.' }),
  }),
});

const PqlValidationType = builder.objectRef<PqlValidation>('PqlValidation').implement({
  description: 'What checking an expression found; the rest is null or empty when it is not valid.',
  fields: (t) => ({
    valid: t.exposeBoolean('valid', { description: 'It parses and checks against the profile schema.' }),
    errors: t.field({
      type: [PqlErrorType],
      description: 'The problems found (empty when valid).',
      resolve: (v) => v.errors,
    }),
    type: t.exposeString('type', {
      nullable: true,
      description:
        'Its type: boolean, number, string, datetime, array<T>, … A segment definition must be boolean or an array (non-empty).',
    }),
    normalized: t.exposeString('normalized', { nullable: true, description: 'Canonical text.' }),
    json: t.field({ type: 'JSON', nullable: true, description: 'The pql/json form.', resolve: (v) => v.json }),
    eligibility: t.field({
      type: EligibilityType,
      nullable: true,
      description: 'How it can run.',
      resolve: (v) => v.eligibility,
    }),
    referencedFields: t.exposeStringList('referencedFields', {
      description: 'Profile and event fields it reads, as paths.',
    }),
    referencedAudiences: t.field({
      type: [AudienceRef],
      description: 'Audiences it names through inSegment.',
      resolve: async (v, _a, ctx) =>
        (await ctx.loaders.audience.loadMany(v.referencedAudiences)).filter((a) => a && !(a instanceof Error)) as never,
    }),
  }),
});

const EdgeEvaluationType = builder.objectRef<EdgeEvaluation>('EdgeEvaluation').implement({
  description: 'The outcome of evaluating one profile on demand.',
  fields: (t) => ({
    qualifies: t.exposeBoolean('qualifies', {
      nullable: true,
      description:
        'When an expression was given: whether it holds (true, or a non-empty array); null for other values.',
    }),
    value: t.field({
      type: 'JSON',
      nullable: true,
      description:
        'When an expression was given: its value (a count, a sum, …); datetimes as ISO text, missing as null.',
      resolve: (v) => v.value ?? null,
    }),
    audiences: t.field({
      type: [AudienceRef],
      description: 'Qualifying audiences, when audienceIds or no expression was given.',
      // The evaluation read these ids from live audiences of the sandbox; asked only for ids (the
      // edge path), reading the 20-odd rows back was a fifth of the request's garbage.
      resolve: (v, _a, ctx, info) =>
        selectsOnlyId(info)
          ? v.audienceIds.map((id) => ({ id }) as Audience)
          : ctx.loaders.audience
              .loadMany(v.audienceIds)
              .then((found) => found.filter((a): a is Audience => !!a && !(a instanceof Error))),
    }),
    durationMs: t.exposeFloat('durationMs', { description: 'Evaluation time in milliseconds.' }),
  }),
});

const format = (f: string | null | undefined) => (f ?? 'PQL_TEXT') as PqlFormat;

builder.queryFields((t) => ({
  validatePql: t.field({
    type: PqlValidationType,
    description:
      'Parses and checks an expression against this sandbox: errors with positions, canonical text, eligibility.',
    args: {
      expression: t.arg.string({ required: true, description: 'The expression to check.' }),
      format: t.arg({ type: PqlFormatEnum, defaultValue: 'PQL_TEXT', description: 'Its form.' }),
    },
    resolve: (_r, args, ctx) =>
      validatePql(ctx.conn, ctx.sandbox.id, { format: format(args.format), value: args.expression }),
  }),
  convertPql: t.string({
    description: 'Converts between the text and pql/json forms (syntax only).',
    args: {
      expression: t.arg.string({ required: true, description: 'The expression to convert.' }),
      from: t.arg({ type: PqlFormatEnum, required: true, description: 'Its form.' }),
      to: t.arg({ type: PqlFormatEnum, required: true, description: 'The form to convert it to.' }),
    },
    resolve: (_r, args) => convertExpression({ format: args.from, value: args.expression }, args.to),
  }),
  profilesMatching: t.connection(
    {
      type: ProfileRef,
      description:
        "The exact set of qualifying profiles (SQL engine) at `at` (default: now). Runs within the server's time budget; past it the answer is QUERY_TIMEOUT.",
      args: {
        expression: t.arg.string({ required: true, description: 'Who qualifies.' }),
        format: t.arg({ type: PqlFormatEnum, defaultValue: 'PQL_TEXT', description: 'The form of expression.' }),
        at: t.arg({ type: 'DateTime', description: 'Evaluate as of this instant (default: now).' }),
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
    ProfileConnection,
  ),
  evaluateProfile: t.field({
    type: EdgeEvaluationType,
    description:
      "Evaluates one profile with the JS engine: an expression, or the definitions of audienceIds (default: all edge-enabled). Runs within the server's time budget; past it the answer is QUERY_TIMEOUT.",
    args: {
      identity: t.arg({ type: IdentityInput, required: true, description: 'Any identity of the profile.' }),
      expression: t.arg.string({ description: 'An expression to evaluate (instead of definitions).' }),
      format: t.arg({ type: PqlFormatEnum, defaultValue: 'PQL_TEXT', description: 'The form of expression.' }),
      audienceIds: t.arg.idList({ description: 'Audiences whose definitions to evaluate.' }),
      at: t.arg({ type: 'DateTime', description: 'Evaluate as of this instant (default: now).' }),
    },
    resolve: (_r, args, ctx) =>
      evaluateProfile(ctx.app, ctx.sandbox.id, args.identity, {
        expression: args.expression == null ? null : { format: format(args.format), value: args.expression },
        audienceIds: args.audienceIds?.map((id) => requireId(id, 'Audience')),
        at: args.at ?? Date.now(),
      }),
  }),
}));
