/**
 * Members of an external audience last `ttlInDays` after the last import that listed them; the
 * ingestion kind's sweep exits the ones past it (cause `expiry`) and forgets their rows. On
 * PostgreSQL every node's housekeeping runs it (cluster/cluster-job-kinds.ts); each audience's
 * unit takes its sandbox's ingest lock, so it is ordered with the ingests that add an
 * audience's pending members on any node, and a second node finds nothing left to do.
 */
import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { writeUnit } from '../../db/unit.js';
import { CURRENT_STATUSES, type MembershipStatus } from '../membership-statuses.js';
import { type MembershipMove, membershipMove, StoreMembershipWriter } from '../memberships.js';
import { ingestLock } from '../pooled-ingest.js';

const DAY_MS = 86_400_000;

const q = statements('member-expiry', {
  /** Every external audience with its TTL, in audience order. */
  audiences: {
    sqlite: `SELECT sandbox_id AS "sandboxId", audience_id AS "audienceId", identity_namespace AS namespace,
      ttl_in_days AS ttl FROM external_audiences ORDER BY audience_id`,
    postgres: `SELECT sandbox_id AS "sandboxId", audience_id AS "audienceId", identity_namespace AS namespace,
      ttl_in_days AS ttl FROM external_audiences ORDER BY audience_id`,
  },
  /** Whether the audience has a list row imported at or before the cutoff. */
  anyExpired: {
    sqlite: 'SELECT 1 AS found FROM external_members WHERE audience_id = ? AND imported_at <= ? LIMIT 1',
    postgres: 'SELECT 1 AS found FROM external_members WHERE audience_id = $1 AND imported_at <= $2 LIMIT 1',
  },
  /** Profiles named by a row imported at or before the cutoff, in id order. */
  candidates: {
    sqlite: `SELECT DISTINCT i.profile_id AS "profileId" FROM external_members x
      JOIN identities i ON i.sandbox_id = x.sandbox_id AND i.namespace = x.namespace AND i.value = x.value
      WHERE x.audience_id = ? AND x.imported_at <= ? ORDER BY i.profile_id`,
    postgres: `SELECT DISTINCT i.profile_id AS "profileId" FROM external_members x
      JOIN identities i ON i.sandbox_id = x.sandbox_id AND i.namespace = x.namespace AND i.value = x.value
      WHERE x.audience_id = $1 AND x.imported_at <= $2 ORDER BY i.profile_id`,
  },
  status: {
    sqlite: 'SELECT status FROM memberships WHERE audience_id = ? AND profile_id = ?',
    postgres: 'SELECT status FROM memberships WHERE audience_id = $1 AND profile_id = $2',
  },
  /** Whether another identity of the profile (same namespace) is on a row imported after the cutoff. */
  fresh: {
    sqlite: `SELECT 1 AS found FROM identities i JOIN external_members x ON x.audience_id = ? AND x.value = i.value
      WHERE i.profile_id = ? AND i.namespace = ? AND x.imported_at > ? LIMIT 1`,
    postgres: `SELECT 1 AS found FROM identities i JOIN external_members x ON x.audience_id = $1 AND x.value = i.value
      WHERE i.profile_id = $2 AND i.namespace = $3 AND x.imported_at > $4 LIMIT 1`,
  },
  forget: {
    sqlite: 'DELETE FROM external_members WHERE audience_id = ? AND imported_at <= ?',
    postgres: 'DELETE FROM external_members WHERE audience_id = $1 AND imported_at <= $2',
  },
});

/**
 * Exits members whose every row in the list is older than the audience's TTL at `now`; returns how many exited.
 * Each audience with such rows is one unit: its exits, its size and the rows it forgets commit together.
 * A sweep: it fails with SQLITE_BUSY rather than wait when another process holds the write lock.
 */
export async function expireExternalMembers(conn: Store, now: number): Promise<number> {
  const audiences = await conn.all<{ sandboxId: number; audienceId: number; namespace: string; ttl: number }>(
    q.audiences,
  );
  let exited = 0;
  for (const a of audiences) {
    const cutoff = now - a.ttl * DAY_MS;
    if ((await conn.get(q.anyExpired, [a.audienceId, cutoff])) === undefined) continue;
    exited += await writeUnit(
      conn,
      async (tx) => {
        // Decided first, then written together: each candidate is another profile, and what a
        // decision reads (its own membership, the list's rows) no exit changes.
        const exits: MembershipMove[] = [];
        for (const { profileId } of await tx.all<{ profileId: number }>(q.candidates, [a.audienceId, cutoff])) {
          const current = (await tx.get<{ status: MembershipStatus }>(q.status, [a.audienceId, profileId]))?.status;
          if (!current || !CURRENT_STATUSES.includes(current)) continue;
          if ((await tx.get(q.fresh, [a.audienceId, profileId, a.namespace, cutoff])) !== undefined) continue;
          // A list has no definition, so no definition version.
          exits.push(membershipMove(a.sandboxId, a.audienceId, profileId, current, false, now, 'expiry', null));
        }
        const writer = new StoreMembershipWriter(tx);
        await writer.writeAll(exits);
        await writer.flushSizes(now);
        await tx.run(q.forget, [a.audienceId, cutoff]);
        return exits.length;
      },
      { busyWait: false, lock: ingestLock(a.sandboxId) },
    );
  }
  return exited;
}
