/**
 * The dry run's task run in-thread (as benchmarks run it), every progress report kept: a
 * subscriber over the API may miss reports a busy main thread handles after the job has ended,
 * so the running estimates are judged here, where none is lost.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import {
  type DefinitionChangePreview,
  definitionChangePlan,
} from '../../src/domain/definition-changes/definition-change-preview.js';
import definitionChangeTask, {
  type DefinitionChangeProgress,
} from '../../src/domain/definition-changes/definition-change-task.js';
import { createSegmentDefinition } from '../../src/domain/definitions.js';
import { insertJob, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { evaluateSegmentPlan } from '../../src/domain/segment-jobs/segment-evaluation.js';
import { orderedPlan } from '../../src/domain/segment-jobs/segment-job.js';

const NOW = Date.parse('2026-11-28T00:00:00Z');
const PROFILES = 3000;
const CHANGE = 'loyalty.points >= 40 and loyalty.points < 90';
// Profile i has i % 100 points: 40–49 join, 90–99 leave, 50–89 stay.
const TRUTH = { wouldJoin: 300, wouldLeave: 300, wouldStay: 1200 } as const;
const SIDES = ['wouldJoin', 'wouldLeave', 'wouldStay'] as const;

/** 3,000 profiles and "Fifty plus" (points >= 50) with its members written by a segment job. */
async function store() {
  const conn = openDatabase(':memory:');
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  ingestProfiles(
    conn,
    sandboxId,
    Array.from({ length: PROFILES }, (_, i) => ({
      identities: [{ namespace: 'crmId', id: `c${i}` }],
      attributes: { loyalty: { points: i % 100 } },
    })),
  );
  const def = await createSegmentDefinition(conn, sandboxId, {
    name: 'Fifty plus',
    expression: { format: 'PQL_TEXT', value: 'loyalty.points >= 50' },
    lifecycleState: 'PUBLISHED',
  });
  const segment = await insertJob(conn, sandboxId, 'SEGMENT', {
    definitionIds: [def.id],
    all: false,
    at: NOW,
    now: NOW,
  });
  await updateJob(conn, segment.id, { status: 'PROCESSING', startedAt: Date.now() });
  const plan = await orderedPlan(conn, sandboxId, [def], { jobId: segment.id, now: NOW, chunkSize: 1000, notes: [] });
  runJobTask(conn, segment.id, evaluateSegmentPlan, plan, { progress: () => {}, cancelled: () => false });
  return { conn, sandboxId, def };
}

async function dryRun({ conn, sandboxId, def }: Awaited<ReturnType<typeof store>>, seed: number) {
  const job = (await insertJob(conn, sandboxId, 'DEFINITION_CHANGE_PREVIEW', {
    definitionId: def.id,
    audienceId: def.audienceId,
    expression: { format: 'PQL_TEXT', value: CHANGE },
    expressionText: CHANGE,
    evaluationInfo: def.evaluationInfo,
    evaluationWarnings: [],
    at: NOW,
    seed,
  })) as DefinitionChangePreview;
  await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
  const reports: DefinitionChangeProgress[] = [];
  const result = runJobTask(conn, job.id, definitionChangeTask, await definitionChangePlan(conn, job, NOW), {
    progress: (p) => reports.push(p),
    cancelled: () => false,
  });
  return { result, running: reports.filter((r) => !r.wouldJoin.exact) };
}

describe('the dry run task', () => {
  let s: Awaited<ReturnType<typeof store>>;
  beforeAll(async () => {
    s = await store();
  });

  it('reads fixed pages, so the running estimates at each count read are a function of the seed', async () => {
    const a = await dryRun(s, 11);
    const b = await dryRun(s, 11);
    const c = await dryRun(s, 12);
    // Pages of 1,000, then 2,000: the last running report has read the whole store.
    expect(a.running.map((r) => r.done)).toEqual([1000, PROFILES]);
    expect(b.running).toEqual(a.running);
    expect(c.running.map((r) => r.done)).toEqual([1000, PROFILES]);
    expect(c.running[0]).not.toEqual(a.running[0]);
    // With the whole store read, the running interval has closed on the count.
    for (const side of SIDES) {
      expect(a.running[1]![side]).toEqual({ value: TRUTH[side], low: TRUTH[side], high: TRUTH[side], exact: false });
      expect(a.result[side]).toEqual({ value: TRUTH[side], low: TRUTH[side], high: TRUTH[side], exact: true });
    }
  });

  it('has 95 % running intervals that cover the truth in at least 90 % of checkpoints over 40 seeds', async () => {
    // One informative checkpoint per seed (1,000 of 3,000 read; at 3,000 the interval has
    // closed), three intervals each: of 120 (seed, side) pairs ~Binomial(120, 0.95) cover, mean
    // 114, sd 2.4, and at least 108 (90 %) with probability > 0.99; the sides of one seed are
    // slightly dependent, which barely widens that. Fixed seeds: the same count on every run.
    let pairs = 0;
    let covered = 0;
    for (let seed = 1; seed <= 40; seed++) {
      for (const r of (await dryRun(s, seed)).running) {
        if (r.done >= PROFILES) continue;
        for (const side of SIDES) {
          pairs++;
          if (r[side].low <= TRUTH[side] && TRUTH[side] <= r[side].high) covered++;
        }
      }
    }
    expect(pairs).toBe(120);
    expect(covered).toBeGreaterThanOrEqual(108);
  });
});
