import type { Connection } from '../../db/index.js';
import { compilePredicate, compileWhereCondition } from '../../pql/to-sql.js';
import { checkExpression } from '../expressions.js';
import { TaskCancelled, type TaskHooks } from '../jobs/task.js';
import { defaultSampleSize, type Estimate, estimateFromSample, type SampleCounts } from './estimate.js';

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
 * A keyed pseudo-random permutation of [0, size): a 4-round Feistel network over the next
 * power of two, cycle-walking values that fall outside. The first n positions of a random
 * permutation are a uniform sample without replacement, read in random order.
 */
export function permutation(size: number, seed: number): (i: number) => number {
  let bits = 2;
  while (2 ** bits < size) bits++;
  if (bits % 2 === 1) bits++;
  const half = bits / 2;
  const mask = 2 ** half - 1;
  const keys = [0, 1, 2, 3].map((r) => mix32(seed ^ Math.imul(r + 1, 0x9e3779b9)));
  const round = (x: number, r: number) => mix32(x ^ keys[r]!) & mask;
  const encrypt = (v: number) => {
    let left = Math.floor(v / 2 ** half);
    let right = v % 2 ** half;
    for (let r = 0; r < 4; r++) {
      const next = left ^ round(right, r);
      left = right;
      right = next;
    }
    return left * 2 ** half + right;
  };
  return (i) => {
    let v = encrypt(i);
    while (v >= size) v = encrypt(v);
    return v;
  };
}

/** A 32-bit integer hash (murmur3's finaliser). */
function mix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Random-order reading stops once the interval is this tight (a share of the population) when a full scan follows. */
const TIGHT_ENOUGH = 0.005;

/**
 * The job-worker task of a preview. Inside one read snapshot: number the sandbox's profiles
 * (a temp table of ids, not the documents), walk a seeded permutation of those numbers in
 * chunks, evaluate the compiled expression on each chunk, and report the running estimate
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
  sqlite.exec('DROP TABLE IF EXISTS temp.sample_ids; DROP TABLE IF EXISTS temp.preview_hits');
  sqlite.exec('CREATE TEMP TABLE preview_hits (id INTEGER PRIMARY KEY)');
  try {
    sqlite.exec('BEGIN');
    try {
      sqlite.exec('CREATE TEMP TABLE sample_ids (n INTEGER PRIMARY KEY, id INTEGER NOT NULL)');
      sqlite
        .prepare(
          'INSERT INTO temp.sample_ids (n, id) SELECT row_number() OVER (ORDER BY id) - 1, id FROM main.profiles WHERE sandbox_id = ?',
        )
        .run(plan.sandboxId);
      const population = sqlite.prepare('SELECT count(*) FROM temp.sample_ids').pluck().get() as number;
      const n = defaultSampleSize(population, plan.sampleSize);
      const wholeStore = n === population;
      const evaluateChunk = sqlite
        .prepare(
          `SELECT p.id FROM temp.sample_ids AS s JOIN main.profiles AS p ON p.id = s.id
           WHERE s.n IN (SELECT value FROM json_each(?)) AND (${predicate.sql})`,
        )
        .pluck();
      const keep = sqlite.prepare('INSERT OR IGNORE INTO temp.preview_hits (id) SELECT value FROM json_each(?)');
      const namespacesOf = sqlite.prepare(
        `SELECT namespace, count(DISTINCT profile_id) AS c FROM main.identities
         WHERE profile_id IN (SELECT value FROM json_each(?)) GROUP BY namespace`,
      );
      const counts: SampleCounts = { read: 0, qualified: 0, population, namespaces: {} };
      const position = permutation(Math.max(1, population), plan.seed);
      // Small chunks first, so a running estimate arrives within moments; larger ones amortise the per-chunk work.
      let chunk = 2_000;
      estimate = estimateFromSample(counts, plan.confidenceLevel, false);
      const tight = () =>
        estimate.confidenceInterval.high - estimate.confidenceInterval.low <= 2 * TIGHT_ENOUGH * population;
      while (counts.read < n && !(wholeStore && counts.read > 0 && tight())) {
        if (hooks.cancelled()) throw new TaskCancelled();
        const size = Math.min(chunk, n - counts.read);
        const positions = new Array<number>(size);
        for (let i = 0; i < size; i++) positions[i] = position(counts.read + i);
        const ids = evaluateChunk.all(JSON.stringify(positions), ...predicate.params) as number[];
        if (ids.length > 0) {
          const list = JSON.stringify(ids);
          if (!wholeStore) keep.run(list);
          for (const row of namespacesOf.all(list) as { namespace: string; c: number }[]) {
            counts.namespaces[row.namespace] = (counts.namespaces[row.namespace] ?? 0) + row.c;
          }
        }
        counts.read += size;
        counts.qualified += ids.length;
        estimate = estimateFromSample(counts, plan.confidenceLevel, false);
        hooks.progress({ done: counts.read, total: n, estimate } satisfies PreviewProgress);
        chunk = Math.min(chunk * 2, 50_000);
      }
      if (wholeStore) {
        // The rest of the store in id order, in one statement; segql_tick reports progress (the
        // random-order estimate stays the running one) and aborts on cancel.
        const runningEstimate = estimate;
        const readBefore = counts.read;
        const { lo, hi } = sqlite.prepare('SELECT min(id) AS lo, max(id) AS hi FROM temp.sample_ids').get() as {
          lo: number;
          hi: number;
        };
        sqlite.function('segql_tick', { deterministic: false }, (id: unknown) => {
          if (hooks.cancelled()) throw new TaskCancelled();
          const scanned = ((id as number) - lo) / Math.max(1, hi - lo + 1);
          const done = Math.min(n, readBefore + Math.round(scanned * (n - readBefore)));
          hooks.progress({ done, total: n, estimate: runningEstimate } satisfies PreviewProgress);
          return 1;
        });
        sqlite
          .prepare(
            `INSERT INTO temp.preview_hits (id) SELECT p.id FROM main.profiles AS p
             WHERE p.sandbox_id = ? AND (p.id % 20000 != 0 OR segql_tick(p.id)) AND (${scanCondition.sql})`,
          )
          .run(plan.sandboxId, ...scanCondition.params);
        const namespaces = sqlite
          .prepare(
            `SELECT i.namespace AS namespace, count(DISTINCT h.id) AS c FROM temp.preview_hits h
             JOIN main.identities i ON i.profile_id = h.id GROUP BY i.namespace`,
          )
          .all() as { namespace: string; c: number }[];
        counts.read = population;
        counts.qualified = sqlite.prepare('SELECT count(*) FROM temp.preview_hits').pluck().get() as number;
        counts.namespaces = Object.fromEntries(namespaces.map((r) => [r.namespace, r.c]));
      }
      estimate = estimateFromSample(counts, plan.confidenceLevel, true);
    } finally {
      sqlite.exec('COMMIT');
    }
    if (hooks.cancelled()) throw new TaskCancelled();
    sqlite
      .transaction(() => {
        const status = sqlite.prepare('SELECT status FROM jobs WHERE id = ?').pluck().get(plan.jobId);
        if (status !== 'PROCESSING') throw new TaskCancelled();
        sqlite
          .prepare(
            'INSERT OR IGNORE INTO preview_results (sandbox_id, job_id, profile_id) SELECT ?, ?, id FROM temp.preview_hits',
          )
          .run(plan.sandboxId, plan.jobId);
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
  } finally {
    sqlite.exec('DROP TABLE IF EXISTS temp.sample_ids; DROP TABLE IF EXISTS temp.preview_hits');
  }
  return estimate;
}
