/**
 * `inSegment("<audience>").payload.<field>` (docs/pql.md §5 "Audiences"): a field of the row the
 * profile has in an external audience's list. The checker types it from the audience's declared
 * fields and both engines read it from the stored membership, so all three recognise the form
 * here, in one place.
 */
import type { CallNode, ExpressionNode, MemberNode } from '../language/ast.js';

/** The name after `inSegment(…)` that reaches the member's row. */
export const PAYLOAD = 'payload';

/** The `inSegment("…")` call and its audience argument when `node` is `inSegment("…").payload`. */
export function segmentPayload(node: ExpressionNode): { call: CallNode; ref: string } | undefined {
  if (node.kind !== 'Member' || node.name !== PAYLOAD) return undefined;
  const call = node.object;
  if (call.kind !== 'Call' || call.name !== 'inSegment' || call.args.length !== 1) return undefined;
  const arg = call.args[0]!;
  return arg.kind === 'Literal' && typeof arg.value === 'string' ? { call, ref: arg.value } : undefined;
}

/** `inSegment("…").payload.<field>`: the audience argument and the field, or undefined. */
export function segmentPayloadField(node: MemberNode): { ref: string; field: string } | undefined {
  const payload = segmentPayload(node.object);
  return payload && { ref: payload.ref, field: node.name };
}
