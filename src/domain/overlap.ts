/**
 * How audiences overlap, exactly, from stored memberships (REALIZED and EXISTING): every
 * pairwise intersection, and for up to three audiences the exclusive regions of their Venn
 * diagram. One pass over the members of the audiences, grouped by profile into a bit mask.
 */
import { statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import { requireAudience } from './audiences.js';
import { badInput } from './errors.js';
import { CURRENT_STATUSES_SQL } from './membership-statuses.js';

export interface AudiencePair {
  a: number;
  b: number;
  intersection: number;
}

export interface OverlapRegion {
  /** The audiences a profile of this region is in; it is in none of the others. */
  audienceIds: number[];
  count: number;
}

export interface AudienceOverlap {
  audienceIds: number[];
  /** Current members of each audience, in the order asked. */
  sizes: number[];
  pairs: AudiencePair[];
  /** Every non-empty combination, for 2 or 3 audiences; empty for more. */
  regions: OverlapRegion[];
}

const OVERLAP_MIN = 2;
const OVERLAP_MAX = 10;
const VENN_MAX = 3;

const q = statements('overlap', {
  /** Profiles per mask: bit i set for a current member of the i-th audience of the JSON array. */
  masks: {
    sqlite: `SELECT mask, count(*) AS n FROM (
        SELECT m.profile_id, sum(1 << j.key) AS mask
        FROM json_each(?) AS j
        CROSS JOIN memberships AS m ON m.audience_id = j.value AND m.status IN ${CURRENT_STATUSES_SQL}
        WHERE m.sandbox_id = ?
        GROUP BY m.profile_id
      ) AS per_profile GROUP BY mask`,
    postgres: `SELECT mask, count(*) AS n FROM (
        SELECT m.profile_id, sum(1 << CAST(j.ord - 1 AS integer)) AS mask
        FROM jsonb_array_elements_text(CAST($1 AS jsonb)) WITH ORDINALITY AS j(value, ord)
        JOIN memberships AS m ON m.audience_id = CAST(j.value AS bigint) AND m.status IN ${CURRENT_STATUSES_SQL}
        WHERE m.sandbox_id = $2
        GROUP BY m.profile_id
      ) AS per_profile GROUP BY mask`,
  },
});

export async function audienceOverlap(
  conn: Store,
  sandboxId: number,
  audienceIds: readonly number[],
): Promise<AudienceOverlap> {
  const ids = [...new Set(audienceIds)];
  if (ids.length < OVERLAP_MIN || ids.length > OVERLAP_MAX) {
    throw badInput(`Give ${OVERLAP_MIN} to ${OVERLAP_MAX} different audiences; got ${ids.length}`, 'audienceIds');
  }
  for (const id of ids) await requireAudience(conn, sandboxId, id);
  // Bit i of a mask: member of ids[i]. Counting profiles per mask needs one ordered pass per
  // audience (the primary key (audience_id, profile_id) and its rows, on either database) and a
  // GROUP BY over at most 2^10 masks.
  const masks = await conn.all<{ mask: number; n: number }>(q.masks, [JSON.stringify(ids), sandboxId]);
  const sizes = ids.map((_, i) => masks.reduce((sum, m) => sum + (m.mask & (1 << i) ? m.n : 0), 0));
  const pairs: AudiencePair[] = [];
  for (let i = 0; i < ids.length; i++) {
    for (let k = i + 1; k < ids.length; k++) {
      const both = (1 << i) | (1 << k);
      const intersection = masks.reduce((sum, m) => sum + ((m.mask & both) === both ? m.n : 0), 0);
      pairs.push({ a: ids[i]!, b: ids[k]!, intersection });
    }
  }
  const regions: OverlapRegion[] =
    ids.length > VENN_MAX
      ? []
      : masks
          .filter((m) => m.n > 0)
          .sort((x, y) => x.mask - y.mask)
          .map((m) => ({ audienceIds: ids.filter((_, i) => m.mask & (1 << i)), count: m.n }));
  return { audienceIds: ids, sizes, pairs, regions };
}
