import type { Connection } from '../../db/index.js';
import { compilePredicate, compileToSql } from '../../pql/index.js';
import { checkExpressionSync } from '../expressions.js';
import { Cancelled } from '../jobs/cancelled.js';
import type { JobTask } from '../jobs/task.js';
import { defaultSampleSize } from './estimate.js';
import { exactIsCheap, type NamespaceRow, PreviewCounter, type PreviewProgress } from './preview-run.js';
import { openSampler, type Sampler } from './preview-samplers.js';

export interface PreviewPlan {
  jobId: number;
  sandboxId: number;
  now: number;
  expressionText: string;
  /** Requested sample size; null for the default rule. */
  sampleSize: number | null;
  confidenceLevel: number;
  seed: number;
}

export type { PreviewProgress } from './preview-run.js';

/**
 * The job-worker task of a preview. Inside one read snapshot: walk a seeded random
 * permutation of the sandbox's profiles in chunks (preview-samplers.ts), evaluate the compiled
 * expression on each chunk, and report the running estimate
 * after each. When the sample is the whole store, random-order reading stops once the interval
 * is tight and one sequential scan (as fast as a batch query) gives the exact count; otherwise
 * the whole sample is read in random order. Then, in the job's finishing transaction, the
 * qualifying profiles are stored. The preview kind's task, which the job worker runs.
 */
export const runPreviewTask: JobTask<'PREVIEW', PreviewPlan> = (conn, plan, ctx) => {
  const { sqlite } = conn;
  const { checked } = checkExpressionSync(conn, plan.sandboxId, { format: 'PQL_TEXT', value: plan.expressionText });
  // Random chunks use the correlated form (work per sampled profile); the final scan the sandbox-wide
  // statement, whose event conditions are one pass over the sandbox's events.
  const predicate = compilePredicate(checked, { now: plan.now });
  let counter: PreviewCounter;
  sqlite.exec('BEGIN');
  let sampler: Sampler | undefined;
  try {
    sampler = openSampler(conn, plan.sandboxId, plan.seed, predicate);
    const { population } = sampler;
    // Hits first, then a seek per hit on the (profile_id, namespace) index; never a scan of identities.
    const namespacesOf = sqlite.prepare(
      `SELECT i.namespace AS namespace, count(DISTINCT j.value) AS c FROM json_each(?) AS j
       CROSS JOIN main.identities AS i ON i.profile_id = j.value GROUP BY i.namespace`,
    );
    const countNamespaces = (ids: readonly number[]) =>
      ids.length > 0 ? (namespacesOf.all(JSON.stringify(ids)) as NamespaceRow[]) : [];
    const scan =
      defaultSampleSize(population, plan.sampleSize) === population
        ? compileToSql(checked, {
            now: plan.now,
            sandboxId: plan.sandboxId,
            where: [{ sql: 'p.id % 20000 != 0 OR segql_tick(p.id)', params: [] }],
          })
        : undefined;
    const cheap =
      scan?.startsFromAudiences !== undefined &&
      exactIsCheap(scan.startsFromAudiences, membersOf(conn, [...checked.audiences.values()]));
    counter = new PreviewCounter(plan, population, cheap);
    const { n } = counter;
    for (let size = counter.nextChunk(); size > 0; size = counter.nextChunk()) {
      if (ctx.cancelled()) throw new Cancelled();
      const { read, hits } = sampler.next(size);
      ctx.progress(counter.addChunk(read, hits, countNamespaces(hits)));
    }
    if (scan) {
      // The whole store in one statement; segql_tick reports progress (the random-order estimate
      // stays the running one) and aborts on cancel.
      const runningEstimate = counter.estimate;
      const readBefore = counter.counts.read;
      const { lo, hi } = sampler;
      // A statement that starts from a set of ids may meet them out of order: progress never goes back.
      let done = readBefore;
      sqlite.function('segql_tick', { deterministic: false }, (id: unknown) => {
        if (ctx.cancelled()) throw new Cancelled();
        const scanned = ((id as number) - lo) / Math.max(1, hi - lo + 1);
        done = Math.max(done, Math.min(n, readBefore + Math.round(scanned * (n - readBefore))));
        ctx.progress({ done, total: n, estimate: runningEstimate } satisfies PreviewProgress);
        return 1;
      });
      const qualifying = sqlite
        .prepare(scan.sql)
        .pluck()
        .all(...scan.params) as number[];
      const sample = counter.scanSample(qualifying);
      counter.addScan(sample.length, countNamespaces(sample));
    }
    // Subscribers get the full-sample estimate now; storing the qualifying profiles comes after.
    ctx.progress(counter.final());
  } finally {
    sampler?.close();
    sqlite.exec('COMMIT');
  }
  ctx.finish(() => {
    const { bytes, count } = counter.packedResults();
    sqlite
      .prepare('INSERT OR REPLACE INTO preview_results (job_id, sandbox_id, profile_ids, count) VALUES (?, ?, ?, ?)')
      .run(plan.jobId, plan.sandboxId, bytes, count);
    return counter.result();
  });
};
export default runPreviewTask;

/** Current members of the audiences, by their cached sizes. */
function membersOf(conn: Connection, audienceIds: readonly number[]): number {
  if (audienceIds.length === 0) return 0;
  return conn.sqlite
    .prepare('SELECT coalesce(sum(size), 0) FROM main.audiences WHERE id IN (SELECT value FROM json_each(?))')
    .pluck()
    .get(JSON.stringify(audienceIds)) as number;
}
