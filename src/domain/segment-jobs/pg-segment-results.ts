/**
 * The final write of a segment job on PostgreSQL: the verdicts every range staged in
 * `job_range_results` (pg-range-evaluation.ts) become memberships, history and sizes, as
 * writeResults does on SQLite (segment-evaluation.ts), in a fixed number of set-based statements
 * for all the job's audiences at once.
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
  /** Each range's profile-id span (both ends included) and how many profiles it read there. */
  spans: readonly { lo: number; hi: number; profiles: number }[];
  segmentationMs: number;
  /** performance.now() when the job started, for totalTimeMs. */
  started: number;
  /** Every range's failed definitions (a definition may appear once per range). */
  failed: FailedDefinition[];
}

// The diff between the staged verdicts and the audiences' membership rows, made once for every
// audience of the job: one row per membership that changes, with its status before (NULL: no row)
// and after. Both sides are read in one pass each and met in one hash or merge join, instead of
// a set of statements per audience that each looked the audience's rows up again (27 audiences
// at 100 k profiles: 243 statements, a few of them scanning the whole staging table each).
// An EXISTING member that still qualifies keeps its row as it is, so a re-run over unchanged data
// finds no change at all; a REALIZED one becomes EXISTING, as on SQLite.
const CHANGES = `CREATE TEMP TABLE segql_changes ON COMMIT DROP AS
  SELECT coalesce(s.audience_id, m.audience_id) AS audience_id, coalesce(s.profile_id, m.profile_id) AS profile_id,
    m.status AS from_status,
    CASE WHEN s.profile_id IS NULL THEN ${statusSql('EXITED')}
         WHEN m.status = ${statusSql('REALIZED')} THEN ${statusSql('EXISTING')}
         ELSE ${statusSql('REALIZED')} END AS to_status
  FROM (SELECT audience_id, profile_id FROM pg_temp.segql_staged WHERE audience_id = ANY($1::bigint[])) AS s
  FULL JOIN (SELECT audience_id, profile_id, status FROM memberships WHERE audience_id = ANY($1::bigint[])) AS m
    ON m.audience_id = s.audience_id AND m.profile_id = s.profile_id
  WHERE CASE WHEN s.profile_id IS NULL THEN m.status IN ${CURRENT_STATUSES_SQL}
             ELSE m.status IS NULL OR m.status IN (${statusSql('REALIZED')}, ${statusSql('EXITED')}) END`;

// One history row per change, as SQLite writes them (an entering profile deleted since the ranges'
// snapshots included: SQLite's read snapshot has the same gap): the diff's rows, and one entry per
// qualifying profile of each fresh audience ($6, below). In profile order, a profile's rows in the
// plan's audience order as on SQLite (whose ids run audience by audience): the same ids from run
// to run, and the (profile_id, at) index is written in one sweep, not once per audience.
const HISTORY = `INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause, definition_version)
  SELECT $1::bigint, c.profile_id, c.audience_id, $2::bigint, c.from_status, c.to_status, $3::text, d.version
  FROM (SELECT audience_id, profile_id, from_status, to_status FROM segql_changes
    UNION ALL SELECT audience_id, unnest(profile_ids), NULL, ${statusSql('REALIZED')} FROM job_range_results
      WHERE job_id = $7 AND audience_id = ANY($6::bigint[])) AS c
  JOIN unnest($4::bigint[], $5::bigint[]) WITH ORDINALITY AS d(audience_id, version, n) USING (audience_id)
  ORDER BY c.profile_id, d.n`;

// The job's audiences that have no membership row at all: a definition evaluated for the first
// time (every audience of a store's first job). One probe of the primary key each.
const FRESH = `SELECT a.id FROM unnest($1::bigint[]) AS a(id)
  WHERE NOT EXISTS (SELECT 1 FROM memberships m WHERE m.audience_id = a.id)`;

// A current member who no longer qualifies exits; how many per audience (the job's metrics).
const LEAVE = `WITH changed AS (
    UPDATE memberships m SET status = ${statusSql('EXITED')}, last_evaluated_at = $1, exited_at = $1
    FROM segql_changes c
    WHERE c.to_status = ${statusSql('EXITED')} AND m.audience_id = c.audience_id AND m.profile_id = c.profile_id
    RETURNING m.audience_id)
  SELECT audience_id, count(*) AS n FROM changed GROUP BY audience_id`;

// Then every REALIZED member left qualified (those that did not were just made EXITED) and stays,
// as EXISTING: the diff's REALIZED → EXISTING rows, found by reading the audiences' rows in their
// order on disk rather than by a join with the diff. Joined, the rows were updated in the hash
// table's order, at random across a table larger than the shared buffers: every page was read,
// dirtied and written out again many times (a first re-run at 1 M profiles, 2.6 M rows: 34–43 s,
// 1.4 M pages dirtied for a table of 53 k), where in order each page is visited once and, with
// half of it free (drizzle/pg/0018), its rows' new versions go beside them.
// Only the audiences the diff has such rows for: a daily re-run, where every member is EXISTING
// already, would otherwise read every row of its audiences for nothing (1.2 s at 1 M profiles).
const STAY = `UPDATE memberships SET status = ${statusSql('EXISTING')}, last_evaluated_at = $1
  WHERE audience_id = ANY($2::bigint[]) AND status = ${statusSql('REALIZED')}`;
const STAYING = `SELECT DISTINCT audience_id FROM segql_changes WHERE to_status = ${statusSql('EXISTING')}`;

// An exited member qualifying again: its row becomes REALIZED, as SQLite's ON CONFLICT makes it.
// A profile deleted since the ranges' snapshots gets no membership here either: deleting a
// profile deletes its membership rows, and this only updates rows that are there.
const REENTER = `WITH changed AS (
    UPDATE memberships m SET status = ${statusSql('REALIZED')}, qualified_at = $1, last_evaluated_at = $1, exited_at = NULL
    FROM segql_changes c
    WHERE c.from_status = ${statusSql('EXITED')} AND m.audience_id = c.audience_id AND m.profile_id = c.profile_id
    RETURNING m.audience_id)
  SELECT audience_id, count(*) AS n FROM changed GROUP BY audience_id`;

// A profile with no membership row at all is inserted plainly: no ON CONFLICT, whose speculative
// insertion costs PostgreSQL about half again per row. No row can appear in between: every writer
// of an audience's memberships holds its audiences row first (taken FOR NO KEY UPDATE below), and
// were one to break that rule the insert fails the job rather than merge. In key order: the
// primary key then grows at one place instead of at pages all over it: 2.6 M rows into an empty
// copy of the table at 1 M profiles took 8–10 s sorted, 20–30 s in hashed profile order, for a
// sort of 2.3 s.
const INSERT_MEMBERS = `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)`;
const ENTER_COLUMNS = `${INSERT_MEMBERS}
  SELECT $1::bigint, c.audience_id, c.profile_id, ${statusSql('REALIZED')}, $2::bigint, $2::bigint, NULL`;

// When every profile the ranges read is still there (rangesIntact), the diff's entrants are
// inserted as they are and counted on the diff: the join with profiles below (a hash of every
// profile id) and the RETURNING cost ~1 s each at 1 M profiles.
const ENTER = `${ENTER_COLUMNS}
  FROM segql_changes c WHERE c.from_status IS NULL ORDER BY c.audience_id, c.profile_id`;
const ENTERING = `SELECT audience_id, count(*) AS n FROM segql_changes WHERE from_status IS NULL GROUP BY audience_id`;

// A fresh audience's members are its staged verdicts, inserted straight from the ranges' arrays:
// each array is one range's ids ascending and the ranges do not overlap, so ordering the arrays by
// their first id puts the rows in key order without sorting them one by one (PostgreSQL unnests
// after the sort), and the diff never holds them (at 1 M profiles, 2.6 M rows of a first
// evaluation: the diff's join, its analysis and the insert's sort, 3–4 s).
const ENTER_FRESH = `${INSERT_MEMBERS}
  SELECT $1::bigint, r.audience_id, unnest(r.profile_ids), ${statusSql('REALIZED')}, $2::bigint, $2::bigint, NULL
  FROM job_range_results r WHERE r.job_id = $3 AND r.audience_id = ANY($4::bigint[])
  ORDER BY r.audience_id, r.profile_ids[1]`;

// Otherwise a profile deleted since its range read it gets no membership, and what was inserted is
// counted as it goes in.
const ENTER_EXISTING = `WITH changed AS (${ENTER_COLUMNS}
    FROM segql_changes c JOIN profiles p ON p.sandbox_id = $1 AND p.id = c.profile_id
    WHERE c.from_status IS NULL ORDER BY c.audience_id, c.profile_id
    RETURNING audience_id)
  SELECT audience_id, count(*) AS n FROM changed GROUP BY audience_id`;

// The profiles in the ranges' spans now. Ids only grow, so a profile created since the plan is past
// every span and the count can only have fallen, by the profiles deleted since a range read them
// (or risen, should one created meanwhile have committed under a lower id: the check then fails
// and the careful insert runs).
const IN_SPANS = `SELECT count(*) AS n FROM unnest($2::bigint[], $3::bigint[]) AS r(lo, hi)
  JOIN profiles p ON p.sandbox_id = $1 AND p.id BETWEEN r.lo AND r.hi`;

// Read through the partial index on exited_at (exited_at < $2 implies exited_at IS NOT NULL).
export const PURGE_EXITED = `DELETE FROM memberships WHERE audience_id = ANY($1::bigint[]) AND status = ${statusSql('EXITED')} AND exited_at < $2`;

// Every audience's size before and after, and its history row, in one statement: every part of
// it sees the snapshot taken before the UPDATE, so `before` is the size the audience had. A size
// given in $5 is taken as it is; one given as NULL is counted (the primary key's rows of the
// audience, 0.6–1 s for 20 audiences of 125 k members each: COALESCE runs the count only then).
const SIZES = `WITH counted AS (
    SELECT a.id, a.size AS before, k.n,
      coalesce(k.size, (SELECT count(*) FROM memberships m WHERE m.audience_id = a.id AND m.status IN ${CURRENT_STATUSES_SQL})) AS size
    FROM audiences a JOIN unnest($3::bigint[], $5::bigint[]) WITH ORDINALITY AS k(id, size, n) USING (id)),
  updated AS (UPDATE audiences a SET size = c.size, last_evaluated_at = $2 FROM counted c WHERE a.id = c.id)
  INSERT INTO audience_size_history (sandbox_id, audience_id, job_id, at, before, size)
  SELECT $1::bigint, c.id, $4::bigint, $2::bigint, c.before, c.size FROM counted c ORDER BY c.n
  RETURNING audience_id, size`;

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
  /** Where the namespace counts may run beside the write (below); on `client` without it. */
  side?: pg.Pool,
): Promise<SegmentMetrics> {
  const { sandboxId, now, jobId } = plan;
  const failed = firstFailures(plan, read.failed);
  assertSomeDefinitionRan(plan, failed);
  // The namespace counts read only committed rows (the ranges' staged verdicts and the
  // identities), so with a pool another connection makes them while this one writes: at 1 M
  // profiles 3.8 s of a 25 s write, on the core the write leaves idle.
  const counting = side ? sideQuery(side, (c) => countNamespaces(c, jobId)) : undefined;
  counting?.catch(() => {});
  const failedIds = new Set(failed.map((f) => f.definitionId));
  const evaluated = plan.definitions.filter((d) => !failedIds.has(d.definitionId));
  const audienceIds = evaluated.map((d) => d.audienceId);
  // A membership writer that also sets the audience's size (streaming, expiry) waits for this
  // write, so it cannot slip a change in between the statements below; id order, so two jobs
  // over the same audiences cannot deadlock on these rows.
  await client.query('SELECT id FROM audiences WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE', [
    audienceIds,
  ]);
  const qualifiedOf = await countStaged(client, jobId);
  const namespaceCounts = counting === undefined ? await countNamespaces(client, jobId) : undefined;
  // Whether every qualifying profile ends a current member, so that each audience's size is its
  // staged count: each staged pair stays, becomes EXISTING, re-enters or is inserted, and every
  // other current member exits. Only a profile deleted since its range read it breaks that, and
  // then every audience goes through the diff, whose insert leaves such a profile out.
  const intact = await rangesIntact(client, sandboxId, read.spans);
  const fresh = intact ? (await client.query<{ id: number }>(FRESH, [audienceIds])).rows.map((r) => r.id) : [];
  const freshSet = new Set(fresh);
  const diffed = audienceIds.filter((id) => !freshSet.has(id));
  // The staged rows of the audiences diffed, read once: the diff and the history read them, and a
  // temporary table has statistics as soon as it is analysed, where the staging table's are from
  // whenever autovacuum last came by (a planner that takes it for nearly empty probes it once per
  // row). The fresh audiences' rows are read from the arrays where they are.
  await client.query(
    `CREATE TEMP TABLE segql_staged ON COMMIT DROP AS SELECT audience_id, unnest(profile_ids) AS profile_id
     FROM job_range_results WHERE job_id = $1 AND audience_id = ANY($2::bigint[])`,
    [jobId, diffed],
  );
  await client.query('ANALYZE pg_temp.segql_staged');
  await client.query(CHANGES, [diffed]);
  await client.query('ANALYZE pg_temp.segql_changes');
  await client.query(HISTORY, [
    sandboxId,
    now,
    `job:${jobId}`,
    audienceIds,
    evaluated.map((d) => d.version),
    fresh,
    jobId,
  ]);
  const exitedOf = perAudience(await client.query<PerAudience>(LEAVE, [now]));
  const staying = (await client.query<{ audience_id: number }>(STAYING)).rows.map((r) => r.audience_id);
  if (staying.length > 0) await client.query(STAY, [now, staying]);
  const reentered = perAudience(await client.query<PerAudience>(REENTER, [now]));
  let entered: Map<number, number>;
  if (intact) {
    entered = perAudience(await client.query<PerAudience>(ENTERING));
    await client.query(ENTER, [sandboxId, now]);
    for (const id of fresh) entered.set(id, qualifiedOf.get(id) ?? 0);
    if (fresh.length > 0) await client.query(ENTER_FRESH, [sandboxId, now, jobId, fresh]);
  } else {
    entered = perAudience(await client.query<PerAudience>(ENTER_EXISTING, [sandboxId, now]));
  }
  await client.query('DROP TABLE pg_temp.segql_changes, pg_temp.segql_staged');
  await client.query(PURGE_EXITED, [audienceIds, now - EXITED_RETENTION_MS]);
  const namespacesOf = namespaceCounts ?? (await counting!);
  const sizes = new Map(
    (
      await client.query<{ audience_id: number; size: number }>(SIZES, [
        sandboxId,
        now,
        audienceIds,
        jobId,
        audienceIds.map((id) => (intact ? (qualifiedOf.get(id) ?? 0) : null)),
      ])
    ).rows.map((r) => [r.audience_id, r.size] as const),
  );
  const metrics: SegmentMetrics = {
    totalProfiles: totalProfiles(read.spans),
    segmentedProfileCounter: {},
    segmentedProfileByStatusCounter: {},
    segmentedProfileByNamespaceCounter: {},
    totalTimeMs: 0,
    profileSegmentationTimeMs: Math.round(read.segmentationMs),
    failedDefinitions: failed,
  };
  for (const { audienceId } of evaluated) {
    const qualified = qualifiedOf.get(audienceId) ?? 0;
    const exited = exitedOf.get(audienceId) ?? 0;
    // The current members now are the ones that stayed and the ones that entered.
    const existing = (sizes.get(audienceId) ?? 0) - (entered.get(audienceId) ?? 0) - (reentered.get(audienceId) ?? 0);
    const key = encodeGlobalId('Audience', audienceId);
    metrics.segmentedProfileCounter[key] = qualified;
    metrics.segmentedProfileByStatusCounter[key] = { realized: qualified - existing, existing, exited };
    metrics.segmentedProfileByNamespaceCounter[key] = namespacesOf.get(audienceId) ?? {};
  }
  await client.query('DELETE FROM job_range_results WHERE job_id = $1', [jobId]);
  metrics.totalTimeMs = Math.round(performance.now() - read.started);
  return metrics;
}

/** Whether every profile the ranges read is still stored (see IN_SPANS). */
async function rangesIntact(client: pg.ClientBase, sandboxId: number, spans: RangesRead['spans']): Promise<boolean> {
  const { rows } = await client.query<{ n: number }>(IN_SPANS, [
    sandboxId,
    spans.map((s) => s.lo),
    spans.map((s) => s.hi),
  ]);
  return rows[0]!.n === totalProfiles(spans);
}

function totalProfiles(spans: RangesRead['spans']): number {
  return spans.reduce((n, s) => n + s.profiles, 0);
}

interface PerAudience {
  audience_id: number;
  n: number;
}

function perAudience(result: pg.QueryResult<PerAudience>): Map<number, number> {
  return new Map(result.rows.map((r) => [r.audience_id, r.n]));
}

/** Each failed definition once, with the first reason a range gave, in plan order (as SQLite lists them). */
function firstFailures(plan: SegmentPlan, failed: readonly FailedDefinition[]): FailedDefinition[] {
  const byId = new Map<number, FailedDefinition>();
  for (const f of failed) if (!byId.has(f.definitionId)) byId.set(f.definitionId, f);
  return plan.definitions.flatMap((d) => byId.get(d.definitionId) ?? []);
}

/** Qualifying profiles per audience: the lengths of its ranges' arrays. */
async function countStaged(client: pg.ClientBase, jobId: number): Promise<Map<number, number>> {
  const { rows } = await client.query<{ audience_id: number; n: number }>(
    'SELECT audience_id, sum(cardinality(profile_ids)) AS n FROM job_range_results WHERE job_id = $1 GROUP BY audience_id',
    [jobId],
  );
  return new Map(rows.map((r) => [r.audience_id, r.n]));
}

/** `query` on a connection of its own from `pool`. */
async function sideQuery<T>(pool: pg.Pool, query: (client: pg.ClientBase) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = true;
  try {
    const out = await query(client);
    broken = false;
    return out;
  } finally {
    client.release(broken);
  }
}

/**
 * Qualifying profiles per identity namespace for each audience of the job (a failed
 * definition's are read and not used), from its staged verdicts and the identities as they are
 * now (SQLite counts in its read snapshot; the two differ only by identities added or moved
 * while the job ran). A profile id belongs to one sandbox, so the (profile_id, namespace) index
 * needs no sandbox condition.
 */
async function countNamespaces(client: pg.ClientBase, jobId: number): Promise<Map<number, Record<string, number>>> {
  const { rows } = await client.query<{ audience_id: number; namespace: string; n: number }>(
    `SELECT r.audience_id, i.namespace, count(DISTINCT r.profile_id) AS n
     FROM (SELECT audience_id, unnest(profile_ids) AS profile_id FROM job_range_results WHERE job_id = $1) AS r
       JOIN identities i ON i.profile_id = r.profile_id
     GROUP BY r.audience_id, i.namespace ORDER BY r.audience_id, i.namespace COLLATE "C"`,
    [jobId],
  );
  const out = new Map<number, Record<string, number>>();
  for (const { audience_id, namespace, n } of rows) {
    const counts = out.get(audience_id) ?? {};
    counts[namespace] = n;
    out.set(audience_id, counts);
  }
  return out;
}
