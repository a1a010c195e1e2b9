/**
 * The dry run of a definition change (`previewDefinitionChange`): a job evaluating the new
 * expression against the store at one `now` and comparing with the audience's current members,
 * so who would join or leave is known before the change is saved.
 */
import type { Store } from '../../db/store.js';
import type { CheckedExpression } from '../../pql/index.js';
import { dependentDefinitions } from '../audiences.js';
import {
  definitionsByIds,
  dependenciesOf,
  dependencyOrder,
  type EvaluationInfo,
  type EvaluationRequest,
  requireDefinition,
  type SegmentDefinition,
  validEvaluation,
} from '../definitions.js';
import { assertRunnable, checkExpression, type ExpressionInput } from '../expressions.js';
import { defineJobKind } from '../jobs/job-kind.js';
import type { JobQueue } from '../jobs/job-queue.js';
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
  /**
   * The evaluation settings the change would save, checked against the new expression as an
   * update checks them; absent on dry runs queued before settings were part of one.
   */
  evaluationInfo?: EvaluationInfo;
  /** Why a requested streaming or edge evaluation would run as batch (as the saved definition would say). */
  evaluationWarnings?: string[];
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
 * Checks the new expression and evaluation settings as an update would (a PQL error or no
 * evaluation method is reported on the request; streaming or edge the new expression cannot
 * run becomes batch with a warning, as the saved definition would) and queues the dry run.
 */
export async function previewDefinitionChange(
  app: { conn: Store; jobs: JobQueue },
  sandboxId: number,
  definitionId: number,
  expression: ExpressionInput,
  options: { evaluationInfo?: EvaluationRequest | null; seed?: number | null } = {},
): Promise<DefinitionChangePreview> {
  const { conn } = app;
  return app.jobs.enqueue(conn, sandboxId, 'DEFINITION_CHANGE_PREVIEW', async (_chain, tx) => {
    const def = await requireDefinition(tx, sandboxId, definitionId);
    const { text, checked } = await checkExpression(tx, sandboxId, expression, {
      definition: true,
      selfAudienceId: def.audienceId,
    });
    await assertRunnable(tx, sandboxId, checked);
    return dryRunInput(def, expression, { text, checked }, options);
  });
}

/**
 * A dry run's input from the definition and the checked new expression, on either database
 * (the cluster's queuing is cluster/cluster-dry-run.ts): the evaluation settings settled as an
 * update would settle them, and the seed of its random reading.
 */
export function dryRunInput(
  def: SegmentDefinition,
  expression: ExpressionInput,
  { text, checked }: { text: string; checked: CheckedExpression },
  options: { evaluationInfo?: EvaluationRequest | null; seed?: number | null },
): DefinitionChangeJobInput {
  const { info, warnings } = validEvaluation(
    options.evaluationInfo,
    def.evaluationInfo,
    checked.eligibility,
    'evaluationInfo',
  );
  return {
    definitionId: def.id,
    audienceId: def.audienceId,
    expression,
    expressionText: text,
    evaluationInfo: info,
    evaluationWarnings: warnings,
    at: null,
    seed: options.seed ?? Math.floor(Math.random() * 2 ** 31),
  };
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

/** What the dry run's task does, fixed when it starts (the runner's plan; benchmarks and tests call it too). */
export async function definitionChangePlan(
  conn: Store,
  job: Pick<DefinitionChangePreview, 'id' | 'sandboxId' | 'input'>,
  now: number,
): Promise<DefinitionChangePlan> {
  const dependents = await transitiveDependents(conn, job.sandboxId, job.input.definitionId, job.input.audienceId);
  return {
    jobId: job.id,
    sandboxId: job.sandboxId,
    now,
    audienceId: job.input.audienceId,
    expressionText: job.input.expressionText,
    seed: job.input.seed,
    confidenceLevel: 0.95,
    dependents: dependents.map((d) => ({
      definitionId: d.id,
      audienceId: d.audienceId,
      expressionText: d.expressionText,
    })),
  };
}

/**
 * Every definition that reads the audience through inSegment, directly or through another
 * dependent's audience, in dependency order (each after the dependents it reads), so the task
 * can evaluate each on the simulated members of those before it.
 */
async function transitiveDependents(
  conn: Store,
  sandboxId: number,
  definitionId: number,
  audienceId: number,
): Promise<SegmentDefinition[]> {
  const found = new Map<number, SegmentDefinition>();
  let frontier = [audienceId];
  while (frontier.length > 0) {
    const ids = [...(await dependentDefinitions(conn, sandboxId, frontier)).values()]
      .flat()
      .filter((id) => id !== definitionId && !found.has(id));
    const defs = [...(await definitionsByIds(conn, sandboxId, [...new Set(ids)])).values()];
    for (const d of defs) found.set(d.id, d);
    frontier = defs.map((d) => d.audienceId);
  }
  const defs = [...found.values()];
  return dependencyOrder(
    defs,
    await dependenciesOf(
      conn,
      sandboxId,
      defs.map((d) => d.id),
    ),
  );
}

/** A page of a finished dry run's sample of joining or leaving profiles, in id order. */
export async function listChangeSample(
  conn: Store,
  sandboxId: number,
  job: DefinitionChangePreview,
  side: 'join' | 'leave',
  args: PageArgs,
): Promise<Page<Profile> & { totalCount: () => number }> {
  const ids = (side === 'join' ? job.result?.joinSample : job.result?.leaveSample) ?? [];
  return await profilePageOfIds(conn, sandboxId, ids, args, () => ids.length);
}
