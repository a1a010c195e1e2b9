import type { Connection } from '../../db/index.js';
import { compilePredicate, compileToSql } from '../../pql/index.js';
import { checkExpressionSync } from '../expressions.js';
import { Cancelled } from '../jobs/cancelled.js';
import type { JobTask } from '../jobs/task.js';
import { defaultSampleSize, type Estimate, estimateFromSample, type SampleCounts, sampleSizeFor } from './estimate.js';
import { openSampler, permutation, type Sampler } from './preview-samplers.js';

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

export interface PreviewProgress {
  done: number;
  total: number;
  estimate: Estimate;
}

/**
 * When a full scan follows (the sample is the whole store), random-order reading stops once the
 * interval's half-width is this share of the population (docs/performance.md's running estimate).
 */
const TIGHT_ENOUGH = 0.02;
/** The first random chunk: a running estimate within moments. */
const FIRST_CHUNK = 1_000;
/** The only random chunk before a cheap exact count (`exactIsCheap`). */
const ROUGH_CHUNK = 250;
const MAX_CHUNK = 50_000;
/** See `exactIsCheap`: about a quarter of a second of index reads and probes. */
const CHEAP_MEMBERS = 1_000_000;
/** Qualifying profiles whose identities a whole-store preview reads for its namespace distribution. */
const NAMESPACE_SAMPLE = 1_000;

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
  let estimate: Estimate;
  let qualifying: number[] = [];
  sqlite.exec('BEGIN');
  let sampler: Sampler | undefined;
  try {
    sampler = openSampler(conn, plan.sandboxId, plan.seed, predicate);
    const { population } = sampler;
    const n = defaultSampleSize(population, plan.sampleSize);
    const wholeStore = n === population;
    // Hits first, then a seek per hit on the (profile_id, namespace) index; never a scan of identities.
    const namespacesOf = sqlite.prepare(
      `SELECT i.namespace AS namespace, count(DISTINCT j.value) AS c FROM json_each(?) AS j
       CROSS JOIN main.identities AS i ON i.profile_id = j.value GROUP BY i.namespace`,
    );
    const counts: SampleCounts = { read: 0, qualified: 0, population, namespaces: {} };
    estimate = estimateFromSample(counts, plan.confidenceLevel, false);
    const tight = () =>
      estimate.confidenceInterval.high - estimate.confidenceInterval.low <= 2 * TIGHT_ENOUGH * population;
    const scan = wholeStore
      ? compileToSql(checked, {
          now: plan.now,
          sandboxId: plan.sandboxId,
          where: [{ sql: 'p.id % 20000 != 0 OR segql_tick(p.id)', params: [] }],
        })
      : undefined;
    // A statement that starts from stored audiences reads at most their members (a probe each per
    // filter): when that is little, the exact count comes sooner than a ±2 % sample would, so one
    // small random chunk gives a first, rough estimate and the scan follows.
    const exactIsCheap =
      scan?.startsFromAudiences !== undefined &&
      membersOf(conn, [...checked.audiences.values()]) * (1 + scan.startsFromAudiences.filters) <= CHEAP_MEMBERS;
    let chunk = exactIsCheap ? ROUGH_CHUNK : FIRST_CHUNK;
    const enough = () => counts.read > 0 && (exactIsCheap || tight());
    while (counts.read < n && !(wholeStore && enough())) {
      if (ctx.cancelled()) throw new Cancelled();
      const { read, hits } = sampler.next(Math.min(chunk, n - counts.read));
      if (read === 0) break;
      if (hits.length > 0) {
        const list = JSON.stringify(hits);
        if (!wholeStore) for (const id of hits) qualifying.push(id);
        for (const row of namespacesOf.all(list) as { namespace: string; c: number }[]) {
          counts.namespaces[row.namespace] = (counts.namespaces[row.namespace] ?? 0) + row.c;
        }
      }
      counts.read += read;
      counts.qualified += hits.length;
      estimate = estimateFromSample(counts, plan.confidenceLevel, false);
      ctx.progress({ done: counts.read, total: n, estimate } satisfies PreviewProgress);
      if (wholeStore) {
        // Only as much more as the share seen so far says the interval needs (a tenth over,
        // the share nudged towards 1/2 so a first chunk without hits does not stop it short).
        const share = (counts.qualified + 2) / (counts.read + 4);
        const needed = sampleSizeFor(share, TIGHT_ENOUGH, plan.confidenceLevel) * 1.1;
        chunk = Math.min(MAX_CHUNK, Math.max(FIRST_CHUNK / 2, Math.ceil(needed - counts.read)));
      } else {
        // Larger chunks amortise the per-chunk work.
        chunk = Math.min(chunk * 2, MAX_CHUNK);
      }
    }
    if (scan) {
      // The whole store in one statement; segql_tick reports progress (the random-order estimate
      // stays the running one) and aborts on cancel.
      const runningEstimate = estimate;
      const readBefore = counts.read;
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
      qualifying = sqlite
        .prepare(scan.sql)
        .pluck()
        .all(...scan.params) as number[];
      // The namespace distribution stays an estimate (as its name says), from a seeded uniform
      // sample of the qualifying profiles: counting every one costs an index seek per hit, as much
      // as the scan itself.
      const sample = sampleOf(qualifying, NAMESPACE_SAMPLE, plan.seed);
      const scale = sample.length > 0 ? qualifying.length / sample.length : 0;
      counts.namespaces = {};
      if (sample.length > 0) {
        for (const row of namespacesOf.all(JSON.stringify(sample)) as { namespace: string; c: number }[]) {
          counts.namespaces[row.namespace] = Math.round(row.c * scale);
        }
      }
      counts.read = population;
      counts.qualified = qualifying.length;
    }
    estimate = estimateFromSample(counts, plan.confidenceLevel, true);
    // Subscribers get the full-sample estimate now; storing the qualifying profiles comes after.
    ctx.progress({ done: n, total: n, estimate } satisfies PreviewProgress);
  } finally {
    sampler?.close();
    sqlite.exec('COMMIT');
  }
  ctx.finish(() => {
    const sorted = Float64Array.from(qualifying);
    // The scan's ids come in order; random chunks' do not.
    if (!ascending(sorted)) sorted.sort();
    sqlite
      .prepare('INSERT OR REPLACE INTO preview_results (job_id, sandbox_id, profile_ids, count) VALUES (?, ?, ?, ?)')
      .run(plan.jobId, plan.sandboxId, Buffer.from(sorted.buffer, sorted.byteOffset, sorted.byteLength), sorted.length);
    return { result: { estimate, sampleSize: estimate.profilesRead }, units: estimate.profilesRead };
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

/** Up to `size` of the ids, a seeded uniform sample without replacement (all of them when there are fewer). */
function sampleOf(ids: readonly number[], size: number, seed: number): number[] {
  if (ids.length <= size) return [...ids];
  const position = permutation(ids.length, seed);
  // In id order: the identity index is then read front to back.
  return Array.from({ length: size }, (_, i) => ids[position(i)]!).sort((a, b) => a - b);
}

function ascending(ids: Float64Array): boolean {
  for (let i = 1; i < ids.length; i++) if (ids[i]! < ids[i - 1]!) return false;
  return true;
}
