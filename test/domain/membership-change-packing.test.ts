import { describe, expect, it } from 'vitest';
import { packChanges, unpackChanges } from '../../src/domain/membership-change-packing.js';
import { MEMBERSHIP_STATUSES } from '../../src/domain/membership-statuses.js';
import { MEMBERSHIP_CAUSES, type MembershipChange } from '../../src/domain/memberships.js';

describe('membership changes packed for the ingest thread', () => {
  it('come back as they went, in order, for every status, cause and a missing from', () => {
    const changes: MembershipChange[] = [];
    let n = 0;
    for (const cause of MEMBERSHIP_CAUSES) {
      for (const from of [null, ...MEMBERSHIP_STATUSES]) {
        for (const to of MEMBERSHIP_STATUSES) {
          // Ids past 2^32 and instants with milliseconds: a float64 holds them exactly.
          changes.push({
            sandboxId: 7,
            audienceId: 2 ** 40 + n,
            profileId: 9_007_199_254_740_991 - n,
            from,
            to,
            at: 1_764_979_200_123 + n,
            cause,
          });
          n++;
        }
      }
    }
    const packed = packChanges(changes);
    expect(packed.length).toBe(changes.length * 6);
    expect(unpackChanges(7, packed)).toEqual(changes);
  });

  it('packs nothing into nothing', () => {
    expect(unpackChanges(1, packChanges([]))).toEqual([]);
  });
});
