import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { countProfiles, countProfilesSync, deleteProfile, profileIdRange } from '../../src/domain/profiles.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';

describe('the kept profile count', () => {
  it('follows inserts, merges and deletes in each sandbox', async () => {
    const conn = openDatabase(':memory:');
    const a = (await ensureSandbox(conn, 'a')).id;
    const b = (await ensureSandbox(conn, 'b')).id;
    const scanned = (sandboxId: number) =>
      conn.sqlite.prepare('SELECT count(*) FROM profiles WHERE sandbox_id = ?').pluck().get(sandboxId) as number;
    const person = (n: number) => ({ identities: [{ namespace: 'email', id: `p${n}@example.com` }], attributes: {} });
    ingestProfiles(conn, a, [person(1), person(2), person(3)]);
    ingestProfiles(conn, b, [person(1)]);
    expect([await countProfiles(conn, a), await countProfiles(conn, b)]).toEqual([3, 1]);
    // One record naming two existing profiles joins them: one profile fewer.
    ingestProfiles(conn, a, [
      {
        identities: [
          { namespace: 'email', id: 'p1@example.com' },
          { namespace: 'email', id: 'p2@example.com' },
        ],
        attributes: {},
      },
    ]);
    expect(await countProfiles(conn, a)).toBe(2);
    await deleteProfile(conn, a, { namespace: 'email', id: 'p3@example.com' });
    expect([await countProfiles(conn, a), await countProfiles(conn, b)]).toEqual([scanned(a), scanned(b)]);
    expect(await countProfiles(conn, a)).toBe(1);
    expect([countProfilesSync(conn, a), await countProfiles(conn, 999)]).toEqual([1, 0]);
    const ids = conn.sqlite.prepare('SELECT id FROM profiles WHERE sandbox_id = ? ORDER BY id').pluck().all(a);
    expect(profileIdRange(conn, a)).toEqual({ lo: ids[0], hi: ids.at(-1), count: 1 });
    expect(profileIdRange(conn, (await ensureSandbox(conn, 'empty')).id)).toEqual({ lo: null, hi: null, count: 0 });
  });
});
