import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { createManualAudience, requireAudience } from '../../src/domain/audiences.js';
import {
  addAudienceMembers,
  listMembers,
  listMembershipHistory,
  removeAudienceMembers,
} from '../../src/domain/memberships.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';

describe('members added and removed by hand', () => {
  it('moves only the profiles whose state changes, each once, and names unknown identities in order', async () => {
    const conn = openDatabase(':memory:');
    const sandboxId = (await ensureSandbox(conn, 'prod')).id;
    const email = (n: number) => ({ namespace: 'email', id: `p${n}@example.com` });
    ingestProfiles(
      conn,
      sandboxId,
      [1, 2, 3].map((n) => ({ identities: [email(n)], attributes: {} })),
    );
    const idOf = conn.sqlite.prepare('SELECT profile_id FROM identities WHERE namespace = ? AND value = ?').pluck();
    const [p1, p2, p3] = [1, 2, 3].map((n) => idOf.get(email(n).namespace, email(n).id) as number) as [
      number,
      number,
      number,
    ];
    const audience = await createManualAudience(conn, sandboxId, { name: 'by hand' });
    const members = async () =>
      (await listMembers(conn, sandboxId, audience.id, null, { first: 10 })).items.map((m) => [m.profileId, m.status]);
    const history = async (profileId: number) =>
      (await listMembershipHistory(conn, sandboxId, profileId, { first: 10 })).items.map((t) => [
        t.fromStatus,
        t.toStatus,
        t.cause,
        t.at,
      ]);

    // The same profile twice counts once.
    await addAudienceMembers(conn, sandboxId, audience.id, [email(2), email(1), email(2)], 1_000);
    expect(await members()).toEqual([
      [p1, 'REALIZED'],
      [p2, 'REALIZED'],
    ]);
    expect((await requireAudience(conn, sandboxId, audience.id)).size).toBe(2);
    // Already members: nothing written for them.
    await addAudienceMembers(conn, sandboxId, audience.id, [email(1), email(3)], 2_000);
    await removeAudienceMembers(conn, sandboxId, audience.id, [email(1), email(1)], 3_000);
    expect(await members()).toEqual([
      [p1, 'EXITED'],
      [p2, 'REALIZED'],
      [p3, 'REALIZED'],
    ]);
    const after = await requireAudience(conn, sandboxId, audience.id);
    expect([after.size, after.lastEvaluatedAt, after.updatedAt]).toEqual([2, 3_000, 3_000]);
    expect(await history(p1)).toEqual([
      ['REALIZED', 'EXITED', 'manual', 3_000],
      [null, 'REALIZED', 'manual', 1_000],
    ]);
    expect(await history(p3)).toEqual([[null, 'REALIZED', 'manual', 2_000]]);
    // Back in after leaving.
    await addAudienceMembers(conn, sandboxId, audience.id, [email(1)], 4_000);
    expect((await history(p1))[0]).toEqual(['EXITED', 'REALIZED', 'manual', 4_000]);

    await expect(
      addAudienceMembers(conn, sandboxId, audience.id, [email(9), email(1), { namespace: 'crm', id: 'x' }], 5_000),
    ).rejects.toThrow('No profile has identity email:p9@example.com, crm:x');
    await expect(
      removeAudienceMembers(conn, sandboxId, audience.id, [email(1), { namespace: '', id: 'x' }], 5_000),
    ).rejects.toThrow('Invalid identity: identity namespace is empty');
    // A failed call changes nothing.
    expect((await requireAudience(conn, sandboxId, audience.id)).size).toBe(3);
  });
});
