/**
 * Conditions as sets of profile ids. Some conditions are answered by an uncorrelated query
 * that never reads a profile row: `inSegment` (the audience's current members) and the event
 * conditions to-sql-hoist.ts turns into one grouped pass over events. Combined with and / or /
 * not they stay sets (INTERSECT, UNION, EXCEPT), and a statement can start from the ids
 * instead of scanning every profile of the sandbox, the way a hand-written query over
 * memberships would:
 *
 *   inSegment("a") or (inSegment("b") and not inSegment("c"))
 *   → SELECT id FROM (a) UNION SELECT id FROM (SELECT id FROM (b) EXCEPT SELECT id FROM (c))
 *
 * A conjunct that reads nothing of the profile but `p.id` (a correlated count of its events)
 * filters such a set without reading profile rows either. Both rest on the store's invariant
 * that membership and event rows belong to an existing profile of their own sandbox (deleting
 * or merging a profile moves or deletes them in the same transaction).
 */
import { dialect, notKnown } from './dialect.js';
import { param, Sql, sameExpression, sql } from './fragment.js';
import {
  type ConditionPlans,
  type DrivenIds,
  type EventGroup,
  type IdSets,
  PROFILE_ALIAS,
  type ScalarValue,
  type SumTest,
  sumTestSql,
} from './values.js';

/** A group's id sets: those it holds for when it never holds without events, else those it fails for. */
export function groupSets(g: EventGroup): IdSets {
  return g.empty ? { excluded: g.query(notKnown(g.having)), group: g } : { ids: g.query(g.having), group: g };
}

/** `op` of two tests of the same events, in one group (b's alias renamed to a's). */
function mergeGroups(a: EventGroup, b: EventGroup, op: 'AND' | 'OR'): EventGroup | undefined {
  if (a.key !== b.key) return undefined;
  // Compiler-made text: an alias is a word, followed by a dot where it is used.
  const rename = (s: Sql) => new Sql(s.text.replace(new RegExp(`\\b${b.alias}\\.`, 'g'), `${a.alias}.`), s.params);
  const empty = op === 'AND' ? a.empty && b.empty : a.empty || b.empty;
  // Two tests of the same sum (`S > 50 and S < 500`) recount it once, near either bound.
  if (a.sum && b.sum && sameExpression(a.sum.exact, rename(b.sum.exact))) {
    const sum: SumTest = {
      near: sql`(${a.sum.near}) OR (${rename(b.sum.near)})`,
      decided: sql`(${a.sum.decided}) ${op} (${rename(b.sum.decided)})`,
      onExact: sql`(${a.sum.onExact}) ${op} (${rename(b.sum.onExact)})`,
      exact: a.sum.exact,
    };
    return { ...a, having: sumTestSql(sum), empty, sum };
  }
  return { ...a, having: sql`(${a.having}) ${op} (${rename(b.having)})`, empty, sum: undefined };
}

type SetOp = 'UNION' | 'INTERSECT' | 'EXCEPT';

function combine(a: Sql, op: SetOp, b: Sql): Sql {
  // SQLite's compound selects associate to the left and take no parentheses: nest through FROM.
  const d = dialect();
  return sql`SELECT id FROM ${d.derived(a)} ${op} SELECT id FROM ${d.derived(b)}`;
}

/** References to the profile row other than its id. Compiler-made text only, so a regex is enough. */
const PROFILE_COLUMN = new RegExp(`\\b${PROFILE_ALIAS}\\.(?!id\\b)`);

/** Whether a condition reads nothing of the profile row but its id. */
function idOnly(v: ScalarValue): boolean {
  return !PROFILE_COLUMN.test((v.plans?.topLevel ?? v.sql).text);
}

function drivenOf(v: ScalarValue): DrivenIds | undefined {
  const ids = v.plans?.idSets?.ids;
  return v.plans?.driven ?? (ids ? { ids, filters: [] } : undefined);
}

/** `a and b` on the id sets alone: the ids both hold for, those either fails for. */
function meet(sa: IdSets, sb: IdSets): IdSets | undefined {
  const ids =
    sa.ids && sb.ids
      ? combine(sa.ids, 'INTERSECT', sb.ids)
      : sa.ids && sb.excluded
        ? combine(sa.ids, 'EXCEPT', sb.excluded)
        : sb.ids && sa.excluded
          ? combine(sb.ids, 'EXCEPT', sa.excluded)
          : undefined;
  const excluded = sa.excluded && sb.excluded ? combine(sa.excluded, 'UNION', sb.excluded) : undefined;
  return ids || excluded ? { ids, excluded, probe: sa.probe || sb.probe } : undefined;
}

/** The sets of `not c` from those of c. */
function swap(s: IdSets): IdSets {
  return { ids: s.excluded, excluded: s.ids, probe: s.probe };
}

export function notSets(v: ScalarValue): IdSets | undefined {
  const s = v.plans?.idSets;
  if (!s) return undefined;
  if (s.group) {
    const g = s.group;
    return { ...groupSets({ ...g, having: notKnown(g.having), empty: !g.empty, sum: undefined }), probe: s.probe };
  }
  return swap(s);
}

/** The plans of `a and b` from those of a and b (its `topLevel` is the caller's). */
export function andSets(a: ScalarValue, b: ScalarValue): Pick<ConditionPlans, 'idSets' | 'driven'> {
  const sa = a.plans?.idSets ?? {};
  const sb = b.plans?.idSets ?? {};
  const merged = sa.group && sb.group && mergeGroups(sa.group, sb.group, 'AND');
  if (merged) return { idSets: { ...groupSets(merged), probe: sa.probe || sb.probe } };
  // A cheap set filtered by the other side's probe beats intersecting with its pass over the events.
  if (sb.probe && !sa.probe && drivenOf(a) && idOnly(b)) {
    const da = drivenOf(a)!;
    return { driven: { ids: da.ids, filters: [...da.filters, b.plans?.topLevel ?? b.sql] } };
  }
  if (sa.probe && !sb.probe && drivenOf(b) && idOnly(a)) {
    const db = drivenOf(b)!;
    return { driven: { ids: db.ids, filters: [...db.filters, a.plans?.topLevel ?? a.sql] } };
  }
  const both = meet(sa, sb);
  let driven: DrivenIds | undefined;
  if (both?.ids === undefined) {
    const da = drivenOf(a);
    const db = drivenOf(b);
    if (da && db) driven = { ids: combine(da.ids, 'INTERSECT', db.ids), filters: [...da.filters, ...db.filters] };
    else if (da && sb.excluded) driven = { ids: combine(da.ids, 'EXCEPT', sb.excluded), filters: da.filters };
    else if (db && sa.excluded) driven = { ids: combine(db.ids, 'EXCEPT', sa.excluded), filters: db.filters };
    else if (da && idOnly(b)) driven = { ids: da.ids, filters: [...da.filters, b.plans?.topLevel ?? b.sql] };
    else if (db && idOnly(a)) driven = { ids: db.ids, filters: [...db.filters, a.plans?.topLevel ?? a.sql] };
  }
  return { idSets: both, driven };
}

export function orSets(a: ScalarValue, b: ScalarValue): IdSets | undefined {
  const sa = a.plans?.idSets ?? {};
  const sb = b.plans?.idSets ?? {};
  const merged = sa.group && sb.group && mergeGroups(sa.group, sb.group, 'OR');
  if (merged) return { ...groupSets(merged), probe: sa.probe || sb.probe };
  // a or b = not (not a and not b)
  const neither = meet(swap(sa), swap(sb));
  return neither && swap(neither);
}

/**
 * Where a statement over the condition's profiles can start instead of a scan of the profiles
 * table. A condition known only by the profiles it fails for starts from all of the sandbox's
 * ids (the (sandbox_id, id) index) less those, when failing is a pass over events and holding
 * would otherwise be a probe per profile.
 */
export function drivingIds(v: ScalarValue, sandboxId: number): DrivenIds | undefined {
  const driven = drivenOf(v);
  const sets = v.plans?.idSets;
  if (driven || !sets?.excluded || !sets.probe) return driven;
  const all = sql`SELECT u.id AS id FROM profiles AS u WHERE u.sandbox_id = ${param(sandboxId)}`;
  return { ids: combine(all, 'EXCEPT', sets.excluded), filters: [] };
}
