import type { Statement } from 'better-sqlite3';
import { cacheKey } from '../../db/connection-cache.js';
import type { Connection } from '../../db/index.js';

const LATEST_JOBS = cacheKey<Statement<[number, string]>>('latest segment job per definition');

/**
 * For each definition, the id of the newest segment job asked to evaluate it: by id, or with
 * `all: true` made after the definition while it is batch-enabled. One statement for any number
 * of definitions; each walks the sandbox's segment jobs newest first and stops at the first match.
 */
export function latestSegmentJobIds(
  conn: Connection,
  sandboxId: number,
  definitionIds: readonly number[],
): Map<number, number> {
  const out = new Map<number, number>();
  if (definitionIds.length === 0) return out;
  const statement = conn.cache.get(LATEST_JOBS, () =>
    conn.sqlite.prepare(
      `SELECT d.id AS definitionId,
         (SELECT j.id FROM jobs j
           WHERE j.sandbox_id = d.sandbox_id AND j.kind = 'SEGMENT'
             AND (EXISTS (SELECT 1 FROM json_each(j.input, '$.definitionIds') x WHERE x.value = d.id)
               OR (d.eval_batch = 1 AND json_extract(j.input, '$.all') = 1 AND j.created_at >= d.created_at))
           ORDER BY j.id DESC LIMIT 1) AS jobId
       FROM segment_definitions d
       WHERE d.sandbox_id = ? AND d.id IN (SELECT value FROM json_each(?))`,
    ),
  );
  const rows = statement.all(sandboxId, JSON.stringify(definitionIds)) as {
    definitionId: number;
    jobId: number | null;
  }[];
  for (const r of rows) if (r.jobId !== null) out.set(r.definitionId, r.jobId);
  return out;
}
