import type { Connection } from '../../db/index.js';
import { compilePredicate, compileWhereCondition } from '../../pql/to-sql.js';
import { checkExpression } from '../expressions.js';
import { TaskCancelled, type TaskHooks } from '../jobs/task.js';
import { defaultSampleSize, type Estimate, estimateFromSample, type SampleCounts } from './estimate.js';
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

export interface PreviewProgress {
  done: number;
  total: number;
  estimate: Estimate;
}

/** Random-order reading stops once the interval is this tight (a share of the population) when a full scan follows. */
const TIGHT_ENOUGH = 0.01;

/**
 * The job-worker task of a preview. Inside one read snapshot: walk a seeded random
 * permutation of the sandbox's profiles in chunks (preview-samplers.ts), evaluate the compiled
 * expression on each chunk, and report the running estimate
 * after each. When the sample is the whole store, random-order reading stops once the interval
 * is tight and one sequential scan (as fast as a batch query) gives the exact count; otherwise
 * the whole sample is read in random order. Then, in one write transaction, the qualifying
 * profiles are stored and the job finishes.
 */
export function runPreviewTask(conn: Connection, plan: PreviewPlan, hooks: TaskHooks): Estimate {
  const { sqlite } = conn;
  const { checked } = checkExpression(conn, plan.sandboxId, { format: 'PQL_TEXT', value: plan.expressionText });
  // Random chunks use the correlated form (work per sampled profile); the final scan uses the WHERE
  // form whose event conditions are one pass over the sandbox's events.
  const predicate = compilePredicate(checked, { now: plan.now });
  const scanCondition = compileWhereCondition(checked, { now: plan.now, sandboxId: plan.sandboxId });
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
    // Small chunks first, so a running estimate arrives within moments; larger ones amortise the per-chunk work.
    let chunk = 2_000;
    estimate = estimateFromSample(counts, plan.confidenceLevel, false);
    const tight = () =>
      estimate.confidenceInterval.high - estimate.confidenceInterval.low <= 2 * TIGHT_ENOUGH * population;
    while (counts.read < n && !(wholeStore && counts.read > 0 && tight())) {
      if (hooks.cancelled()) throw new TaskCancelled();
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
      hooks.progress({ done: counts.read, total: n, estimate } satisfies PreviewProgress);
      chunk = Math.min(chunk * 2, 50_000);
    }
    if (wholeStore) {
      // The rest of the store in id order, in one statement; segql_tick reports progress (the
      // random-order estimate stays the running one) and aborts on cancel.
      const runningEstimate = estimate;
      const readBefore = counts.read;
      const { lo, hi } = sampler;
      sqlite.function('segql_tick', { deterministic: false }, (id: unknown) => {
        if (hooks.cancelled()) throw new TaskCancelled();
        const scanned = ((id as number) - lo) / Math.max(1, hi - lo + 1);
        const done = Math.min(n, readBefore + Math.round(scanned * (n - readBefore)));
        hooks.progress({ done, total: n, estimate: runningEstimate } satisfies PreviewProgress);
        return 1;
      });
      qualifying = sqlite
        .prepare(
          `SELECT p.id FROM main.profiles AS p
           WHERE p.sandbox_id = ? AND (p.id % 20000 != 0 OR segql_tick(p.id)) AND (${scanCondition.sql})`,
        )
        .pluck()
        .all(plan.sandboxId, ...scanCondition.params) as number[];
      // The namespace distribution stays an estimate (as its name says): the random part's shares applied
      // to the exact count. Counting it exactly costs an index seek per hit, as much as the scan itself.
      // Only when the random part found no hit to take shares from is it counted.
      const sampled = counts.qualified;
      const namespaces =
        sampled > 0
          ? Object.entries(counts.namespaces).map(([namespace, c]) => ({
              namespace,
              c: Math.round((c / sampled) * qualifying.length),
            }))
          : qualifying.length > 0
            ? (namespacesOf.all(JSON.stringify(qualifying)) as { namespace: string; c: number }[])
            : [];
      counts.read = population;
      counts.qualified = qualifying.length;
      counts.namespaces = Object.fromEntries(namespaces.map((r) => [r.namespace, r.c]));
    }
    estimate = estimateFromSample(counts, plan.confidenceLevel, true);
  } finally {
    sampler?.close();
    sqlite.exec('COMMIT');
  }
  if (hooks.cancelled()) throw new TaskCancelled();
  sqlite
    .transaction(() => {
      const status = sqlite.prepare('SELECT status FROM jobs WHERE id = ?').pluck().get(plan.jobId);
      if (status !== 'PROCESSING') throw new TaskCancelled();
      const sorted = Float64Array.from(qualifying).sort();
      sqlite
        .prepare('INSERT OR REPLACE INTO preview_results (job_id, sandbox_id, profile_ids, count) VALUES (?, ?, ?, ?)')
        .run(
          plan.jobId,
          plan.sandboxId,
          Buffer.from(sorted.buffer, sorted.byteOffset, sorted.byteLength),
          sorted.length,
        );
      const now = Date.now();
      sqlite
        .prepare(
          "UPDATE jobs SET status = 'SUCCEEDED', result = ?, finished_at = ?, updated_at = ?, progress_done = ?, progress_total = ? WHERE id = ?",
        )
        .run(
          JSON.stringify({ estimate, sampleSize: estimate.profilesRead }),
          now,
          now,
          estimate.profilesRead,
          estimate.profilesRead,
          plan.jobId,
        );
    })
    .immediate();
  return estimate;
}
