/**
 * CHAIN in SQL: nested EXISTS, one level per step, each over its own copy of the source
 * (`events AS e1`, `events AS e2`, …). The steps' events satisfy their WHATs, have strictly
 * increasing times (which already makes them distinct) and satisfy their WHENs, where an
 * earlier step's label is that step's time column. SQL's EXISTS tries every combination, so
 * this is the exact existence question the JS engine answers by backtracking, not a greedy
 * match.
 *
 * Existence does not depend on the order the steps are searched in, so the nesting starts at
 * the last step and looks backwards: funnels narrow towards their end, so the outer level
 * (probed for every profile) scans the fewest events, and each inner level is one range of
 * the (profile_id, event_type, ts) index below the time of the step after it. A WHEN is
 * checked at the innermost level among its step and the steps it names; a WHEN that is a
 * fixed offset from one earlier step (`<= 1 hours after A`) is turned around into a range on
 * that step's time (`A.ts BETWEEN B.ts - 1 h AND B.ts`).
 */
import type { ChainNode, ExpressionNode, OccursTail } from '../language/ast.js';
import { children, tailChildren } from '../language/visitor.js';
import {
  type CompileContext,
  type Env,
  fieldValue,
  fromWhere,
  toScalar,
  unifyDatetimes,
  withScope,
  withVar,
} from './context.js';
import { dialect, existsSql } from './dialect.js';
import { param, type Sql, sql } from './fragment.js';
import { compileOccurs, fixedOffsets } from './time.js';
import {
  asCondition,
  conditionSql,
  constantPredicate,
  DATETIME_TYPE,
  existsPredicate,
  type ScalarValue,
  valueSql,
} from './values.js';

/** The indexes of the earlier steps whose labels a WHEN names (labels are the innermost names in a WHEN). */
function labelsNamed(tail: OccursTail, earlier: readonly string[]): number[] {
  const found = new Set<number>();
  const visit = (node: ExpressionNode): void => {
    if (node.kind === 'Identifier') {
      const i = earlier.lastIndexOf(node.name);
      if (i >= 0) found.add(i);
    }
    children(node).forEach(visit);
  };
  tailChildren(tail).forEach(visit);
  return [...found].sort((a, b) => a - b);
}

export function compileChain(ctx: CompileContext, node: ChainNode, env: Env): ScalarValue {
  const { steps } = node;
  const n = steps.length;
  if (n === 0) return constantPredicate(false);
  const labels = steps.map((s) => s.label);
  const named = steps.map((step, i) => (step.when === null ? [] : labelsNamed(step.when, labels.slice(0, i))));
  // Levels go from step n-1 (outermost) down to step 0; a WHEN needs its step and the steps it names bound.
  const checkedAt = named.map((refs, i) => Math.min(i, ...refs));
  const times: ScalarValue[] = new Array(n);

  const whenCondition = (k: number): Sql => {
    const when = steps[k]!.when!;
    const refs = named[k]!;
    const tk = times[k]!;
    if (refs.length === 1 && tailChildren(when).length === 1 && tk.rep === 'ms' && times[refs[0]!]!.rep === 'ms') {
      const offsets = fixedOffsets(when, ctx.now);
      const tj = times[refs[0]!]!;
      if (offsets !== undefined && when.form !== 'between') {
        // tk in [tj + lo, tj + hi]  ⇔  tj in [tk - hi, tk - lo] (whole milliseconds).
        const parts: Sql[] = [];
        if (offsets.hi !== null) parts.push(sql`${valueSql(tj)} >= ${valueSql(tk)} - ${param(offsets.hi)}`);
        if (offsets.lo !== null) parts.push(sql`${valueSql(tj)} <= ${valueSql(tk)} - ${param(offsets.lo)}`);
        return parts.reduce((acc, p) => sql`${acc} AND ${p}`);
      }
    }
    let whenEnv = env;
    for (const j of refs) whenEnv = withVar(whenEnv, labels[j]!, { kind: 'label', time: times[j]! });
    return conditionSql(compileOccurs(ctx, tk, when, whenEnv));
  };

  const level = (i: number): Sql => {
    const source = ctx.collection(node.source, env);
    const time = toScalar(fieldValue(ctx, source.item, [node.timeField], DATETIME_TYPE));
    times[i] = time;
    const conds: Sql[] = [];
    // An item without a time cannot take part in the sequence.
    if (time.nullable) conds.push(sql`${valueSql(time)} IS NOT NULL`);
    if (i + 1 < n) {
      const [t, later] = unifyDatetimes(time, times[i + 1]!);
      const order = t.rep === 'iso' ? dialect().ordered : (s: Sql) => s;
      conds.push(sql`${order(valueSql(t))} < ${order(valueSql(later))}`);
    }
    conds.push(conditionSql(asCondition(ctx.scalar(steps[i]!.what, withScope(env, source.item)))));
    for (let k = i; k < n; k++) if (steps[k]!.when !== null && checkedAt[k] === i) conds.push(whenCondition(k));
    if (i > 0) conds.push(existsSql(level(i - 1)));
    return sql`SELECT 1 ${fromWhere(source, conds)}`;
  };

  return existsPredicate(level(n - 1), true);
}
