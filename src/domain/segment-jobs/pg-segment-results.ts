/**
 * The final write of a segment job on PostgreSQL: the verdicts every range staged in
 * `job_range_results` (pg-range-evaluation.ts) become memberships, history and sizes, with the
 * statements of writeResults on SQLite (segment-evaluation.ts), set-based per audience.
 */
import type pg from 'pg';
import { encodeGlobalId } from '../ids.js';
import { CURRENT_STATUSES_SQL, statusSql } from '../membership-statuses.js';
import {
  assertSomeDefinitionRan,
  EXITED_RETENTION_MS,
  type FailedDefinition,
  type SegmentMetrics,
  type SegmentPlan,
} from './segment-evaluation.js';

/** What the job's ranges reported, summed by the caller from their outcomes. */
export interface RangesRead {
  totalProfiles: number;
  segmentationMs: number;
  /** performance.now() when the job started, for totalTimeMs. */
  started: number;
  /** Every range's failed definitions (a definition may appear once per range). */
  failed: FailedDefinition[];
}

// Every statement below reads the staged rows of one job and audience through the key of
// job_range_results (job_id, audience_id, profile_id), and memberships through theirs
// (audience_id, profile_id): both in profile order, so they meet in merge or hash joins, never
// per-row probes from the client.
const HISTORY_ENTER = `INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause, definition_version)
  SELECT $1::bigint, r.profile_id, r.audience_id, $2::bigint, m.status, ${statusSql('REALIZED')}, $3::text, $4::bigint
  FROM job_range_results r LEFT JOIN memberships m ON m.audience_id = r.audience_id AND m.profile_id = r.profile_id
  WHERE r.job_id = $5 AND r.audience_id = $6 AND (m.status IS NULL OR m.status = ${statusSql('EXITED')})`;

// The (audience_id, status) index lists the audience's members of one status.
const HISTORY_STAY = `INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause, definition_version)
  SELECT $1::bigint, m.profile_id, m.audience_id, $2::bigint, ${statusSql('REALIZED')}, ${statusSql('EXISTING')}, $3::text, $4::bigint
  FROM memberships m
  WHERE m.audience_id = $6 AND m.status = ${statusSql('REALIZED')}
    AND EXISTS (SELECT 1 FROM job_range_results r WHERE r.job_id = $5 AND r.audience_id = m.audience_id AND r.profile_id = m.profile_id)`;

const HISTORY_EXIT = `INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause, definition_version)
  SELECT $1::bigint, m.profile_id, m.audience_id, $2::bigint, m.status, ${statusSql('EXITED')}, $3::text, $4::bigint
  FROM memberships m
  WHERE m.audience_id = $6 AND m.status IN ${CURRENT_STATUSES_SQL}
    AND NOT EXISTS (SELECT 1 FROM job_range_results r WHERE r.job_id = $5 AND r.audience_id = m.audience_id AND r.profile_id = m.profile_id)`;

const EXIT = `UPDATE memberships m SET status = ${statusSql('EXITED')}, exited_at = $1, last_evaluated_at = $1
  WHERE m.audience_id = $3 AND m.status IN ${CURRENT_STATUSES_SQL}
    AND NOT EXISTS (SELECT 1 FROM job_range_results r WHERE r.job_id = $2 AND r.audience_id = m.audience_id AND r.profile_id = m.profile_id)`;

// Only REALIZED rows change (to EXISTING), as on SQLite: a re-run over unchanged data writes next to nothing.
const STAY = `UPDATE memberships m SET status = ${statusSql('EXISTING')}, last_evaluated_at = $1
  WHERE m.audience_id = $3 AND m.status = ${statusSql('REALIZED')}
    AND EXISTS (SELECT 1 FROM job_range_results r WHERE r.job_id = $2 AND r.audience_id = m.audience_id AND r.profile_id = m.profile_id)`;

// A staged profile with no membership row at all is inserted plainly: no ON CONFLICT, whose
// speculative insertion costs PostgreSQL about half again per row (a first evaluation at 100 k
// profiles: 1.1 s against 1.8 s for 264 k rows). No row can appear in between: every writer of an
// audience's memberships holds its audiences row first (taken FOR NO KEY UPDATE below), and were
// one to break that rule the insert fails the job rather than merge. A profile deleted since the
// ranges' snapshots gets no membership; the (sandbox_id, id) index answers that.
const ENTER = `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)
  SELECT $1::bigint, r.audience_id, r.profile_id, ${statusSql('REALIZED')}, $2::bigint, $2::bigint, NULL
  FROM job_range_results r
  WHERE r.job_id = $3 AND r.audience_id = $4
    AND NOT EXISTS (SELECT 1 FROM memberships cur WHERE cur.audience_id = r.audience_id AND cur.profile_id = r.profile_id)
    AND EXISTS (SELECT 1 FROM profiles p WHERE p.sandbox_id = $1 AND p.id = r.profile_id)`;

// An exited member qualifying again: its row becomes REALIZED, as SQLite's ON CONFLICT makes it.
// Rows this job has just exited are not staged, so they stay EXITED.
const REENTER = `UPDATE memberships m SET status = ${statusSql('REALIZED')}, qualified_at = $2, last_evaluated_at = $2, exited_at = NULL
  WHERE m.audience_id = $4 AND m.status = ${statusSql('EXITED')}
    AND EXISTS (SELECT 1 FROM job_range_results r WHERE r.job_id = $3 AND r.audience_id = m.audience_id AND r.profile_id = m.profile_id)
    AND EXISTS (SELECT 1 FROM profiles p WHERE p.sandbox_id = $1 AND p.id = m.profile_id)`;

const PURGE = `DELETE FROM memberships WHERE audience_id = $1 AND status = ${statusSql('EXITED')} AND exited_at < $2`;

// The size before and after, and its history row, in one statement: every part of it sees the
// snapshot taken before the UPDATE, so `old` is the size the audience had.
const SIZE = `WITH old AS (SELECT size FROM audiences WHERE id = $3),
  updated AS (
    UPDATE audiences SET size = (SELECT count(*) FROM memberships WHERE audience_id = $3 AND status IN ${CURRENT_STATUSES_SQL}),
      last_evaluated_at = $2 WHERE id = $3 RETURNING size)
  INSERT INTO audience_size_history (sandbox_id, audience_id, job_id, at, before, size)
  SELECT $1::bigint, $3::bigint, $4::bigint, $2::bigint, old.size, updated.size FROM old, updated
  RETURNING size`;

/**
 * Inside the caller's transaction: turns the job's staged verdicts into memberships, history and
 * sizes exactly as writeResults does on SQLite, then deletes the job's staged rows. A definition
 * that failed in any range is skipped, its memberships left as they were; when every definition
 * failed it throws as the SQLite job does, and the caller's rollback keeps the staged rows.
 */
export async function writeSegmentResultsPg(
  client: pg.ClientBase,
  plan: SegmentPlan,
  read: RangesRead,
): Promise<SegmentMetrics> {
  const { sandboxId, now, jobId } = plan;
  const failed = firstFailures(plan, read.failed);
  assertSomeDefinitionRan(plan, failed);
  const failedIds = new Set(failed.map((f) => f.definitionId));
  const evaluated = plan.definitions.filter((d) => !failedIds.has(d.definitionId));
  const audienceIds = evaluated.map((d) => d.audienceId);
  // A membership writer that also sets the audience's size (streaming, expiry) waits for this
  // write, so it cannot slip a change in between the statements below; id order, so two jobs
  // over the same audiences cannot deadlock on these rows.
  await client.query('SELECT id FROM audiences WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE', [
    audienceIds,
  ]);
  // The staged rows arrived since autovacuum last looked: without fresh statistics the planner
  // takes job_range_results for nearly empty and probes it once per membership row (a re-run of
  // 12 audiences over 10,000 profiles took 40 s in its final write; with them, well under one).
  await client.query('ANALYZE job_range_results');
  const qualifiedOf = await countStaged(client, jobId);
  const namespaceCounts = await countNamespaces(client, jobId, audienceIds);
  const metrics: SegmentMetrics = {
    totalProfiles: read.totalProfiles,
    segmentedProfileCounter: {},
    segmentedProfileByStatusCounter: {},
    segmentedProfileByNamespaceCounter: {},
    totalTimeMs: 0,
    profileSegmentationTimeMs: Math.round(read.segmentationMs),
    failedDefinitions: failed,
  };
  const cause = `job:${jobId}`;
  for (const { audienceId, version } of evaluated) {
    const history = [sandboxId, now, cause, version, jobId, audienceId];
    await client.query(HISTORY_ENTER, history);
    await client.query(HISTORY_STAY, history);
    await client.query(HISTORY_EXIT, history);
    const exited = (await client.query(EXIT, [now, jobId, audienceId])).rowCount ?? 0;
    await client.query(STAY, [now, jobId, audienceId]);
    const enterArgs = [sandboxId, now, jobId, audienceId];
    const entered =
      ((await client.query(REENTER, enterArgs)).rowCount ?? 0) + ((await client.query(ENTER, enterArgs)).rowCount ?? 0);
    await client.query(PURGE, [audienceId, now - EXITED_RETENTION_MS]);
    const sized = await client.query<{ size: number }>(SIZE, [sandboxId, now, audienceId, jobId]);
    const qualified = qualifiedOf.get(audienceId) ?? 0;
    // The current members now are the ones that stayed and the ones that entered.
    const existing = (sized.rows[0]?.size ?? 0) - entered;
    const key = encodeGlobalId('Audience', audienceId);
    metrics.segmentedProfileCounter[key] = qualified;
    metrics.segmentedProfileByStatusCounter[key] = { realized: qualified - existing, existing, exited };
    metrics.segmentedProfileByNamespaceCounter[key] = namespaceCounts.get(audienceId) ?? {};
  }
  await client.query('DELETE FROM job_range_results WHERE job_id = $1', [jobId]);
  metrics.totalTimeMs = Math.round(performance.now() - read.started);
  return metrics;
}

/** Each failed definition once, with the first reason a range gave, in plan order (as SQLite lists them). */
function firstFailures(plan: SegmentPlan, failed: readonly FailedDefinition[]): FailedDefinition[] {
  const byId = new Map<number, FailedDefinition>();
  for (const f of failed) if (!byId.has(f.definitionId)) byId.set(f.definitionId, f);
  return plan.definitions.flatMap((d) => byId.get(d.definitionId) ?? []);
}

/** Qualifying profiles per audience: one pass over the job's part of the staged rows' key. */
async function countStaged(client: pg.ClientBase, jobId: number): Promise<Map<number, number>> {
  const { rows } = await client.query<{ audience_id: number; n: number }>(
    'SELECT audience_id, count(*) AS n FROM job_range_results WHERE job_id = $1 GROUP BY audience_id',
    [jobId],
  );
  return new Map(rows.map((r) => [r.audience_id, r.n]));
}

/**
 * Qualifying profiles per identity namespace for each audience, from the staged rows and the
 * identities as they are now (SQLite counts in its read snapshot; the two differ only by
 * identities added or moved while the job ran). A profile id belongs to one sandbox, so the
 * (profile_id, namespace) index needs no sandbox condition.
 */
async function countNamespaces(
  client: pg.ClientBase,
  jobId: number,
  audienceIds: readonly number[],
): Promise<Map<number, Record<string, number>>> {
  const { rows } = await client.query<{ audience_id: number; namespace: string; n: number }>(
    `SELECT r.audience_id, i.namespace, count(DISTINCT r.profile_id) AS n
     FROM job_range_results r JOIN identities i ON i.profile_id = r.profile_id
     WHERE r.job_id = $1 AND r.audience_id = ANY($2::bigint[])
     GROUP BY r.audience_id, i.namespace ORDER BY r.audience_id, i.namespace COLLATE "C"`,
    [jobId, audienceIds],
  );
  const out = new Map<number, Record<string, number>>();
  for (const { audience_id, namespace, n } of rows) {
    const counts = out.get(audience_id) ?? {};
    counts[namespace] = n;
    out.set(audience_id, counts);
  }
  return out;
}
