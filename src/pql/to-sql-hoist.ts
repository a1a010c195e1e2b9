/**
 * Event conditions as uncorrelated sub-queries. A filter over the profile's events whose
 * conditions read nothing but the event itself (no `^` field, no outer variable, no CHAIN
 * label) does not depend on the profile row except through `profile_id`, so instead of one
 * correlated probe per profile it can be one pass over the sandbox's events:
 *
 *   xEvent[eventType = ? and timestamp occurs …].count() >= 2
 *   → p.id IN (SELECT e1.profile_id FROM events AS e1 WHERE e1.sandbox_id = ? AND … GROUP BY e1.profile_id HAVING count(*) >= ?)
 *
 * SQLite materialises such an IN list once per statement, whatever the nesting, and the
 * (sandbox_id, event_type, ts) index finds the rows. Every rewrite here is an identity:
 * where a comparison also holds for a profile with no matching events (`count() = 0`), the
 * complement is taken instead. It relies on one invariant of the store: an event's sandbox is
 * its profile's sandbox.
 */
import type { CompareOp } from './ast.js';
import { compareOp } from './runtime.js';
import { type CompileContext, PROFILE_ALIAS } from './to-sql-context.js';
import {
  type CollectionValue,
  type EventAggregate,
  joinSql,
  param,
  predicate,
  raw,
  type ScalarValue,
  type Sql,
  sql,
  TRUE,
} from './to-sql-fragment.js';

/** References to table aliases in compiler-made SQL text (`p.`, `e3.`, `j4.`, `d5.`, `m6.`); user text is never in it. */
const ALIAS_REF = /\b(p|[ejdm]\d+)\./g;
const ALIAS_DEF = /\bAS ([ejdm]\d+)\b/g;

/** Whether `conds` read only the row `alias` and tables they introduce themselves. */
function selfContained(conds: readonly Sql[], alias: string): boolean {
  const text = conds.map((c) => c.text).join(' ');
  const defined = new Set([alias, ...Array.from(text.matchAll(ALIAS_DEF), (m) => m[1]!)]);
  for (const m of text.matchAll(ALIAS_REF)) if (!defined.has(m[1]!)) return false;
  return true;
}

/**
 * The top-level AND terms of a condition (through parentheses that hold only ANDs): the
 * terms SQLite's planner can use for an index. Compiler-made text has no string literals, so
 * counting parentheses is enough.
 */
function conjuncts(text: string): string[] {
  const { parts, hasOr } = splitAnd(text);
  if (hasOr) return [text];
  if (parts.length > 1) return parts.flatMap(conjuncts);
  const inner = text.slice(1, -1);
  if (text.startsWith('(') && text.endsWith(')') && balanced(inner) && !splitAnd(inner).hasOr) return conjuncts(inner);
  return [text];
}

/** `text` split at the ANDs outside parentheses, and whether an OR is outside them too. */
function splitAnd(text: string): { parts: string[]; hasOr: boolean } {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  let hasOr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (depth === 0 && text.startsWith(' AND ', i)) {
      parts.push(text.slice(start, i));
      start = i + 5;
    } else if (depth === 0 && text.startsWith(' OR ', i)) hasOr = true;
  }
  parts.push(text.slice(start));
  return { parts, hasOr };
}

function balanced(text: string): boolean {
  let depth = 0;
  for (const c of text) {
    if (c === '(') depth++;
    else if (c === ')' && --depth < 0) return false;
  }
  return depth === 0;
}

/** The events' `select` column(s); `distinct` when a profile with several such events must come once. */
type EventQuery = (select: string, tail?: Sql, distinct?: boolean) => Sql;

/** The events of `c` that also satisfy `extra`, as an uncorrelated query; undefined when they are tied to the profile row. */
export function hoistEvents(
  ctx: CompileContext,
  c: CollectionValue,
  extra: readonly Sql[] = [],
): EventQuery | undefined {
  if (c.events === undefined || ctx.sandboxId === undefined) return undefined;
  const { alias } = c.events;
  const conds = [...c.events.conds, ...extra];
  if (!selfContained(conds, alias)) return undefined;
  const terms = conds.flatMap((c) => conjuncts(c.text));
  const typed = terms.some((t) => t.startsWith(`${alias}.event_type = `) || t.startsWith(`${alias}.event_type IN (`));
  const windowed = terms.some((t) => new RegExp(`^${alias}\\.ts (BETWEEN|>|<|>=|<=) `).test(t));
  // Without statistics, a guess at the cheaper plan. A type and a time window make a narrow
  // range of the (sandbox_id, event_type, ts) index: one pass beats a probe per profile. With
  // no type, the per-profile probe reads every event of the profile and its payload anyway,
  // and one sequential pass over the table (NOT INDEXED: no index, not even one that would
  // hand DISTINCT or GROUP BY its rows in profile order at a random read each) beats it. A type
  // without a window is often most of the events; the correlated probe stops at the first match.
  if (typed && !windowed) return undefined;
  const where = joinSql([sql`${alias}.sandbox_id = ${param(ctx.sandboxId)}`, ...conds], ' AND ');
  const from = `events AS ${alias}${typed ? '' : ' NOT INDEXED'}`;
  return (select, tail, distinct) =>
    sql`SELECT ${distinct ? 'DISTINCT ' : ''}${alias}.${select} FROM ${from} WHERE ${where}${tail ?? raw('')}`;
}

/**
 * `p.id IN (ids)`, written `+p.id` so SQLite tests membership per profile row instead of
 * looping over the list to seek profiles: with two such lists it would nest the loops (a
 * cross product of both lists) rather than materialise each once. The ids are also the
 * condition's id set (to-sql-sets.ts): those it holds for, or with `negated` those it fails for;
 * `distinctIds` is the list without repeats where `ids` may have them (an IN list need not care).
 */
function profileIn(ids: Sql, negated = false, distinctIds: Sql = ids): ScalarValue {
  return {
    ...predicate(sql`+${PROFILE_ALIAS}.id ${negated ? 'NOT IN' : 'IN'} (${ids})`, false),
    idSets: negated ? { excluded: distinctIds } : { ids: distinctIds },
  };
}

/** `exists` over events (`some event satisfies cond`), hoisted when it can be. */
export function hoistExists(ctx: CompileContext, c: CollectionValue, cond: Sql): ScalarValue | undefined {
  const q = hoistEvents(ctx, c, [cond]);
  return q && profileIn(q('profile_id AS id'), false, q('profile_id AS id', undefined, true));
}

/** `forall` over events: no event fails cond (`counter` is that failure). */
export function hoistForall(ctx: CompileContext, c: CollectionValue, counter: Sql): ScalarValue | undefined {
  const q = hoistEvents(ctx, c, [counter]);
  return q && profileIn(q('profile_id AS id'), true, q('profile_id AS id', undefined, true));
}

const SQL_OP: Record<CompareOp, string> = { '=': '=', '!=': '<>', '<': '<', '<=': '<=', '>': '>', '>=': '>=' };

/** `aggregate op k` for an aggregate over events and a constant k; undefined when it stays correlated. */
export function hoistAggregateComparison(
  ctx: CompileContext,
  agg: EventAggregate,
  op: CompareOp,
  k: number,
): ScalarValue | undefined {
  const q = hoistEvents(ctx, agg.source);
  if (q === undefined) return undefined;
  const bound = param(k);
  const group = (having: Sql): Sql =>
    q('profile_id AS id', sql` GROUP BY ${agg.source.events!.alias}.profile_id HAVING ${having}`);
  switch (agg.fn) {
    case 'count': {
      const test = sql`count(*) ${SQL_OP[op]} ${bound}`;
      // A profile without matching events has count 0: when `0 op k` holds, select by complement.
      if (compareOp(op, 0, k)) return profileIn(group(sql`NOT (${test})`), true);
      return profileIn(group(test));
    }
    case 'min':
    case 'max':
      // Missing without events, so false for those profiles whatever op is.
      return profileIn(group(sql`${agg.fn}(${agg.input ?? TRUE}) ${SQL_OP[op]} ${bound}`));
    case 'sum':
    case 'average':
      // Kept correlated: the exact sum adds in (ts, id) order (runtime.KbnAccumulator), which
      // a grouped scan does not guarantee.
      return undefined;
  }
}
