import type { Connection } from '../../db/index.js';
import type { CheckedExpression } from '../../pql/index.js';
import { compilePredicate, compileToSql, requiredAudiences } from '../../pql/index.js';
import { checkExpressionSync } from '../expressions.js';
import { Cancelled } from '../jobs/cancelled.js';
import type { JobTask } from '../jobs/task.js';
import { CURRENT_STATUSES_SQL, statusSql } from '../membership-statuses.js';
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
  /** Definitions that read the audience through inSegment, directly or not, in dependency order. */
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
export const TIGHT_ENOUGH = 0.02;
export const FIRST_CHUNK = 1_000;
/** The only random page before a cheap exact count (as a preview reads it: `exactIsCheap`). */
export const ROUGH_CHUNK = 250;
/** An exact statement that starts from stored audiences reading at most this many members is cheap. */
export const CHEAP_MEMBERS = 1_000_000;
export const MAX_CHUNK = 50_000;
export const SAMPLE_SIZE = 100;

export const toCount = (e: Estimate): CountEstimate => ({
  value: e.estimatedSize,
  low: e.confidenceInterval.low,
  high: e.confidenceInterval.high,
  exact: e.exact,
});

export const exactCount = (n: number): CountEstimate => ({ value: n, low: n, high: n, exact: true });

/**
 * The running counts of the random-order reading, and when to stop it: the same on SQLite (this
 * task) and on a cluster node (cluster/cluster-dry-run.ts), which differ only in their reads.
 */
export class ChangeCounts {
  read = 0;
  join = 0;
  leave = 0;
  stay = 0;
  private chunk: number;

  constructor(
    readonly population: number,
    private readonly confidenceLevel: number,
    private readonly exactIsCheap: boolean,
  ) {
    this.chunk = exactIsCheap ? ROUGH_CHUNK : FIRST_CHUNK;
  }

  readAll(): boolean {
    return this.read >= this.population;
  }

  /** How many profiles the next page reads. */
  nextChunk(): number {
    return Math.min(this.chunk, this.population - this.read);
  }

  /** A page read: `read` profiles, and per sampled profile whether it qualifies (q) and is a member (m). */
  add(read: number, rows: readonly { q: number | boolean; m: number | boolean }[]): void {
    for (const row of rows) {
      if (row.q && row.m) this.stay++;
      else if (row.q) this.join++;
      else if (row.m) this.leave++;
    }
    this.read += read;
  }

  estimates(final: boolean): { wouldJoin: Estimate; wouldLeave: Estimate; wouldStay: Estimate } {
    const of = (qualified: number) =>
      estimateFromSample(
        { read: this.read, qualified, population: this.population, namespaces: {} },
        this.confidenceLevel,
        final,
      );
    return { wouldJoin: of(this.join), wouldLeave: of(this.leave), wouldStay: of(this.stay) };
  }

  progress(): DefinitionChangeProgress {
    const e = this.estimates(false);
    return {
      done: this.read,
      total: this.population,
      wouldJoin: toCount(e.wouldJoin),
      wouldLeave: toCount(e.wouldLeave),
      wouldStay: toCount(e.wouldStay),
    };
  }

  /** Whether the reading can stop (the exact phase is cheap, or every interval is tight); else the next page doubles. */
  enough(): boolean {
    const e = this.estimates(false);
    const tight = Object.values(e).every(
      (x) => x.confidenceInterval.high - x.confidenceInterval.low <= 2 * TIGHT_ENOUGH * this.population,
    );
    if (this.exactIsCheap || tight) return true;
    this.chunk = Math.min(this.chunk * 2, MAX_CHUNK);
    return false;
  }
}

/** Whether the exact phase is cheap enough to follow one rough page (as a preview reads it: `exactIsCheap`). */
export function exactIsCheap(all: ReturnType<typeof compileToSql>, storedMembers: number): boolean {
  return (
    all.startsFromAudiences !== undefined && storedMembers * (1 + all.startsFromAudiences.filters) <= CHEAP_MEMBERS
  );
}

/** The dry run's result from the exact sets. */
export function changeResult(
  sides: { join: number[]; leave: number[]; stay: number },
  population: number,
  affectedDependents: AffectedDependent[],
): DefinitionChangeResult {
  return {
    wouldJoin: exactCount(sides.join.length),
    wouldLeave: exactCount(sides.leave.length),
    wouldStay: exactCount(sides.stay),
    profilesRead: population,
    joinSample: sides.join.slice(0, SAMPLE_SIZE),
    leaveSample: sides.leave.slice(0, SAMPLE_SIZE),
    affectedDependents,
  };
}

/** The last progress report: the exact counts, the whole store read. */
export function finalProgress(result: DefinitionChangeResult): DefinitionChangeProgress {
  return {
    done: result.profilesRead,
    total: result.profilesRead,
    wouldJoin: result.wouldJoin,
    wouldLeave: result.wouldLeave,
    wouldStay: result.wouldStay,
  };
}

/**
 * The dry run's task. Inside one read snapshot: a seeded random permutation of the profiles is
 * read in chunks, each profile classed as joining (qualifies, not a member), leaving (a member,
 * no longer qualifies) or staying, with running estimates and intervals for the three counts
 * (the preview sampler and estimator); once the intervals are tight, the exact sets come from
 * the SQL engine, and dependents (definitions reading this audience through inSegment,
 * directly or through other dependents) are evaluated on simulated members with the change
 * and without.
 * Nothing is written: the result rides on the job.
 */
const definitionChangeTask: JobTask<'DEFINITION_CHANGE_PREVIEW', DefinitionChangePlan> = (conn, plan, ctx) => {
  const { sqlite } = conn;
  const { sandboxId, now, audienceId } = plan;
  const { checked } = checkExpressionSync(
    conn,
    sandboxId,
    { format: 'PQL_TEXT', value: plan.expressionText },
    { definition: true, selfAudienceId: audienceId },
  );
  const predicate = compilePredicate(checked, { now });
  const member = `EXISTS (SELECT 1 FROM main.memberships AS m WHERE m.audience_id = ? AND m.profile_id = p.id AND m.status IN ${CURRENT_STATUSES_SQL})`;
  // The whole-store statement, as a segment job runs it. When it starts from stored audiences
  // and reads few members, the exact counts come sooner than a ±2 % sample would: one small
  // page gives a first, rough estimate and the exact phase follows (as a preview does).
  const all = compileToSql(checked, { now, sandboxId });
  const cheap = exactIsCheap(all, membersOf(conn, [...checked.audiences.values()]));
  let result: DefinitionChangeResult;
  sqlite.exec('BEGIN');
  try {
    // The sampler only draws the order; each page is classed by one statement, so the
    // expression is evaluated once per profile read.
    const sampler = openSampler(conn, sandboxId, plan.seed, { sql: '1', params: [] });
    const classify = sqlite.prepare(
      `SELECT (${predicate.sql}) AS q, ${member} AS m FROM main.profiles AS p WHERE p.id IN (SELECT value FROM json_each(?))`,
    );
    const { population } = sampler;
    const counts = new ChangeCounts(population, plan.confidenceLevel, cheap);
    try {
      while (!counts.readAll()) {
        if (ctx.cancelled()) throw new Cancelled();
        const { read, hits } = sampler.next(counts.nextChunk());
        if (read === 0) break;
        counts.add(
          read,
          classify.all(...predicate.params, audienceId, JSON.stringify(hits)) as { q: number; m: number }[],
        );
        ctx.progress(counts.progress());
        if (counts.enough()) break;
      }
    } finally {
      sampler.close();
    }
    if (ctx.cancelled()) throw new Cancelled();
    // The exact sets: the new expression's profiles (the SQL engine's whole-store statement,
    // as a segment job runs it) merged with the stored members, both in id order.
    const qualifying = ascending(
      JSON.parse(
        sqlite
          .prepare(`SELECT json_group_array(id) FROM (${all.sql})`)
          .pluck()
          .get(...all.params) as string,
      ) as number[],
    );
    const sides = compare(qualifying, currentMembers(conn, audienceId));
    result = changeResult(sides, population, affectedDependents(conn, plan, sides.join, sides.leave));
    ctx.progress(finalProgress(result));
  } finally {
    sqlite.exec('COMMIT');
    sqlite.exec('DROP TABLE IF EXISTS temp.memberships');
  }
  ctx.finish(() => ({ result, units: result.profilesRead }));
};
export default definitionChangeTask;

/** The ids sorted ascending (a statement that starts from a set of ids may not return them in order). */
export function ascending(ids: number[]): number[] {
  for (let i = 1; i < ids.length; i++) if (ids[i - 1]! > ids[i]!) return ids.sort((a, b) => a - b);
  return ids;
}

/** Joining (in `next` only), leaving (in `now` only) and the count in both, by one merge of two ascending lists. */
export function compare(
  next: readonly number[],
  now: readonly number[],
): { join: number[]; leave: number[]; stay: number } {
  const join: number[] = [];
  const leave: number[] = [];
  let stay = 0;
  let i = 0;
  let j = 0;
  while (i < next.length || j < now.length) {
    if (j === now.length || (i < next.length && next[i]! < now[j]!)) join.push(next[i++]!);
    else if (i === next.length || now[j]! < next[i]!) leave.push(now[j++]!);
    else {
      stay++;
      i++;
      j++;
    }
  }
  return { join, leave, stay };
}

function currentMembers(conn: Connection, audienceId: number): number[] {
  // One JSON array parsed at once: a row per member cost more than the statement's own scan.
  return JSON.parse(
    conn.sqlite
      .prepare(
        `SELECT json_group_array(profile_id) FROM (SELECT profile_id FROM main.memberships
         WHERE audience_id = ? AND status IN ${CURRENT_STATUSES_SQL} ORDER BY profile_id)`,
      )
      .pluck()
      .get(audienceId) as string,
  ) as number[];
}

/** The profiles that are simulated members of every one of `audienceIds` (at least one). */
export function membersOfAll(
  simulated: Map<number, readonly number[]>,
  audienceIds: readonly number[],
): readonly number[] {
  const [first, ...rest] = audienceIds.map((id) => simulated.get(id) ?? []).sort((a, b) => a.length - b.length);
  if (rest.length === 0) return first!;
  const others = rest.map((ids) => new Set(ids));
  return first!.filter((id) => others.every((set) => set.has(id)));
}

/** Current members of the audiences, by their cached sizes. */
function membersOf(conn: Connection, audienceIds: readonly number[]): number {
  if (audienceIds.length === 0) return 0;
  return conn.sqlite
    .prepare('SELECT coalesce(sum(size), 0) FROM main.audiences WHERE id IN (SELECT value FROM json_each(?))')
    .pluck()
    .get(JSON.stringify(audienceIds)) as number;
}

/**
 * Dependents whose members would change. Two simulations at `now`, in dependency order: one
 * with this audience's stored members, one with the new ones; in each, every dependent is
 * evaluated with the members the simulation gave the dependents before it (a temp
 * `memberships` table shadows the stored one, as in a segment job), so a change that reaches a
 * dependent of a dependent is seen, and a dependent that is merely stale does not count (its
 * staleness is the same in both). An expression reads one profile's own data and memberships,
 * so a dependent's two results can differ only where an audience it reads differs, and by
 * induction down the chain only on the profiles joining or leaving this audience: both
 * simulations evaluate every dependent on those profiles alone, not on the whole store.
 *
 * This is the bookkeeping of both simulations, the same on SQLite and on a cluster node
 * (cluster/cluster-dry-run.ts); each side does the reads between its calls.
 */
export class DependentSimulation {
  /** The profiles joining or leaving this audience: the only ones a dependent can change on. */
  readonly changed: readonly number[];
  readonly affected: AffectedDependent[] = [];
  // On the changed profiles this audience's stored members are the leavers, its new ones the joiners.
  private readonly sims: Record<'before' | 'after', Map<number, readonly number[]>>;

  constructor(audienceId: number, join: readonly number[], leave: readonly number[]) {
    this.changed = [...join, ...leave];
    this.sims = { before: new Map([[audienceId, leave]]), after: new Map([[audienceId, join]]) };
  }

  /**
   * What a dependent reads: the audiences whose stored rows it needs on the changed profiles
   * (the same in both simulations), those whose simulated members swap between the two, and
   * the simulated audiences it requires (a top-level `inSegment` conjunct): no one outside
   * their simulated members can qualify, so only those are evaluated.
   */
  reads(checked: CheckedExpression): { stored: number[]; simulated: number[]; required: number[] } {
    const reads = [...new Set(checked.audiences.values())];
    const { before } = this.sims;
    return {
      stored: reads.filter((id) => !before.has(id)),
      simulated: reads.filter((id) => before.has(id)),
      required: requiredAudiences(checked).filter((id) => before.has(id)),
    };
  }

  /** A simulated audience's members in one simulation. */
  members(sim: 'before' | 'after', audienceId: number): readonly number[] {
    return this.sims[sim].get(audienceId) ?? [];
  }

  /** The profiles to evaluate a dependent on in one simulation. */
  candidates(sim: 'before' | 'after', required: readonly number[]): readonly number[] {
    return required.length === 0 ? this.changed : membersOfAll(this.sims[sim], required);
  }

  /** A dependent's qualifying profiles in the two simulations: its simulated members from now on. */
  record(dep: { definitionId: number; audienceId: number }, was: number[], will: number[]): void {
    this.sims.before.set(dep.audienceId, was);
    this.sims.after.set(dep.audienceId, will);
    const wasSet = new Set(was);
    const willSet = new Set(will);
    const wouldJoin = will.filter((id) => !wasSet.has(id)).length;
    const wouldLeave = was.filter((id) => !willSet.has(id)).length;
    if (wouldJoin > 0 || wouldLeave > 0) this.affected.push({ definitionId: dep.definitionId, wouldJoin, wouldLeave });
  }
}

/** The dependents whose members would change (DependentSimulation), read on the task's connection. */
function affectedDependents(
  conn: Connection,
  plan: DefinitionChangePlan,
  join: readonly number[],
  leave: readonly number[],
): AffectedDependent[] {
  if (plan.dependents.length === 0 || join.length + leave.length === 0) return [];
  const { sqlite } = conn;
  const simulation = new DependentSimulation(plan.audienceId, join, leave);
  const changed = JSON.stringify(simulation.changed);
  sqlite.exec('DROP TABLE IF EXISTS temp.memberships');
  sqlite.exec(
    'CREATE TEMP TABLE memberships (sandbox_id INTEGER, audience_id INTEGER NOT NULL, profile_id INTEGER NOT NULL, status TEXT NOT NULL, payload TEXT, PRIMARY KEY (audience_id, profile_id)) WITHOUT ROWID',
  );
  const clear = sqlite.prepare('DELETE FROM temp.memberships');
  const clearAudience = sqlite.prepare('DELETE FROM temp.memberships WHERE audience_id = ?');
  // A primary-key probe per (audience, changed profile), never a scan of an audience's members.
  const copyStored = sqlite.prepare(
    `INSERT INTO temp.memberships SELECT m.sandbox_id, m.audience_id, m.profile_id, m.status, m.payload
     FROM json_each(?) AS a CROSS JOIN json_each(?) AS c
     CROSS JOIN main.memberships AS m ON m.audience_id = a.value AND m.profile_id = c.value
     WHERE m.status IN ${CURRENT_STATUSES_SQL}`,
  );
  const insert = sqlite.prepare(
    `INSERT INTO temp.memberships SELECT ?, ?, value, ${statusSql('REALIZED')}, NULL FROM json_each(?)`,
  );
  try {
    for (const dep of plan.dependents) {
      const { checked } = checkExpressionSync(conn, plan.sandboxId, { format: 'PQL_TEXT', value: dep.expressionText });
      const predicate = compilePredicate(checked, { now: plan.now });
      const evaluate = sqlite
        .prepare(
          `SELECT p.id FROM main.profiles AS p WHERE p.id IN (SELECT value FROM json_each(?)) AND (${predicate.sql})`,
        )
        .pluck();
      const reads = simulation.reads(checked);
      // The stored rows are the same in both simulations; only the simulated audiences' rows swap.
      clear.run();
      copyStored.run(JSON.stringify(reads.stored), changed);
      const run = (sim: 'before' | 'after') => {
        for (const id of reads.simulated) {
          clearAudience.run(id);
          insert.run(plan.sandboxId, id, JSON.stringify(simulation.members(sim, id)));
        }
        return evaluate.all(
          JSON.stringify(simulation.candidates(sim, reads.required)),
          ...predicate.params,
        ) as number[];
      };
      const was = run('before');
      const will = run('after');
      simulation.record(dep, was, will);
    }
  } finally {
    sqlite.exec('DROP TABLE IF EXISTS temp.memberships');
  }
  return simulation.affected;
}
