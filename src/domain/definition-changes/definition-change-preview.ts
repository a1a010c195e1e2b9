/**
 * The dry run of a definition change (`previewDefinitionChange`): a job evaluating the new
 * expression against the store at one `now` and comparing with the audience's current members,
 * so who would join or leave is known before the change is saved.
 */
import type { Connection } from '../../db/index.js';
import { dependentDefinitions } from '../audiences.js';
import { definitionsByIds, requireDefinition } from '../definitions.js';
import { checkExpression, type ExpressionInput } from '../expressions.js';
import { defineJobKind } from '../jobs/job-kind.js';
import type { JobRunner } from '../jobs/job-runner.js';
import type { JobOf } from '../jobs/job-store.js';
import type { JobInputBase } from '../jobs/job-types.js';
import type { Page, PageArgs } from '../paging.js';
import { type Profile, profilePageOfIds } from '../profiles.js';
import type {
  DefinitionChangePlan,
  DefinitionChangeProgress,
  DefinitionChangeResult,
} from './definition-change-task.js';

/** Profiles kept per side (join, leave) as a sample. */
export const CHANGE_SAMPLE_SIZE = 100;

export interface DefinitionChangeJobInput extends JobInputBase {
  definitionId: number;
  audienceId: number;
  expression: ExpressionInput;
  /** The new expression's canonical text. */
  expressionText: string;
  /** Orders the random reading: the same seed on the same store gives the same running estimates. */
  seed: number;
}

declare module '../jobs/job-types.js' {
  interface JobKindTypes {
    DEFINITION_CHANGE_PREVIEW: {
      input: DefinitionChangeJobInput;
      progress: DefinitionChangeProgress;
      result: DefinitionChangeResult;
    };
  }
}

export type DefinitionChangePreview = JobOf<'DEFINITION_CHANGE_PREVIEW'>;

/**
 * Checks the new expression as an update would (a PQL error is reported on the request) and
 * queues the dry run. The evaluation settings are checked against the new expression's
 * eligibility by the update itself; the dry run only needs the expression.
 */
export function previewDefinitionChange(
  app: { conn: Connection; jobs: JobRunner },
  sandboxId: number,
  definitionId: number,
  expression: ExpressionInput,
  options: { seed?: number | null } = {},
): DefinitionChangePreview {
  const { conn } = app;
  return app.jobs.enqueue(sandboxId, 'DEFINITION_CHANGE_PREVIEW', () => {
    const def = requireDefinition(conn, sandboxId, definitionId);
    const { text } = checkExpression(conn, sandboxId, expression, { definition: true, selfAudienceId: def.audienceId });
    return {
      definitionId: def.id,
      audienceId: def.audienceId,
      expression,
      expressionText: text,
      at: null,
      seed: options.seed ?? Math.floor(Math.random() * 2 ** 31),
    };
  });
}

export const definitionChangeJobKind = defineJobKind({
  kind: 'DEFINITION_CHANGE_PREVIEW',
  task: new URL('./definition-change-task.ts', import.meta.url),
  timeoutMs: 10 * 60_000,
  plan: (job, now, { conn }) => definitionChangePlan(conn, job, now),
  runningResult: (p) => ({
    wouldJoin: p.wouldJoin,
    wouldLeave: p.wouldLeave,
    wouldStay: p.wouldStay,
    profilesRead: p.done,
    joinSample: [],
    leaveSample: [],
    affectedDependents: [],
  }),
});

/** What the dry run's task does, fixed when it starts (the runner's plan; tests call it too). */
export function definitionChangePlan(
  conn: Connection,
  job: DefinitionChangePreview,
  now: number,
): DefinitionChangePlan {
  const dependentIds =
    dependentDefinitions(conn, job.sandboxId, [job.input.audienceId]).get(job.input.audienceId) ?? [];
  return {
    jobId: job.id,
    sandboxId: job.sandboxId,
    now,
    audienceId: job.input.audienceId,
    expressionText: job.input.expressionText,
    seed: job.input.seed,
    confidenceLevel: 0.95,
    dependents: [...definitionsByIds(conn, job.sandboxId, dependentIds).values()].map((d) => ({
      definitionId: d.id,
      audienceId: d.audienceId,
      expressionText: d.expressionText,
    })),
  };
}

/** A page of a finished dry run's sample of joining or leaving profiles, in id order. */
export function listChangeSample(
  conn: Connection,
  sandboxId: number,
  job: DefinitionChangePreview,
  side: 'join' | 'leave',
  args: PageArgs,
): Page<Profile> & { totalCount: () => number } {
  const ids = (side === 'join' ? job.result?.joinSample : job.result?.leaveSample) ?? [];
  return profilePageOfIds(conn, sandboxId, ids, args, () => ids.length);
}
