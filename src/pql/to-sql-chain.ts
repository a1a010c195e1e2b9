/**
 * CHAIN in SQL: nested EXISTS, one level per step, each over its own copy of the source
 * (`events AS e1`, `events AS e2`, …). Step i's row satisfies its WHAT, has a time strictly
 * after step i-1's (which already makes all the events distinct) and its WHEN, where an
 * earlier step's label is that step's time column. SQL's EXISTS tries every combination, so
 * this is the exact existence question the JS engine answers by backtracking, not a greedy
 * match; and each level's `event_type = ?` and `ts` range use the (profile_id, event_type, ts)
 * index from the previous level's time.
 */
import type { ChainNode } from './ast.js';
import {
  type CompileContext,
  type Env,
  fieldValue,
  fromWhere,
  toScalar,
  unifyDatetimes,
  withScope,
  withVar,
} from './to-sql-context.js';
import {
  asCondition,
  conditionSql,
  constantPredicate,
  DATETIME_TYPE,
  predicate,
  type ScalarValue,
  type Sql,
  sql,
  valueSql,
} from './to-sql-fragment.js';
import { compileOccurs } from './to-sql-time.js';

export function compileChain(ctx: CompileContext, node: ChainNode, env: Env): ScalarValue {
  if (node.steps.length === 0) return constantPredicate(false);

  const level = (index: number, whenEnv: Env, previous: ScalarValue | null): Sql => {
    const step = node.steps[index]!;
    const source = ctx.collection(node.source, env);
    const time = toScalar(fieldValue(ctx, source.item, [node.timeField], DATETIME_TYPE));
    const conds: Sql[] = [];
    // An item without a time cannot take part in the sequence.
    if (time.nullable) conds.push(sql`${valueSql(time)} IS NOT NULL`);
    if (previous !== null) {
      const [t, p] = unifyDatetimes(time, previous);
      conds.push(sql`${valueSql(t)} > ${valueSql(p)}`);
    }
    conds.push(conditionSql(asCondition(ctx.scalar(step.what, withScope(env, source.item)))));
    if (step.when !== null) conds.push(conditionSql(compileOccurs(ctx, time, step.when, whenEnv)));
    if (index + 1 < node.steps.length) {
      const next = withVar(whenEnv, step.label, { kind: 'label', time });
      conds.push(sql`EXISTS (${level(index + 1, next, time)})`);
    }
    return sql`SELECT 1 ${fromWhere(source, conds)}`;
  };

  return predicate(sql`EXISTS (${level(0, env, null)})`, false);
}
