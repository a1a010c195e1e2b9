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
import type { CompareOp } from '../language/ast.js';
import { compareOp } from '../runtime/index.js';
import type { CompileContext } from './context.js';
import { dialect, trueSql } from './dialect.js';
import { joinSql, param, raw, SQL_COMPARE, Sql, sql } from './fragment.js';
import { groupSets } from './sets.js';
import {
  type CollectionValue,
  type EventAggregate,
  type EventGroup,
  type IdSets,
  PROFILE_ALIAS,
  predicate,
  type ScalarValue,
  type SumTest,
  sumTestSql,
} from './values.js';

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
 * terms SQLite's planner can use for an index, and the terms PostgreSQL's fence sorts apart.
 */
function conjuncts(text: string): string[] {
  const { parts, hasOr } = splitAnd(text);
  if (hasOr) return [text];
  if (parts.length > 1) return parts.flatMap(conjuncts);
  const inner = text.slice(1, -1);
  if (text.startsWith('(') && text.endsWith(')') && balanced(inner) && !splitAnd(inner).hasOr) return conjuncts(inner);
  return [text];
}

/**
 * `s` split as `conjuncts` splits its text, each part with its own parameters: the parts keep
 * their order and every `?` of the compiler's text is a parameter (the dialect numbers them).
 */
function conjunctsOf(s: Sql): Sql[] {
  let next = 0;
  return conjuncts(s.text).map((text) => {
    const count = text.split('?').length - 1;
    const part = new Sql(text, s.params.slice(next, next + count));
    next += count;
    return part;
  });
}

/** The compiler's keywords that open and close a nesting level or pair with an AND, as whole words. */
const KEYWORD = /^(CASE|END|BETWEEN)\b/;

/**
 * `text` split at the ANDs outside parentheses and CASE … END, and whether an OR is outside
 * them too. The AND of `x BETWEEN lo AND hi` is not a conjunction, and a CASE (an `if()`, whose
 * branch may be a time window) is one term: cut there, PostgreSQL's fence (hoistEvents) would
 * put the pieces on either side of OFFSET 0. Quoted text (a type name, a collation) is skipped whole.
 */
function splitAnd(text: string): { parts: string[]; hasOr: boolean } {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  let hasOr = false;
  // BETWEENs at depth 0 still waiting for their AND.
  let between = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      // A doubled quote inside is an escaped one: the scan closes and reopens around it.
      const close = text.indexOf(c, i + 1);
      i = close < 0 ? text.length : close;
    } else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (/[A-Z]/.test(c) && !/\w/.test(text[i - 1] ?? ' ')) {
      const word = KEYWORD.exec(text.slice(i, i + 8))?.[1];
      if (word === 'CASE') depth++;
      else if (word === 'END') depth--;
      else if (word === 'BETWEEN' && depth === 0) between++;
      if (word !== undefined) i += word.length - 1;
    } else if (depth === 0 && text.startsWith(' AND ', i)) {
      if (between > 0) between--;
      else {
        parts.push(text.slice(start, i));
        start = i + 5;
      }
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
/** The events' `select` column(s); `distinct` when a profile with several such events must come once. */
type EventQuery = (select: string, tail?: Sql, distinct?: boolean) => Sql;

/**
 * An uncorrelated query over the events of a collection. `list`: it replaces the correlated
 * probe (an IN list in the profile's condition). `set`: the correlated probe stays the
 * condition and the query is only the condition's id set, for a statement that starts from ids.
 */
interface HoistedEvents {
  query: EventQuery;
  mode: 'list' | 'set';
  alias: string;
  /** The events read, alias and all, as text: equal keys read the same events (to-sql-sets.ts groups). */
  key: string;
}

/** The events of `c` that also satisfy `extra`, as an uncorrelated query; undefined when they are tied to the profile row. */
/** `values`: what else the query computes from each event (an aggregate's input). */
function hoistEvents(
  ctx: CompileContext,
  c: CollectionValue,
  extra: readonly Sql[] = [],
  values: readonly Sql[] = [],
): HoistedEvents | undefined {
  if (c.events === undefined || ctx.sandboxId === undefined) return undefined;
  const { alias } = c.events;
  const conds = [...c.events.conds, ...extra];
  if (!selfContained([...conds, ...values], alias)) return undefined;
  const terms = conds.flatMap((c) => conjuncts(c.text));
  const typed = terms.some((t) => t.startsWith(`${alias}.event_type = `) || t.startsWith(`${alias}.event_type IN (`));
  const windowed = terms.some((t) => new RegExp(`^${alias}\\.ts (BETWEEN|>|<|>=|<=) `).test(t));
  const readsRows = [...conds, ...values].some((c) => c.text.includes(`${alias}.payload`));
  // Without statistics, a guess at the cheaper plan. A type and a time window make a narrow
  // range of the (sandbox_id, event_type, ts) index: one pass beats a probe per profile. With
  // no type, the per-profile probe reads every event of the profile and its payload anyway,
  // and one sequential pass over the table (NOT INDEXED: no index, not even one that would
  // hand DISTINCT or GROUP BY its rows in profile order at a random read each) beats it. A type
  // without a window is often most of the events: as a condition the correlated probe stays
  // (the (profile_id, event_type, ts) index answers it without reading rows, and it stops at
  // the first match); when it reads the payload, the sequential pass is still the cheaper way
  // to the whole set, so it is kept as the set.
  if (typed && !windowed && !readsRows) return undefined;
  const sandbox = sql`${alias}.sandbox_id = ${param(ctx.sandboxId)}`;
  // Where the dialect asks for it, the conditions with a sub-query (compiler-made text) filter
  // the rows the others select behind OFFSET 0, which the planner plans on their own: the
  // table is then read the way the plain conditions alone call for.
  const parts = dialect().fencesSubQueries ? conds.flatMap(conjunctsOf) : [];
  const costly = parts.filter((c) => /\b(EXISTS|LATERAL) \(/.test(c.text));
  const plain = parts.filter((c) => !costly.includes(c));
  const from =
    costly.length > 0
      ? sql`(SELECT * FROM events AS ${alias} WHERE ${joinSql([sandbox, ...plain], ' AND ')} OFFSET 0) AS ${alias}`
      : raw(`events AS ${alias}${typed && windowed ? '' : dialect().scanHint}`);
  const where = costly.length > 0 ? joinSql(costly, ' AND ') : joinSql([sandbox, ...conds], ' AND ');
  const read = sql`${from} WHERE ${where}`;
  return {
    query: (select, tail, distinct) =>
      sql`SELECT ${distinct ? 'DISTINCT ' : ''}${alias}.${select} FROM ${read}${tail ?? raw('')}`,
    mode: typed && !windowed ? 'set' : 'list',
    alias,
    key: `${read.text.replaceAll(`${alias}.`, '§.').replaceAll(` AS ${alias}`, ' AS §')} ${JSON.stringify(read.params)}`,
  };
}

/**
 * The hoisted form of a condition whose correlated form is `correlated`: with a `list`,
 * `p.id IN (ids)` (or NOT IN, with `negated`), written `+p.id` so SQLite tests membership per
 * profile row instead of looping over the list to seek profiles (with two such lists it would
 * nest the loops, a cross product, rather than materialise each once); with a `set`, the
 * correlated form. Either way the ids are the condition's id sets (to-sql-sets.ts).
 */
function hoisted(h: HoistedEvents, correlated: ScalarValue, idSets: IdSets, inList: () => Sql): ScalarValue {
  const sets: IdSets = { ...idSets, probe: h.mode === 'set' };
  // The correlated form with these sets; its own start (`driven`) is superseded by them.
  if (h.mode === 'set') return { ...correlated, plans: { topLevel: correlated.plans?.topLevel, idSets: sets } };
  const negated = sets.ids === undefined;
  return {
    ...predicate(sql`+${PROFILE_ALIAS}.id ${negated ? 'NOT IN' : 'IN'} (${inList()})`, false),
    plans: { idSets: sets },
  };
}

/** `exists` over events (`some event satisfies cond`), hoisted when it can be. */
export function hoistExists(ctx: CompileContext, c: CollectionValue, cond: Sql, correlated: ScalarValue): ScalarValue {
  const h = hoistEvents(ctx, c, [cond]);
  if (!h) return correlated;
  return hoisted(h, correlated, { ids: h.query('profile_id AS id', undefined, true) }, () =>
    h.query('profile_id AS id'),
  );
}

/** `forall` over events: no event fails cond (`counter` is that failure). */
export function hoistForall(
  ctx: CompileContext,
  c: CollectionValue,
  counter: Sql,
  correlated: ScalarValue,
): ScalarValue {
  const h = hoistEvents(ctx, c, [counter]);
  if (!h) return correlated;
  return hoisted(h, correlated, { excluded: h.query('profile_id AS id', undefined, true) }, () =>
    h.query('profile_id AS id'),
  );
}

/**
 * `aggregate op k` for an aggregate over events and a constant k, as a test of each profile's
 * group of events (`HAVING`); `correlated` when it stays a probe per profile.
 */
export function hoistAggregateComparison(
  ctx: CompileContext,
  agg: EventAggregate,
  op: CompareOp,
  k: number,
  correlated: ScalarValue,
): ScalarValue {
  // Sums and averages add in (ts, id) order (runtime.KbnAccumulator), which a grouped pass only
  // guarantees with an ORDER BY inside the aggregate, and that sort costs more than the probe
  // per profile (measured on the reference definitions): they stay correlated unless the
  // dialect can add the documents' decimals exactly instead (exactSumTest).
  const summed = agg.fn === 'sum' || agg.fn === 'average';
  if (summed && agg.decimal === undefined) return correlated;
  const h = hoistEvents(
    ctx,
    agg.source,
    [],
    [...(agg.input ? [agg.input] : []), ...(agg.decimal ? [agg.decimal] : [])],
  );
  if (h === undefined) return correlated;
  const e = h.alias;
  const bound = param(k);
  let having: Sql;
  let empty: boolean;
  let sum: SumTest | undefined;
  switch (agg.fn) {
    case 'sum':
    case 'average':
      sum = exactSumTest(ctx, agg, agg.decimal!, op, k, e);
      having = sumTestSql(sum);
      // A profile without matching events has the sum 0 and no average (missing: false).
      empty = agg.fn === 'sum' && compareOp(op, 0, k);
      break;
    case 'count':
      having = agg.distinct
        ? sql`count(DISTINCT ${agg.input ?? trueSql()}) ${SQL_COMPARE[op]} ${bound}`
        : sql`count(*) ${SQL_COMPARE[op]} ${bound}`;
      // A profile without matching events has count 0.
      empty = compareOp(op, 0, k);
      break;
    default:
      having = sql`${agg.fn}(${agg.input ?? trueSql()}) ${SQL_COMPARE[op]} ${bound}`;
      empty = false;
      break;
  }
  const group: EventGroup = {
    key: h.key,
    alias: e,
    having,
    empty,
    query: (test) => h.query('profile_id AS id', sql` GROUP BY ${e}.profile_id HAVING ${test}`),
    ...(sum ? { sum } : {}),
  };
  const sets = groupSets(group);
  // The IN list: the profiles whose group passes, or (when a profile without events passes) the complement.
  return hoisted(h, correlated, sets, () => (sets.ids ?? sets.excluded)!);
}

/**
 * `sum op k` (or average) over a group of events `e`, exactly as PQL adds (runtime.KbnAccumulator:
 * integers as written, then compensated doubles, in (ts, id) order), without adding in that
 * order per group. The exact sum of the documents' decimals (`decimal`) differs from PQL's by
 * a few units in the last place of the doubles, at most 2^-50 of the sum of magnitudes for any
 * count of events a store holds, plus half a subnormal per number for the tiniest ones (a
 * decimal like 5e-324 is not the double it reads as). So it decides the comparison unless it
 * lies within 1e-12 of that magnitude (and 1e-300) of k, or the magnitudes add up to where
 * doubles may overflow; only such a group is summed again the PQL way, by the correlated
 * aggregate over its profile's events. k is compared as a decimal too: a double as numeric
 * keeps 15 digits, an error the same margin covers (the sum is within its magnitude of k).
 */
function exactSumTest(
  ctx: CompileContext,
  agg: EventAggregate,
  decimal: Sql,
  op: CompareOp,
  k: number,
  e: string,
): SumTest {
  const d = dialect();
  const sum = agg.fn === 'sum' ? sql`coalesce(sum(${decimal}), 0)` : sql`avg(${decimal})`;
  const magnitude = agg.fn === 'sum' ? sql`coalesce(sum(abs(${decimal})), 0)` : sql`avg(abs(${decimal}))`;
  const bound = sql`CAST(${param(k)} AS numeric)`;
  // The PQL sum of the group's profile: the correlated aggregate, its events renamed apart from e.
  const f = ctx.alias('e');
  const rename = (s: Sql) => new Sql(s.text.replace(new RegExp(`\\b${e}\\.`, 'g'), `${f}.`), s.params);
  const conds = (agg.source.events?.conds ?? []).map(rename);
  const where = joinSql([raw(`${f}.profile_id = ${e}.profile_id`), ...conds], ' AND ');
  const rows = sql`SELECT ${rename(agg.input!)} AS v, ${raw(`${f}.ts`)} AS o0, ${raw(`${f}.id`)} AS o1 FROM events AS ${raw(f)} WHERE ${where}`;
  const fn = raw(d.sumFunction(agg.fn as 'sum' | 'average'));
  const cmp = SQL_COMPARE[op];
  return {
    near: sql`abs(${sum} - ${bound}) <= ${magnitude} * 1e-12 + 1e-300 OR sum(abs(${decimal})) >= 1e300`,
    decided: sql`${sum} ${cmp} ${bound}`,
    onExact: sql`q.x ${cmp} ${param(k)}`,
    exact: sql`(SELECT ${fn}(v ORDER BY o0, o1) AS x FROM (${rows}) AS r) AS q`,
  };
}
