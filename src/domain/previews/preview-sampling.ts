import type { Connection } from '../../db/index.js';
import { compileWhereCondition } from '../../pql/to-sql.js';
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

/**
 * The job-worker task of a preview. Inside one read snapshot: number the sandbox's profiles
 * (a temp table of ids, not the documents), walk a seeded permutation of those numbers in
 * chunks, evaluate the compiled expression on each chunk, and report the running estimate
 * after each. Then, in one write transaction, store the qualifying profiles and finish.
 */
export function runPreviewTask(conn: Connection, plan: PreviewPlan, hooks: TaskHooks): Estimate {
  const { sqlite } = conn;
  const { checked } = checkExpression(conn, plan.sandboxId, { format: 'PQL_TEXT', value: plan.expressionText });
  const predicate = compileWhereCondition(checked, { now: plan.now, sandboxId: plan.sandboxId });
  const qualifying: number[] = [];
  let estimate: Estimate;
  sqlite.exec('DROP TABLE IF EXISTS temp.sample_ids');
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
      const evaluateChunk = sqlite
        .prepare(
          `SELECT p.id FROM temp.sample_ids AS s JOIN main.profiles AS p ON p.id = s.id
           WHERE s.n IN (SELECT value FROM json_each(?)) AND (${predicate.sql})`,
        )
        .pluck();
      const namespacesOf = sqlite.prepare(
        `SELECT namespace, count(DISTINCT profile_id) AS c FROM main.identities
         WHERE profile_id IN (SELECT value FROM json_each(?)) GROUP BY namespace`,
      );
      const counts: SampleCounts = { read: 0, qualified: 0, population, namespaces: {} };
      const position = permutation(Math.max(1, population), plan.seed);
      // Small chunks first, so a running estimate arrives within moments; larger ones amortise the per-chunk work.
      let chunk = 2_000;
      estimate = estimateFromSample(counts, plan.confidenceLevel, false);
      while (counts.read < n) {
        if (hooks.cancelled()) throw new TaskCancelled();
        const size = Math.min(chunk, n - counts.read);
        const positions = new Array<number>(size);
        for (let i = 0; i < size; i++) positions[i] = position(counts.read + i);
        const ids = evaluateChunk.all(JSON.stringify(positions), ...predicate.params) as number[];
        for (const id of ids) qualifying.push(id);
        if (ids.length > 0) {
          for (const row of namespacesOf.all(JSON.stringify(ids)) as { namespace: string; c: number }[]) {
            counts.namespaces[row.namespace] = (counts.namespaces[row.namespace] ?? 0) + row.c;
          }
        }
        counts.read += size;
        counts.qualified += ids.length;
        estimate = estimateFromSample(counts, plan.confidenceLevel, false);
        hooks.progress({ done: counts.read, total: n, estimate } satisfies PreviewProgress);
        chunk = Math.min(chunk * 2, 50_000);
      }
      estimate = estimateFromSample(counts, plan.confidenceLevel, true);
    } finally {
      sqlite.exec('COMMIT');
    }
  } finally {
    sqlite.exec('DROP TABLE IF EXISTS temp.sample_ids');
  }
  if (hooks.cancelled()) throw new TaskCancelled();
  sqlite
    .transaction(() => {
      const status = sqlite.prepare('SELECT status FROM jobs WHERE id = ?').pluck().get(plan.jobId);
      if (status !== 'PROCESSING') throw new TaskCancelled();
      const insert = sqlite.prepare(
        'INSERT OR IGNORE INTO preview_results (sandbox_id, job_id, profile_id) VALUES (?, ?, ?)',
      );
      for (const id of qualifying) insert.run(plan.sandboxId, plan.jobId, id);
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
