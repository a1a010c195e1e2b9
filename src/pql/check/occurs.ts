/** `occurs` tails and CHAIN: time references, amounts, chain steps and their labels. */
import type { ChainNode, ChainStepNode, ExpressionNode, LogicalNode, OccursNode, OccursTail } from '../language/ast.js';
import { typeToString } from './catalog.js';
import {
  BOOLEAN,
  bind,
  type CheckContext,
  childRef,
  DATETIME,
  type Env,
  itemScope,
  objectItems,
  ownField,
  refPath,
  type Scope,
} from './context.js';
import type { PqlType } from './types.js';

export function checkOccurs(ctx: CheckContext, node: OccursNode, scope: Scope): PqlType {
  const subject = ctx.check(node.subject, scope);
  if (subject.kind !== 'datetime' && subject.kind !== 'any') {
    ctx.fail(`occurs needs a datetime on its left, found ${ctx.describe(node.subject, subject)}`, node.subject.loc);
  }
  checkTail(ctx, node.tail, scope);
  return BOOLEAN;
}

function checkTail(ctx: CheckContext, tail: OccursTail, scope: Scope): void {
  switch (tail.form) {
    case 'relative':
      if (!Number.isFinite(tail.amount) || tail.amount < 0) {
        ctx.fail(`the amount of an occurs window must be a number of 0 or more, found ${tail.amount}`, tail.loc);
      }
      // The runtime would truncate a fractional calendar amount; saying so is kinder than guessing.
      if ((tail.unit === 'month' || tail.unit === 'year') && !Number.isInteger(tail.amount)) {
        ctx.fail(`${tail.unit}s are calendar units: the amount must be a whole number, found ${tail.amount}`, tail.loc);
      }
      checkRef(ctx, tail.ref, scope);
      return;
    case 'beforeAfter':
    case 'on':
      checkRef(ctx, tail.ref, scope);
      return;
    case 'between':
      checkRef(ctx, tail.from, scope);
      checkRef(ctx, tail.to, scope);
      return;
    case 'period':
      return;
  }
}

function checkRef(ctx: CheckContext, ref: ExpressionNode, scope: Scope): void {
  const t = ctx.check(ref, scope);
  if (t.kind !== 'datetime' && t.kind !== 'any') {
    ctx.fail(`an occurs reference must be a datetime, found ${ctx.describe(ref, t)}`, ref.loc);
  }
}

/**
 * The most steps a CHAIN may have. Its SQL nests one EXISTS per step; 24 simple steps already
 * pass SQLite's expression depth limit (1000), so the limit leaves room for steps that nest
 * further themselves.
 */
const MAX_CHAIN_STEPS = 16;

/**
 * `CHAIN(source, timeField, [A: WHAT(c) WHEN(w), …])`. WHAT reads the step's item; WHEN is
 * checked in the scope around the CHAIN, where the labels of earlier steps are datetimes.
 */
export function checkChain(ctx: CheckContext, node: ChainNode, scope: Scope): PqlType {
  const total = node.steps.reduce((n, step) => n + (step.count ?? 1), 0);
  if (total > MAX_CHAIN_STEPS) {
    let events = 0;
    let over = node.steps[0]!;
    for (const step of node.steps) {
      events += step.count ?? 1;
      over = step;
      if (events > MAX_CHAIN_STEPS) break;
    }
    const counted = node.steps.some((step) => step.count !== undefined) ? ' (a step with COUNT(n) counts n times)' : '';
    ctx.fail(
      `CHAIN has ${total} steps${counted}; at most ${MAX_CHAIN_STEPS} are allowed (each step nests the compiled SQL one level deeper, and SQLite stops at an expression depth of 1000)`,
      over.loc,
    );
  }
  const sourceType = ctx.check(node.source, scope);
  const item = objectItems(ctx, node.source, sourceType, 'CHAIN');
  const ref = ctx.refs.get(node.source) ?? null;
  if (item) {
    const afterSource = node.source.loc.offset + node.source.loc.length;
    const fieldLoc = ctx.nameLoc(node, afterSource, node.timeField);
    const timeType = ownField(item, node.timeField);
    if (!timeType) ctx.unknownField(ref, node.timeField, fieldLoc);
    if (timeType.kind !== 'datetime') {
      ctx.fail(`the CHAIN time field ${node.timeField} must be a datetime, found ${typeToString(timeType)}`, fieldLoc);
    }
    const timeRef = childRef(ref, node.timeField);
    if (timeRef) ctx.extraFieldReads.add(refPath(timeRef));
  }
  let labels: Env | null = scope.env;
  const seen = new Set<string>();
  node.steps.forEach((step, i) => {
    if (seen.has(step.label)) ctx.fail(`CHAIN step label ${step.label} is used twice`, step.loc);
    seen.add(step.label);
    labels = bind(labels, step.label, { kind: 'label', type: DATETIME, ref: null, stepIndex: i });
  });
  node.steps.forEach((step, i) => {
    ctx.expect(step.what, itemScope(scope, item, ref), 'boolean', `WHAT of step ${step.label}`);
    if (step.where) ctx.expect(step.where, itemScope(scope, item, ref), 'boolean', `WHERE of step ${step.label}`);
    if (step.when) checkTail(ctx, step.when, { ...scope, env: labels, whenStep: i });
  });
  if (node.steps.some((step) => step.where || step.count !== undefined)) {
    ctx.replacements.set(node, expandedChain(ctx, node));
  }
  return BOOLEAN;
}

/**
 * The chain both engines run for steps with WHERE or COUNT: `A: WHAT(c) WHERE(d) COUNT(n) WHEN(w)`
 * is n steps `WHAT(c and d) WHEN(w)`, each event later than the one before, the label naming the
 * last of them (a later WHEN relative to A counts from A's last event). Earlier copies get labels
 * no one can write (`A#1`), so nothing refers to them.
 */
function expandedChain(ctx: CheckContext, node: ChainNode): ChainNode {
  const steps: ChainStepNode[] = node.steps.flatMap((step) => {
    let what = step.what;
    if (step.where) {
      const both: LogicalNode = { kind: 'Logical', op: 'and', left: step.what, right: step.where, loc: step.loc };
      ctx.types.set(both, BOOLEAN);
      what = both;
    }
    const n = step.count ?? 1;
    return Array.from({ length: n }, (_, k) => ({
      kind: 'ChainStep' as const,
      label: k === n - 1 ? step.label : `${step.label}#${k + 1}`,
      what,
      when: step.when,
      loc: step.loc,
    }));
  });
  const expanded: ChainNode = { ...node, steps };
  ctx.types.set(expanded, BOOLEAN);
  return expanded;
}
