/**
 * Membership changes as one buffer of numbers, to cross from the ingest thread to the main
 * thread without copying: structured cloning a commit's few hundred change objects took the
 * ingest thread milliseconds per commit, a tenth of its time (bench `stream`).
 */
import { MEMBERSHIP_STATUSES } from './membership-statuses.js';
import { MEMBERSHIP_CAUSES, type MembershipChange } from './memberships.js';

/** Numbers per change: audience, profile, from (-1: none), to, at, cause. */
const WIDTH = 6;

/** The changes of one sandbox, in order, packed (the sandbox goes beside the buffer). */
export function packChanges(changes: readonly MembershipChange[]): Float64Array {
  const out = new Float64Array(changes.length * WIDTH);
  let i = 0;
  for (const c of changes) {
    out[i++] = c.audienceId;
    out[i++] = c.profileId;
    out[i++] = c.from === null ? -1 : MEMBERSHIP_STATUSES.indexOf(c.from);
    out[i++] = MEMBERSHIP_STATUSES.indexOf(c.to);
    out[i++] = c.at;
    out[i++] = MEMBERSHIP_CAUSES.indexOf(c.cause);
  }
  return out;
}

export function unpackChanges(sandboxId: number, packed: Float64Array): MembershipChange[] {
  const out: MembershipChange[] = [];
  for (let i = 0; i < packed.length; i += WIDTH) {
    const from = packed[i + 2]!;
    out.push({
      sandboxId,
      audienceId: packed[i]!,
      profileId: packed[i + 1]!,
      from: from < 0 ? null : MEMBERSHIP_STATUSES[from]!,
      to: MEMBERSHIP_STATUSES[packed[i + 3]!]!,
      at: packed[i + 4]!,
      cause: MEMBERSHIP_CAUSES[packed[i + 5]!]!,
    });
  }
  return out;
}
