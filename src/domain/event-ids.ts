/**
 * Ids for events sent without one. A random UUID put every such event on a random page of the
 * unique `(sandbox_id, event_id)` index, one more page written per event in every commit (the
 * index is as large as the events table's count); a UUID of version 7 (RFC 9562) starts with
 * the time in milliseconds, so the ids of a commit sort together at the index's end.
 */
import { randomFillSync } from 'node:crypto';

/** Random bytes for 256 ids, drawn at once: one call into the kernel's generator per 256 events. */
const pool = Buffer.alloc(16 * 256);
let used = pool.length;

/** A UUID version 7 for the instant `now` (epoch ms): 48 bits of time, 74 random. */
export function timeOrderedId(now: number = Date.now()): string {
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const b = pool.subarray(used, used + 16);
  used += 16;
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
