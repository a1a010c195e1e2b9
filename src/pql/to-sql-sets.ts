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
import { PROFILE_ALIAS } from './to-sql-context.js';
import { type ScalarValue, type Sql, sql } from './to-sql-fragment.js';

/**
 * Each an uncorrelated query of distinct ids in one column `id`: `ids` the profiles for which
 * the condition holds, `excluded` those for which it does not (false or missing).
 */
export interface IdSets {
  ids?: Sql;
  excluded?: Sql;
}

/** A start for a statement: a set of ids, and conditions on them that read only `p.id`. */
export interface DrivenIds {
  ids: Sql;
  filters: Sql[];
}

type SetOp = 'UNION' | 'INTERSECT' | 'EXCEPT';

function combine(a: Sql, op: SetOp, b: Sql): Sql {
  // SQLite's compound selects associate to the left and take no parentheses: nest through FROM.
  return sql`SELECT id FROM (${a}) ${op} SELECT id FROM (${b})`;
}

/** References to the profile row other than its id. Compiler-made text only, so a regex is enough. */
const PROFILE_COLUMN = new RegExp(`\\b${PROFILE_ALIAS}\\.(?!id\\b)`);

/** Whether a condition reads nothing of the profile row but its id. */
function idOnly(v: ScalarValue): boolean {
  return !PROFILE_COLUMN.test((v.topLevel ?? v.sql).text);
}

function drivenOf(v: ScalarValue): DrivenIds | undefined {
  return v.driven ?? (v.idSets?.ids ? { ids: v.idSets.ids, filters: [] } : undefined);
}

export function notSets(v: ScalarValue): IdSets | undefined {
  if (!v.idSets) return undefined;
  return { ids: v.idSets.excluded, excluded: v.idSets.ids };
}

export function andSets(a: ScalarValue, b: ScalarValue): { idSets?: IdSets; driven?: DrivenIds } {
  const sa = a.idSets ?? {};
  const sb = b.idSets ?? {};
  const ids =
    sa.ids && sb.ids
      ? combine(sa.ids, 'INTERSECT', sb.ids)
      : sa.ids && sb.excluded
        ? combine(sa.ids, 'EXCEPT', sb.excluded)
        : sb.ids && sa.excluded
          ? combine(sb.ids, 'EXCEPT', sa.excluded)
          : undefined;
  const excluded = sa.excluded && sb.excluded ? combine(sa.excluded, 'UNION', sb.excluded) : undefined;
  let driven: DrivenIds | undefined;
  if (ids === undefined) {
    const da = drivenOf(a);
    const db = drivenOf(b);
    if (da && db) driven = { ids: combine(da.ids, 'INTERSECT', db.ids), filters: [...da.filters, ...db.filters] };
    else if (da && sb.excluded) driven = { ids: combine(da.ids, 'EXCEPT', sb.excluded), filters: da.filters };
    else if (db && sa.excluded) driven = { ids: combine(db.ids, 'EXCEPT', sa.excluded), filters: db.filters };
    else if (da && idOnly(b)) driven = { ids: da.ids, filters: [...da.filters, b.topLevel ?? b.sql] };
    else if (db && idOnly(a)) driven = { ids: db.ids, filters: [...db.filters, a.topLevel ?? a.sql] };
  }
  return { idSets: ids || excluded ? { ids, excluded } : undefined, driven };
}

export function orSets(a: ScalarValue, b: ScalarValue): IdSets | undefined {
  const sa = a.idSets ?? {};
  const sb = b.idSets ?? {};
  const ids = sa.ids && sb.ids ? combine(sa.ids, 'UNION', sb.ids) : undefined;
  const excluded =
    sa.excluded && sb.excluded
      ? combine(sa.excluded, 'INTERSECT', sb.excluded)
      : sa.excluded && sb.ids
        ? combine(sa.excluded, 'EXCEPT', sb.ids)
        : sb.excluded && sa.ids
          ? combine(sb.excluded, 'EXCEPT', sa.ids)
          : undefined;
  return ids || excluded ? { ids, excluded } : undefined;
}

/** Where a statement over the condition's profiles can start instead of the profiles table. */
export function drivingIds(v: ScalarValue): DrivenIds | undefined {
  return drivenOf(v);
}
