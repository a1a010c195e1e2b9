import type { Connection } from '../../db/index.js';
import { compileToSql } from '../../pql/index.js';
import { checkExpressionSync } from '../expressions.js';
import { encodeGlobalId } from '../ids.js';
import { Cancelled } from '../jobs/cancelled.js';
import type { JobTask, TaskContext } from '../jobs/task.js';
import { CURRENT_STATUSES_SQL, statusSql } from '../membership-statuses.js';
import { profileIdRange } from '../profiles.js';

/** What one segment job evaluates, fixed before it starts (so a re-run after a crash does the same). */
export interface SegmentPlan {
  jobId: number;
  sandboxId: number;
  /** The evaluation instant: `now` of every expression. */
  now: number;
  /** In inSegment dependency order. */
  definitions: { definitionId: number; audienceId: number; expressionText: string; version: number }[];
  /** Audiences named by inSegment in any of the definitions (inside the job or not). */
  referencedAudienceIds: number[];
  /** Every chunkSize-th profile id of the scan reports progress and checks for a cancel. */
  chunkSize: number;
  /** Kept with the result, e.g. definitions skipped because their audience is INACTIVE. */
  notes: string[];
}

export interface AudienceCounts {
  realized: number;
  existing: number;
  exited: number;
}

export interface SegmentMetrics {
  totalProfiles: number;
  /** audience global id → qualifying profiles */
  segmentedProfileCounter: Record<string, number>;
  segmentedProfileByStatusCounter: Record<string, AudienceCounts>;
  /** audience global id → identity namespace → qualifying profiles with an identity there */
  segmentedProfileByNamespaceCounter: Record<string, Record<string, number>>;
  totalTimeMs: number;
  profileSegmentationTimeMs: number;
  /** Definitions that could not be evaluated; their memberships were left as they were. */
  failedDefinitions: FailedDefinition[];
}

export interface FailedDefinition {
  definitionId: number;
  reason: string;
}

/** The segment kind's task, which the job worker runs: evaluates the plan, reporting progress at most every 50 ms. */
const segmentTask: JobTask<'SEGMENT', SegmentPlan> = (conn, plan, ctx) => {
  let last = 0;
  evaluateSegmentPlan(conn, plan, {
    ...ctx,
    progress: (p) => {
      const now = Date.now();
      if (now - last >= 50 || p.done === p.total) {
        last = now;
        ctx.progress(p);
      }
    },
  });
};
export default segmentTask;

/** How long an EXITED membership is kept for its history before a job purges it. */
export const EXITED_RETENTION_MS = 30 * 86_400_000;

/** A job none of whose definitions could run fails as a whole rather than writing nothing as a success. */
export function assertSomeDefinitionRan(plan: SegmentPlan, failed: readonly FailedDefinition[]): void {
  if (failed.length > 0 && failed.length === plan.definitions.length) {
    throw new Error(
      `Every definition failed: ${failed.map((f) => `definition ${f.definitionId}: ${f.reason}`).join('; ')}`,
    );
  }
}

/**
 * Evaluates a plan over the whole store and writes memberships (docs/domain.md "Memberships").
 * Reads run inside one read transaction (a consistent snapshot) over profile-id chunks;
 * qualifying ids go to a temp table, and a temp `memberships` table shadows the stored one
 * so `inSegment` sees the results of definitions evaluated earlier in the same job. All
 * writes — transitions, history, sizes — go through `ctx.finish`, in one transaction with the
 * job's SUCCEEDED state: readers see the old state or the new one, and a crash leaves the old one.
 */
export function evaluateSegmentPlan(conn: Connection, plan: SegmentPlan, ctx: TaskContext<'SEGMENT'>): void {
  const started = performance.now();
  const { sqlite } = conn;
  const { sandboxId, now } = plan;
  sqlite.exec('DROP TABLE IF EXISTS temp.job_result; DROP TABLE IF EXISTS temp.memberships');
  sqlite.exec(
    'CREATE TEMP TABLE job_result (audience_id INTEGER NOT NULL, profile_id INTEGER NOT NULL, PRIMARY KEY (audience_id, profile_id)) WITHOUT ROWID',
  );
  const shadow = plan.referencedAudienceIds.length > 0;
  let totalProfiles = 0;
  let segmentationMs = 0;
  let namespaceCounts = new Map<number, Record<string, number>>();
  const failed: FailedDefinition[] = [];
  try {
    sqlite.exec('BEGIN');
    try {
      const range = profileIdRange(conn, sandboxId);
      totalProfiles = range.count;
      if (shadow) {
        sqlite.exec(
          'CREATE TEMP TABLE memberships (sandbox_id INTEGER, audience_id INTEGER NOT NULL, profile_id INTEGER NOT NULL, status TEXT NOT NULL, payload TEXT, PRIMARY KEY (audience_id, profile_id)) WITHOUT ROWID',
        );
        sqlite
          .prepare(
            `INSERT INTO temp.memberships SELECT sandbox_id, audience_id, profile_id, status, payload FROM main.memberships
             WHERE sandbox_id = ? AND audience_id IN (SELECT value FROM json_each(?)) AND status IN ${CURRENT_STATUSES_SQL}`,
          )
          .run(sandboxId, JSON.stringify(plan.referencedAudienceIds));
      }
      const total = totalProfiles * plan.definitions.length;
      const span = range.lo != null && range.hi != null ? range.hi - range.lo + 1 : 1;
      let before = 0;
      // A definition that starts from a set of ids (compileToSql) may meet them out of id order: progress never goes back.
      let reached = 0;
      ctx.progress({ done: 0, total });
      // One statement per definition, so every sub-query list (inSegment, grouped events) is built once
      // per definition, not once per chunk. Progress and cancel ride inside the scan: every
      // `chunkSize`-th profile id calls segql_tick, which reports how far the scan is and throws when
      // a cancel was asked for (aborting the statement).
      sqlite.function('segql_tick', { deterministic: false }, (id: unknown) => {
        if (ctx.cancelled()) throw new Cancelled();
        reached = Math.max(
          reached,
          Math.min(totalProfiles, Math.round((((id as number) - (range.lo ?? 0)) / span) * totalProfiles)),
        );
        ctx.progress({ done: before + reached, total });
        return 1;
      });
      const segStart = performance.now();
      for (const def of plan.definitions) {
        if (ctx.cancelled()) throw new Cancelled();
        reached = 0;
        // A definition that cannot run (one saved before a limit existed, say) fails alone: its
        // rows are dropped and its memberships stay as they were; the others go on.
        sqlite.exec('SAVEPOINT segql_definition');
        try {
          const { checked } = checkExpressionSync(conn, sandboxId, { format: 'PQL_TEXT', value: def.expressionText });
          const query = compileToSql(checked, {
            now,
            sandboxId,
            where: [{ sql: 'p.id % ? != 0 OR segql_tick(p.id)', params: [plan.chunkSize] }],
          });
          sqlite
            .prepare(`INSERT INTO temp.job_result (audience_id, profile_id) SELECT ?, id FROM (${query.sql})`)
            .run(def.audienceId, ...query.params);
          sqlite.exec('RELEASE segql_definition');
        } catch (err) {
          sqlite.exec('ROLLBACK TO segql_definition; RELEASE segql_definition');
          if (err instanceof Cancelled) throw err;
          failed.push({ definitionId: def.definitionId, reason: err instanceof Error ? err.message : String(err) });
        }
        before += totalProfiles;
        ctx.progress({ done: before, total });
        if (
          shadow &&
          plan.referencedAudienceIds.includes(def.audienceId) &&
          !failed.some((f) => f.definitionId === def.definitionId)
        ) {
          sqlite.prepare('DELETE FROM temp.memberships WHERE audience_id = ?').run(def.audienceId);
          sqlite
            .prepare(
              `INSERT INTO temp.memberships SELECT ?, audience_id, profile_id, ${statusSql('REALIZED')}, NULL FROM temp.job_result WHERE audience_id = ?`,
            )
            .run(sandboxId, def.audienceId);
        }
      }
      segmentationMs = performance.now() - segStart;
      namespaceCounts = countNamespaces(conn, plan);
    } finally {
      sqlite.exec('COMMIT');
    }
    // The shadow has done its job; writes below name main.memberships and must not see it.
    sqlite.exec('DROP TABLE IF EXISTS temp.memberships');
    if (ctx.cancelled()) throw new Cancelled();
    assertSomeDefinitionRan(plan, failed);
    const read: ReadPhase = { totalProfiles, segmentationMs, started, namespaceCounts, failed };
    ctx.finish(() => {
      const metrics = writeResults(conn, plan, read);
      return { result: { metrics, notes: plan.notes }, units: totalProfiles * plan.definitions.length };
    });
  } finally {
    sqlite.exec(
      'DROP TABLE IF EXISTS temp.job_result; DROP TABLE IF EXISTS temp.memberships; DROP TABLE IF EXISTS temp.job_entering; DROP TABLE IF EXISTS temp.job_exiting',
    );
  }
}

/**
 * Qualifying profiles per identity namespace, for every audience of the plan. Each profile's
 * set of namespaces becomes a bitmask once (one pass over the sandbox's identities), so each
 * audience is a GROUP BY over a handful of masks instead of a join with the identities.
 */
function countNamespaces(conn: Connection, plan: SegmentPlan): Map<number, Record<string, number>> {
  const { sqlite } = conn;
  const out = new Map<number, Record<string, number>>();
  // A skip-scan of the (sandbox_id, namespace, value) key: one seek per namespace, not a read of every identity.
  const namespaces = sqlite
    .prepare(
      `WITH RECURSIVE ns(n) AS (
         SELECT min(namespace) FROM main.identities WHERE sandbox_id = ?
         UNION ALL
         SELECT (SELECT min(namespace) FROM main.identities WHERE sandbox_id = ? AND namespace > ns.n) FROM ns WHERE ns.n IS NOT NULL)
       SELECT n FROM ns WHERE n IS NOT NULL`,
    )
    .pluck()
    .all(plan.sandboxId, plan.sandboxId) as string[];
  if (plan.definitions.length === 0 || namespaces.length === 0) return out;
  if (namespaces.length > 52) {
    // More namespaces than exact bits in a double: count per audience with a join instead.
    const perAudience = sqlite.prepare(
      `SELECT i.namespace AS namespace, count(DISTINCT r.profile_id) AS n FROM temp.job_result r
       JOIN main.identities i ON i.profile_id = r.profile_id WHERE r.audience_id = ? GROUP BY i.namespace`,
    );
    for (const { audienceId } of plan.definitions) {
      const rows = perAudience.all(audienceId) as { namespace: string; n: number }[];
      out.set(audienceId, Object.fromEntries(rows.map((r) => [r.namespace, r.n])));
    }
    return out;
  }
  sqlite.exec('DROP TABLE IF EXISTS temp.profile_ns');
  sqlite.exec('CREATE TEMP TABLE profile_ns (profile_id INTEGER PRIMARY KEY, mask INTEGER NOT NULL)');
  // One pass over the (profile_id, namespace) index, which carries the sandbox (identities are
  // WITHOUT ROWID), in profile order: no sort, no per-group DISTINCT. Bit i is namespace i.
  const bits = namespaces.map(() => 'max(i.namespace = ?) * ?').join(' + ');
  sqlite
    .prepare(
      `INSERT INTO temp.profile_ns SELECT i.profile_id, ${bits} FROM main.identities AS i INDEXED BY identities_profile_namespace
       WHERE i.sandbox_id = ? GROUP BY i.profile_id`,
    )
    // BigInt: the mask is an INTEGER, so `>>` reads its bits exactly.
    .run(...namespaces.flatMap((ns, i) => [ns, 1n << BigInt(i)]), plan.sandboxId);
  // One sum per namespace bit: a single aggregate row per audience, with no GROUP BY to sort.
  const sums = namespaces.map((_, i) => `sum((n.mask >> ${i}) & 1)`).join(', ');
  const perAudience = sqlite
    .prepare(
      `SELECT ${sums} FROM temp.job_result r JOIN temp.profile_ns n ON n.profile_id = r.profile_id WHERE r.audience_id = ?`,
    )
    .raw();
  for (const { audienceId } of plan.definitions) {
    const row = perAudience.get(audienceId) as (number | null)[];
    const counts: Record<string, number> = {};
    namespaces.forEach((ns, i) => {
      if ((row[i] ?? 0) > 0) counts[ns] = row[i]!;
    });
    out.set(audienceId, counts);
  }
  sqlite.exec('DROP TABLE IF EXISTS temp.profile_ns');
  return out;
}

interface ReadPhase {
  totalProfiles: number;
  segmentationMs: number;
  started: number;
  namespaceCounts: Map<number, Record<string, number>>;
  failed: FailedDefinition[];
}

/** Writes the memberships, history and sizes the read phase found (inside the job's finishing transaction). */
function writeResults(conn: Connection, plan: SegmentPlan, read: ReadPhase): SegmentMetrics {
  const { totalProfiles, segmentationMs, started } = read;
  const { sqlite } = conn;
  const { sandboxId, now, jobId } = plan;
  const cause = `job:${jobId}`;
  const HISTORY = `INSERT INTO main.membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause, definition_version)`;
  // A re-run's transitions are found once per audience (one pass each way) into these, and the
  // history and the membership writes then read them: in the daily re-run over unchanged data
  // both stay empty, where each of the statements joined the audience's whole result again.
  sqlite.exec(`DROP TABLE IF EXISTS temp.job_entering; DROP TABLE IF EXISTS temp.job_exiting;
    CREATE TEMP TABLE job_entering (profile_id INTEGER PRIMARY KEY, from_status TEXT);
    CREATE TEMP TABLE job_exiting (from_status TEXT NOT NULL, profile_id INTEGER NOT NULL, PRIMARY KEY (from_status, profile_id)) WITHOUT ROWID`);
  const enterSql = (from: string, where: string) =>
    `INSERT INTO main.memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)
       SELECT ?, ?, e.profile_id, ${statusSql('REALIZED')}, ?, ?, NULL FROM ${from}
       WHERE ${where}
         -- A profile deleted since the read snapshot gets no membership; the (sandbox_id, id) index answers
         -- that without reading the profile's row.
         AND EXISTS (SELECT 1 FROM main.profiles p INDEXED BY profiles_sandbox_id WHERE p.sandbox_id = ? AND p.id = e.profile_id)
       ON CONFLICT (audience_id, profile_id) DO UPDATE SET status = ${statusSql('REALIZED')}, qualified_at = excluded.qualified_at,
         last_evaluated_at = excluded.last_evaluated_at, exited_at = NULL
       WHERE memberships.status = ${statusSql('EXITED')}`;
  const s = {
    /** Whether the audience has any row yet: a first evaluation has no transitions to find, only entries. */
    hasRows: sqlite.prepare('SELECT EXISTS (SELECT 1 FROM main.memberships WHERE audience_id = ?)').pluck(),
    historyFirst: sqlite.prepare(
      `${HISTORY} SELECT ?, e.profile_id, e.audience_id, ?, NULL, ${statusSql('REALIZED')}, ?, ? FROM temp.job_result e WHERE e.audience_id = ?`,
    ),
    enterFirst: sqlite.prepare(enterSql('temp.job_result e', 'e.audience_id = ?')),
    entering: sqlite.prepare(
      `INSERT INTO temp.job_entering (profile_id, from_status)
       SELECT r.profile_id, m.status FROM temp.job_result r
       LEFT JOIN main.memberships m ON m.audience_id = r.audience_id AND m.profile_id = r.profile_id
       WHERE r.audience_id = ? AND (m.status IS NULL OR m.status = ${statusSql('EXITED')})`,
    ),
    historyEnter: sqlite.prepare(
      `${HISTORY} SELECT ?, e.profile_id, ?, ?, e.from_status, ${statusSql('REALIZED')}, ?, ? FROM temp.job_entering e ORDER BY e.profile_id`,
    ),
    enter: sqlite.prepare(enterSql('temp.job_entering e', 'true')),
    historyStay: sqlite.prepare(
      `${HISTORY} SELECT ?, m.profile_id, m.audience_id, ?, ${statusSql('REALIZED')}, ${statusSql('EXISTING')}, ?, ? FROM main.memberships m
       WHERE m.audience_id = ? AND m.status = ${statusSql('REALIZED')}
         AND EXISTS (SELECT 1 FROM temp.job_result r WHERE r.audience_id = m.audience_id AND r.profile_id = m.profile_id)`,
    ),
    exiting: sqlite.prepare(
      `INSERT INTO temp.job_exiting (from_status, profile_id) SELECT m.status, m.profile_id FROM main.memberships m
       WHERE m.audience_id = ? AND m.status IN ${CURRENT_STATUSES_SQL}
         AND NOT EXISTS (SELECT 1 FROM temp.job_result r WHERE r.audience_id = m.audience_id AND r.profile_id = m.profile_id)`,
    ),
    historyExit: sqlite.prepare(
      `${HISTORY} SELECT ?, x.profile_id, ?, ?, x.from_status, ${statusSql('EXITED')}, ?, ? FROM temp.job_exiting x`,
    ),
    exit: sqlite.prepare(
      `UPDATE main.memberships SET status = ${statusSql('EXITED')}, exited_at = ?, last_evaluated_at = ?
       WHERE audience_id = ? AND profile_id IN (SELECT profile_id FROM temp.job_exiting)`,
    ),
    // Only REALIZED rows change (to EXISTING): an EXISTING member that still qualifies keeps its
    // row as it is, so a re-run over unchanged data writes next to nothing. Its lastEvaluatedAt is
    // read as the audience's (memberships.ts).
    stay: sqlite.prepare(
      `UPDATE main.memberships SET status = ${statusSql('EXISTING')}, last_evaluated_at = ?
       WHERE audience_id = ? AND status = ${statusSql('REALIZED')}
         AND EXISTS (SELECT 1 FROM temp.job_result r WHERE r.audience_id = memberships.audience_id AND r.profile_id = memberships.profile_id)`,
    ),
    forgetEntries: sqlite.prepare('DELETE FROM temp.job_entering'),
    forgetExits: sqlite.prepare('DELETE FROM temp.job_exiting'),
    purge: sqlite.prepare(
      `DELETE FROM main.memberships WHERE audience_id = ? AND status = ${statusSql('EXITED')} AND exited_at < ?`,
    ),
    qualified: sqlite.prepare('SELECT count(*) FROM temp.job_result WHERE audience_id = ?').pluck(),
    sizeOf: sqlite.prepare('SELECT size FROM main.audiences WHERE id = ?').pluck(),
    // The size after each evaluation, for Audience.sizeHistory and audienceSizeChanged.
    sizeHistory: sqlite.prepare(
      `INSERT INTO main.audience_size_history (sandbox_id, audience_id, job_id, at, before, size)
       SELECT ?, ?, ?, ?, ?, size FROM main.audiences WHERE id = ?`,
    ),
    size: sqlite.prepare(
      `UPDATE main.audiences SET size = (SELECT count(*) FROM main.memberships WHERE audience_id = ? AND status IN ${CURRENT_STATUSES_SQL}),
       last_evaluated_at = ? WHERE id = ?`,
    ),
  };
  const metrics: SegmentMetrics = {
    totalProfiles,
    segmentedProfileCounter: {},
    segmentedProfileByStatusCounter: {},
    segmentedProfileByNamespaceCounter: {},
    totalTimeMs: 0,
    profileSegmentationTimeMs: Math.round(segmentationMs),
    failedDefinitions: read.failed,
  };
  const failedIds = new Set(read.failed.map((f) => f.definitionId));
  for (const { audienceId, definitionId, version } of plan.definitions) {
    if (failedIds.has(definitionId)) continue;
    const key = encodeGlobalId('Audience', audienceId);
    let exited = 0;
    let entered: number;
    if (!s.hasRows.get(audienceId)) {
      s.historyFirst.run(sandboxId, now, cause, version, audienceId);
      entered = s.enterFirst.run(sandboxId, audienceId, now, now, audienceId, sandboxId).changes;
    } else {
      // History first, in the order the rows were before this job: entries, stays, exits.
      s.entering.run(audienceId);
      s.historyEnter.run(sandboxId, audienceId, now, cause, version);
      s.historyStay.run(sandboxId, now, cause, version, audienceId);
      s.exiting.run(audienceId);
      s.historyExit.run(sandboxId, audienceId, now, cause, version);
      exited = s.exit.run(now, now, audienceId).changes;
      s.stay.run(now, audienceId);
      entered = s.enter.run(sandboxId, audienceId, now, now, sandboxId).changes;
      s.forgetEntries.run();
      s.forgetExits.run();
    }
    const qualified = s.qualified.get(audienceId) as number;
    s.purge.run(audienceId, now - EXITED_RETENTION_MS);
    const before = (s.sizeOf.get(audienceId) as number | undefined) ?? 0;
    s.size.run(audienceId, now, audienceId);
    s.sizeHistory.run(sandboxId, audienceId, jobId, now, before, audienceId);
    // The current members now are the ones that stayed and the ones that entered.
    const existing = (s.sizeOf.get(audienceId) as number) - entered;
    metrics.segmentedProfileCounter[key] = qualified;
    metrics.segmentedProfileByStatusCounter[key] = { realized: qualified - existing, existing, exited };
    metrics.segmentedProfileByNamespaceCounter[key] = read.namespaceCounts.get(audienceId) ?? {};
  }
  metrics.totalTimeMs = Math.round(performance.now() - started);
  return metrics;
}
