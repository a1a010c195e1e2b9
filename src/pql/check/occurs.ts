/** `occurs` tails and CHAIN: time references, amounts, chain steps and their labels. */
import type { ChainNode, ExpressionNode, OccursNode, OccursTail } from '../language/ast.js';
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
  if (node.steps.length > MAX_CHAIN_STEPS) {
    ctx.fail(
      `CHAIN has ${node.steps.length} steps; at most ${MAX_CHAIN_STEPS} are allowed (each step nests the compiled SQL one level deeper, and SQLite stops at an expression depth of 1000)`,
      node.steps[MAX_CHAIN_STEPS]!.loc,
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
    if (step.when) checkTail(ctx, step.when, { ...scope, env: labels, whenStep: i });
  });
  return BOOLEAN;
}
