import type { Statement } from 'better-sqlite3';
import { cacheKey } from '../../db/connection-cache.js';
import type { Connection } from '../../db/index.js';
import { modelColumns } from '../../db/rows-by-ids.js';
import { jobs } from '../../db/schema.js';
import type { SegmentJob } from './segment-job.js';

interface LatestJobs {
  statement: Statement<[number, string]>;
  toModel(rows: unknown[][]): (typeof jobs.$inferSelect)[];
}
const LATEST_JOBS = cacheKey<LatestJobs>('latest segment job per definition');

/**
 * For each definition, the newest segment job asked to evaluate it: by id, or with `all: true`
 * made after the definition while it is batch-enabled. One statement for any number of
 * definitions, job rows included (a page of definitions with their latest jobs is one of the
 * `api` bench's four statements); each definition walks the sandbox's segment jobs newest first
 * and stops at the first match. Each job comes once, with the definitions it is latest for: one
 * `all: true` job is usually the latest of a whole page, and reading (and parsing the JSON of)
 * its row once per definition cost more than the rest of the page.
 */
export async function latestSegmentJobs(
  conn: Connection,
  sandboxId: number,
  definitionIds: readonly number[],
): Promise<Map<number, SegmentJob>> {
  const out = new Map<number, SegmentJob>();
  if (definitionIds.length === 0) return out;
  const { statement, toModel } = conn.cache.get(LATEST_JOBS, () => {
    const { list, toModel } = modelColumns(jobs, 'job');
    const statement = conn.sqlite
      .prepare(
        `SELECT ${list}, json_group_array(latest.definitionId) FROM (
           SELECT d.id AS definitionId,
             (SELECT j.id FROM jobs j
               WHERE j.sandbox_id = d.sandbox_id AND j.kind = 'SEGMENT'
                 AND (EXISTS (SELECT 1 FROM json_each(j.input, '$.definitionIds') x WHERE x.value = d.id)
                   OR (d.eval_batch = 1 AND json_extract(j.input, '$.all') = 1 AND j.created_at >= d.created_at))
               ORDER BY j.id DESC LIMIT 1) AS jobId
           FROM segment_definitions d
           WHERE d.sandbox_id = ? AND d.id IN (SELECT value FROM json_each(?))
         ) latest
         JOIN jobs job ON job.id = latest.jobId
         GROUP BY job.id`,
      )
      .raw() as Statement<[number, string]>;
    return { statement, toModel };
  });
  const rows = statement.all(sandboxId, JSON.stringify(definitionIds)) as unknown[][];
  const models = toModel(rows);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    for (const definitionId of JSON.parse(row[row.length - 1] as string) as number[])
      out.set(definitionId, models[i] as SegmentJob);
  }
  return out;
}
