import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import type { SegmentJob } from './segment-job.js';

/** Every column of `jobs` through the alias `job`, named as the model; `input` and `result` are JSON text. */
const jobColumns = (input: string, result: string) =>
  `job.id, job.sandbox_id AS "sandboxId", job.kind, job.status, job.progress_done AS "progressDone",
   job.progress_total AS "progressTotal", ${input} AS input, ${result} AS result, job.error, job."trigger",
   job.schedule_id AS "scheduleId", job.after_job_id AS "afterJobId", job.attempts,
   job.lease_owner AS "leaseOwner", job.lease_until AS "leaseUntil", job.created_at AS "createdAt",
   job.started_at AS "startedAt", job.finished_at AS "finishedAt", job.updated_at AS "updatedAt"`;

const q = statements('latest-jobs', {
  /**
   * The latest segment job of each definition of the JSON array, each job once with the definitions (JSON text):
   * one seek per definition on the key of segment_job_definitions, which holds only segment jobs of
   * the definition's sandbox. `+d.sandbox_id`: see audiences' byIds (src/domain/audiences.ts).
   */
  latest: {
    sqlite: `SELECT ${jobColumns('job.input', 'job.result')}, json_group_array(latest.definitionId) AS "definitionIds" FROM (
        SELECT d.id AS definitionId,
          (SELECT s.job_id FROM segment_job_definitions s WHERE s.definition_id = d.id
            ORDER BY s.job_id DESC LIMIT 1) AS jobId
        FROM segment_definitions d
        WHERE +d.sandbox_id = ? AND d.id IN (SELECT value FROM json_each(?))
      ) latest
      JOIN jobs job ON job.id = latest.jobId
      GROUP BY job.id`,
    postgres: `SELECT ${jobColumns('CAST(job.input AS text)', 'CAST(job.result AS text)')},
        CAST(json_agg(latest."definitionId") AS text) AS "definitionIds" FROM (
        SELECT d.id AS "definitionId",
          (SELECT s.job_id FROM segment_job_definitions s WHERE s.definition_id = d.id
            ORDER BY s.job_id DESC LIMIT 1) AS "jobId"
        FROM segment_definitions d
        WHERE d.sandbox_id = $1
          AND d.id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))
      ) latest
      JOIN jobs job ON job.id = latest."jobId"
      GROUP BY job.id`,
  },
});

type LatestRow = Omit<SegmentJob, 'input' | 'result'> & {
  input: string;
  result: string | null;
  definitionIds: string;
};

/**
 * For each definition, the newest segment job asked to evaluate it: by id, or with `all: true`
 * queued while it was batch-enabled, as the triggers that fill segment_job_definitions record it
 * (drizzle/0023_segment_job_definitions.sql). One statement for any number of definitions, job
 * rows included (a page of definitions with their latest jobs is one of the `api` bench's four
 * statements); each definition reads its newest row of that table, never the sandbox's jobs, so a
 * definition no job named costs one seek however many jobs there are. Each job comes once, with
 * the definitions it is latest for: one `all: true` job is usually the latest of a whole page,
 * and reading (and parsing the JSON of) its row once per definition cost more than the rest of
 * the page.
 */
export async function latestSegmentJobs(
  conn: Store,
  sandboxId: number,
  definitionIds: readonly number[],
): Promise<Map<number, SegmentJob>> {
  const out = new Map<number, SegmentJob>();
  if (definitionIds.length === 0) return out;
  for (const { definitionIds: ids, ...row } of await conn.all<LatestRow>(q.latest, [
    sandboxId,
    JSON.stringify(definitionIds),
  ])) {
    const job = {
      ...row,
      input: JSON.parse(row.input),
      result: row.result === null ? null : JSON.parse(row.result),
    } as SegmentJob;
    for (const definitionId of JSON.parse(ids) as number[]) out.set(definitionId, job);
  }
  return out;
}
