/**
 * One profile-id range of a segment job on PostgreSQL: the read phase of evaluateSegmentPlan
 * (segment-evaluation.ts) restricted to `lo ≤ id ≤ hi`, its verdicts staged in
 * `job_range_results` for writeSegmentResultsPg (pg-segment-results.ts) to turn into memberships
 * once every range is done. Ranges of one job run on any nodes, in any order, at once.
 */
import pg from 'pg';
import { compileToSql } from '../../pql/index.js';
import { Cancelled } from '../jobs/cancelled.js';
import { CURRENT_STATUSES_SQL, statusSql } from '../membership-statuses.js';
import { checkDefinitionPg, readCatalogPg } from '../pg-expressions.js';
import type { FailedDefinition, SegmentPlan } from './segment-evaluation.js';

export interface RangeTask {
  jobId: number;
  rangeNo: number;
  /** Profile ids, both ends included. */
  lo: number;
  hi: number;
}

export interface RangeOutcome {
  /** The range's profiles in its snapshot: its share of the job's totalProfiles. */
  profiles: number;
  failed: FailedDefinition[];
  segmentationMs: number;
}

export interface RangeHooks {
  /** Checked before each definition; true makes the range throw Cancelled. */
  cancelled(): boolean;
  /** Units done in this range so far (profiles × definitions). */
  progress(done: number): void;
  /**
   * Runs inside the range's transaction just before COMMIT: the caller checks its lease and marks
   * the range DONE there; it throws to abandon the range (then roll back, rethrow).
   */
  commit(client: pg.ClientBase, outcome: RangeOutcome): Promise<void>;
}

/**
 * Evaluates every definition of the plan over the range's profiles and stages the qualifying
 * ones. The evaluation runs in one REPEATABLE READ transaction: every definition reads the same
 * snapshot, as SQLite's one read transaction gives the single-node job. A definition that fails
 * (including a clause PostgreSQL cannot run) is reported in `failed` and the others go on: one
 * refused by the compiler costs nothing more, and one whose statement fails inside PostgreSQL
 * (which aborts the transaction) has the range read again from a new snapshot without it. That
 * is rare, so no definition pays for a savepoint (two round trips each, 648 for a job of 27
 * definitions in 12 ranges). The verdicts wait in a temporary table of the session until a
 * second, READ COMMITTED transaction runs the commit hook and stages them: the hook updates the
 * range's row, which the node holding it renews while the evaluation runs, and a REPEATABLE READ
 * transaction may not update a row changed since its snapshot. Anything else — an error, a
 * cancel, a commit hook that throws — stages nothing, so a range has staged rows exactly when
 * its commit hook has run and committed.
 */
export async function evaluateRangePg(
  client: pg.ClientBase,
  plan: SegmentPlan,
  range: RangeTask,
  hooks: RangeHooks,
): Promise<RangeOutcome> {
  // A session table: it outlives the evaluation's transaction, for the staging one. It has the
  // staging table's columns and storage, so staging the range is a plain copy of its rows.
  await client.query('CREATE TEMP TABLE IF NOT EXISTS range_verdicts (LIKE job_range_results INCLUDING STORAGE)');
  const failed: FailedDefinition[] = [];
  try {
    let read: { profiles: number; segmentationMs: number } | 'again';
    do {
      await client.query('TRUNCATE pg_temp.range_verdicts');
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      // No JIT compilation for the range's statements: PostgreSQL compiles each statement anew,
      // so a job pays it once per definition and range, and for a range it costs more than it
      // saves (at 1 M profiles in 12 ranges, 0.8 s of compiling for a 0.5 s statement).
      await client.query('SET LOCAL jit = off');
      read = await readRange(client, plan, range, hooks, failed);
      // The transaction is aborted: the definition that failed is in `failed` now, and is left out.
      if (read === 'again') await client.query('ROLLBACK');
    } while (read === 'again');
    const outcome: RangeOutcome = { profiles: read.profiles, failed, segmentationMs: read.segmentationMs };
    // The caller's commit hook must see the stored memberships under that name, not the shadow.
    if (plan.referencedAudienceIds.length > 0) await client.query('DROP TABLE pg_temp.memberships');
    await client.query('COMMIT');
    await client.query('BEGIN');
    await client.query('INSERT INTO job_range_results SELECT * FROM pg_temp.range_verdicts');
    await hooks.commit(client, outcome);
    await client.query('COMMIT');
    await client.query('TRUNCATE pg_temp.range_verdicts');
    return outcome;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch {
      // A connection that failed mid-statement cannot roll back; the server drops the transaction with it.
    }
    throw err;
  }
}

/**
 * Inside the range's REPEATABLE READ transaction: each definition not in `failed` over the
 * range, its verdicts into `range_verdicts`. A definition that fails is added to `failed`; when its
 * failure came from PostgreSQL the transaction is aborted and this returns 'again'.
 */
async function readRange(
  client: pg.ClientBase,
  plan: SegmentPlan,
  range: RangeTask,
  hooks: RangeHooks,
  failed: FailedDefinition[],
): Promise<{ profiles: number; segmentationMs: number } | 'again'> {
  const { sandboxId, now } = plan;
  const { jobId, rangeNo, lo, hi } = range;
  // The (sandbox_id, id) index answers this as a range of its entries.
  const counted = await client.query<{ n: number }>(
    'SELECT count(*) AS n FROM profiles WHERE sandbox_id = $1 AND id BETWEEN $2 AND $3',
    [sandboxId, lo, hi],
  );
  const profiles = counted.rows[0]!.n;
  const catalog = await readCatalogPg(client, sandboxId);
  const shadow = plan.referencedAudienceIds.length > 0;
  if (shadow) await createMembershipShadow(client, plan, range);
  const skipped = new Set(failed.map((f) => f.definitionId));
  hooks.progress(0);
  const segStart = performance.now();
  for (const [i, def] of plan.definitions.entries()) {
    if (hooks.cancelled()) throw new Cancelled();
    if (skipped.has(def.definitionId)) continue;
    try {
      const { checked } = await checkDefinitionPg(client, sandboxId, catalog, {
        format: 'PQL_TEXT',
        value: def.expressionText,
      });
      const query = compileToSql(checked, { dialect: 'postgres', now, sandboxId, idRange: { lo, hi } });
      const n = query.params.length;
      // An audience no profile of the range qualifies for stages no row.
      await client.query(
        `INSERT INTO pg_temp.range_verdicts (job_id, range_no, audience_id, sandbox_id, profile_ids)
         SELECT $${n + 1}::bigint, $${n + 2}::bigint, $${n + 3}::bigint, $${n + 4}::bigint, array_agg(q.id ORDER BY q.id)
         FROM (${query.sql}) AS q HAVING count(*) > 0`,
        [...query.params, jobId, rangeNo, def.audienceId, sandboxId],
      );
    } catch (err) {
      if (err instanceof Cancelled) throw err;
      failed.push({ definitionId: def.definitionId, reason: err instanceof Error ? err.message : String(err) });
      // An error PostgreSQL raised has aborted the transaction; a refusal of the compiler has not.
      if (err instanceof pg.DatabaseError) return 'again';
      continue;
    } finally {
      hooks.progress(profiles * (i + 1));
    }
    if (shadow && plan.referencedAudienceIds.includes(def.audienceId)) {
      // Later definitions' inSegment sees what this job decided, as on SQLite.
      await client.query('DELETE FROM pg_temp.memberships WHERE audience_id = $1', [def.audienceId]);
      await client.query(
        `INSERT INTO pg_temp.memberships (sandbox_id, audience_id, profile_id, status, payload)
         SELECT $1::bigint, audience_id, unnest(profile_ids), ${statusSql('REALIZED')}, NULL FROM pg_temp.range_verdicts
         WHERE audience_id = $2`,
        [sandboxId, def.audienceId],
      );
      await client.query('ANALYZE pg_temp.memberships');
    }
  }
  return { profiles, segmentationMs: performance.now() - segStart };
}

/**
 * A temporary `memberships` holding the current members, in this range, of the audiences the
 * plan's inSegment calls name. PostgreSQL looks in the session's temporary schema first, so the
 * compiled SQL's unqualified `memberships` reads it. It is made with CREATE TABLE AS, whose
 * query is resolved before the new table exists: that `memberships` is the stored one, without
 * naming the schema it lives in.
 */
async function createMembershipShadow(client: pg.ClientBase, plan: SegmentPlan, range: RangeTask): Promise<void> {
  await client.query(
    `CREATE TEMP TABLE memberships ON COMMIT DROP AS
     SELECT sandbox_id, audience_id, profile_id, status, payload FROM memberships
     WHERE sandbox_id = $1 AND audience_id = ANY($2::bigint[]) AND status IN ${CURRENT_STATUSES_SQL}
       AND profile_id BETWEEN $3 AND $4`,
    [plan.sandboxId, plan.referencedAudienceIds, range.lo, range.hi],
  );
  await client.query('ALTER TABLE pg_temp.memberships ADD PRIMARY KEY (audience_id, profile_id)');
  // Temporary tables have no statistics until analysed (autovacuum never sees them).
  await client.query('ANALYZE pg_temp.memberships');
}
