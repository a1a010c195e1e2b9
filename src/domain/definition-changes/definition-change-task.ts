import type { Connection } from '../../db/index.js';
import { compilePredicate, compileToSql } from '../../pql/index.js';
import { checkExpression } from '../expressions.js';
import { Cancelled } from '../jobs/cancelled.js';
import type { JobTask } from '../jobs/task.js';
import { CURRENT_STATUSES, statusSql } from '../membership-statuses.js';
import { type Estimate, estimateFromSample } from '../previews/estimate.js';
import { openSampler } from '../previews/preview-samplers.js';

export interface DefinitionChangePlan {
  jobId: number;
  sandboxId: number;
  now: number;
  audienceId: number;
  expressionText: string;
  seed: number;
  confidenceLevel: number;
  /** Definitions that name the audience through inSegment. */
  dependents: { definitionId: number; audienceId: number; expressionText: string }[];
}

/** A count: a running estimate with its interval, or exact (low = high = value). */
export interface CountEstimate {
  value: number;
  low: number;
  high: number;
  exact: boolean;
}

export interface DefinitionChangeProgress {
  done: number;
  total: number;
  wouldJoin: CountEstimate;
  wouldLeave: CountEstimate;
  wouldStay: CountEstimate;
}

export interface AffectedDependent {
  definitionId: number;
  wouldJoin: number;
  wouldLeave: number;
}

export interface DefinitionChangeResult {
  wouldJoin: CountEstimate;
  wouldLeave: CountEstimate;
  wouldStay: CountEstimate;
  profilesRead: number;
  /** Up to CHANGE_SAMPLE_SIZE profile ids of each side, in id order. */
  joinSample: number[];
  leaveSample: number[];
  affectedDependents: AffectedDependent[];
}

/** Random-order reading stops once every interval's half-width is this share of the population. */
const TIGHT_ENOUGH = 0.02;
const FIRST_CHUNK = 1_000;
const MAX_CHUNK = 50_000;
const SAMPLE_SIZE = 100;

const toCount = (e: Estimate): CountEstimate => ({
  value: e.estimatedSize,
  low: e.confidenceInterval.low,
  high: e.confidenceInterval.high,
  exact: e.exact,
});

const exactCount = (n: number): CountEstimate => ({ value: n, low: n, high: n, exact: true });

/**
 * The dry run's task. Inside one read snapshot: a seeded random permutation of the profiles is
 * read in chunks, each profile classed as joining (qualifies, not a member), leaving (a member,
 * no longer qualifies) or staying, with running estimates and intervals for the three counts
 * (the preview sampler and estimator); once the intervals are tight, the exact sets come from
 * the SQL engine, and dependents (definitions reading this audience through inSegment) are
 * evaluated with the audience's new members in a shadow `memberships` table and without.
 * Nothing is written: the result rides on the job.
 */
const definitionChangeTask: JobTask<'DEFINITION_CHANGE_PREVIEW', DefinitionChangePlan> = (conn, plan, ctx) => {
  const { sqlite } = conn;
  const { sandboxId, now, audienceId } = plan;
  const { checked } = checkExpression(
    conn,
    sandboxId,
    { format: 'PQL_TEXT', value: plan.expressionText },
    { definition: true, selfAudienceId: audienceId },
  );
  const predicate = compilePredicate(checked, { now });
  const statuses = CURRENT_STATUSES.map((s) => `'${s}'`).join(', ');
  const member = `EXISTS (SELECT 1 FROM main.memberships AS m WHERE m.audience_id = ? AND m.profile_id = p.id AND m.status IN (${statuses}))`;
  let result: DefinitionChangeResult;
  sqlite.exec('BEGIN');
  try {
    const sampler = openSampler(conn, sandboxId, plan.seed, {
      sql: `(${predicate.sql}) OR ${member}`,
      params: [...predicate.params, audienceId],
    });
    const classify = sqlite.prepare(
      `SELECT (${predicate.sql}) AS q, ${member} AS m FROM main.profiles AS p WHERE p.id IN (SELECT value FROM json_each(?))`,
    );
    const { population } = sampler;
    const counts = { read: 0, join: 0, leave: 0, stay: 0 };
    const estimates = (final: boolean) => {
      const of = (qualified: number) =>
        estimateFromSample({ read: counts.read, qualified, population, namespaces: {} }, plan.confidenceLevel, final);
      return { wouldJoin: of(counts.join), wouldLeave: of(counts.leave), wouldStay: of(counts.stay) };
    };
    const tight = (e: ReturnType<typeof estimates>) =>
      Object.values(e).every(
        (x) => x.confidenceInterval.high - x.confidenceInterval.low <= 2 * TIGHT_ENOUGH * population,
      );
    let chunk = FIRST_CHUNK;
    try {
      while (counts.read < population) {
        if (ctx.cancelled()) throw new Cancelled();
        const { read, hits } = sampler.next(Math.min(chunk, population - counts.read));
        if (read === 0) break;
        for (const row of classify.all(...predicate.params, audienceId, JSON.stringify(hits)) as {
          q: number;
          m: number;
        }[]) {
          if (row.q && row.m) counts.stay++;
          else if (row.q) counts.join++;
          else if (row.m) counts.leave++;
        }
        counts.read += read;
        const e = estimates(false);
        ctx.progress({
          done: counts.read,
          total: population,
          wouldJoin: toCount(e.wouldJoin),
          wouldLeave: toCount(e.wouldLeave),
          wouldStay: toCount(e.wouldStay),
        });
        if (tight(e)) break;
        chunk = Math.min(chunk * 2, MAX_CHUNK);
      }
    } finally {
      sampler.close();
    }
    if (ctx.cancelled()) throw new Cancelled();
    // The exact sets: the new expression's profiles (SQL engine) against the stored members.
    const all = compileToSql(checked, { now, sandboxId });
    const qualifying = sqlite
      .prepare(`SELECT id FROM (${all.sql}) ORDER BY id`)
      .pluck()
      .all(...all.params) as number[];
    const members = new Set(currentMembers(conn, audienceId));
    const next = new Set(qualifying);
    const join = qualifying.filter((id) => !members.has(id));
    const leave = [...members].filter((id) => !next.has(id)).sort((a, b) => a - b);
    const stay = qualifying.length - join.length;
    result = {
      wouldJoin: exactCount(join.length),
      wouldLeave: exactCount(leave.length),
      wouldStay: exactCount(stay),
      profilesRead: population,
      joinSample: join.slice(0, SAMPLE_SIZE),
      leaveSample: leave.slice(0, SAMPLE_SIZE),
      affectedDependents: affectedDependents(conn, plan, qualifying),
    };
    ctx.progress({
      done: population,
      total: population,
      wouldJoin: result.wouldJoin,
      wouldLeave: result.wouldLeave,
      wouldStay: result.wouldStay,
    });
  } finally {
    sqlite.exec('COMMIT');
    sqlite.exec('DROP TABLE IF EXISTS temp.memberships');
  }
  ctx.finish(() => ({ result, units: result.profilesRead }));
};
export default definitionChangeTask;

function currentMembers(conn: Connection, audienceId: number): number[] {
  return conn.sqlite
    .prepare(
      `SELECT profile_id FROM main.memberships WHERE audience_id = ? AND status IN (SELECT value FROM json_each(?)) ORDER BY profile_id`,
    )
    .pluck()
    .all(audienceId, JSON.stringify(CURRENT_STATUSES)) as number[];
}

/**
 * Dependents whose members would change: each is evaluated at `now` against the stored
 * memberships and again with this audience's members replaced by `qualifying` (a temp
 * `memberships` table shadows the stored one, as in a segment job), so a dependent that is
 * merely stale does not count. Only direct dependents are followed.
 */
function affectedDependents(conn: Connection, plan: DefinitionChangePlan, qualifying: number[]): AffectedDependent[] {
  const { sqlite } = conn;
  const out: AffectedDependent[] = [];
  for (const dep of plan.dependents) {
    const { checked } = checkExpression(conn, plan.sandboxId, { format: 'PQL_TEXT', value: dep.expressionText });
    const query = compileToSql(checked, { now: plan.now, sandboxId: plan.sandboxId });
    const run = () =>
      new Set(
        sqlite
          .prepare(`SELECT id FROM (${query.sql})`)
          .pluck()
          .all(...query.params) as number[],
      );
    sqlite.exec('DROP TABLE IF EXISTS temp.memberships');
    const before = run();
    sqlite.exec(
      'CREATE TEMP TABLE memberships (sandbox_id INTEGER, audience_id INTEGER NOT NULL, profile_id INTEGER NOT NULL, status TEXT NOT NULL, payload TEXT, PRIMARY KEY (audience_id, profile_id)) WITHOUT ROWID',
    );
    const referenced = [...checked.audiences.values()].filter((id) => id !== plan.audienceId);
    sqlite
      .prepare(
        `INSERT INTO temp.memberships SELECT sandbox_id, audience_id, profile_id, status, payload FROM main.memberships
         WHERE audience_id IN (SELECT value FROM json_each(?)) AND status IN (SELECT value FROM json_each(?))`,
      )
      .run(JSON.stringify(referenced), JSON.stringify(CURRENT_STATUSES));
    sqlite
      .prepare(`INSERT INTO temp.memberships SELECT ?, ?, value, ${statusSql('REALIZED')}, NULL FROM json_each(?)`)
      .run(plan.sandboxId, plan.audienceId, JSON.stringify(qualifying));
    const after = run();
    sqlite.exec('DROP TABLE IF EXISTS temp.memberships');
    const wouldJoin = [...after].filter((id) => !before.has(id)).length;
    const wouldLeave = [...before].filter((id) => !after.has(id)).length;
    if (wouldJoin > 0 || wouldLeave > 0) out.push({ definitionId: dep.definitionId, wouldJoin, wouldLeave });
  }
  return out;
}
