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
import { CURRENT_STATUSES_SQL, type MembershipStatus } from '../membership-statuses.js';
import { membershipMove, StoreMembershipWriter } from '../memberships.js';
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
  /**
   * The members to exit, in id order: profiles named by a row imported at or before the cutoff,
   * current members of the audience, none of whose identities of the list's namespace is on a
   * row imported after it (params: audience, cutoff, audience, audience, namespace, cutoff).
   */
  expiring: {
    sqlite: `SELECT c.profile_id AS "profileId", m.status FROM (
        SELECT DISTINCT i.profile_id FROM external_members x
        JOIN identities i ON i.sandbox_id = x.sandbox_id AND i.namespace = x.namespace AND i.value = x.value
        WHERE x.audience_id = ? AND x.imported_at <= ?) AS c
      JOIN memberships m ON m.audience_id = ? AND m.profile_id = c.profile_id AND m.status IN ${CURRENT_STATUSES_SQL}
      WHERE NOT EXISTS (SELECT 1 FROM identities i JOIN external_members x ON x.audience_id = ? AND x.value = i.value
        WHERE i.profile_id = c.profile_id AND i.namespace = ? AND x.imported_at > ?)
      ORDER BY c.profile_id`,
    postgres: `SELECT c.profile_id AS "profileId", m.status FROM (
        SELECT DISTINCT i.profile_id FROM external_members x
        JOIN identities i ON i.sandbox_id = x.sandbox_id AND i.namespace = x.namespace AND i.value = x.value
        WHERE x.audience_id = $1 AND x.imported_at <= $2) AS c
      JOIN memberships m ON m.audience_id = $3 AND m.profile_id = c.profile_id AND m.status IN ${CURRENT_STATUSES_SQL}
      WHERE NOT EXISTS (SELECT 1 FROM identities i JOIN external_members x ON x.audience_id = $4 AND x.value = i.value
        WHERE i.profile_id = c.profile_id AND i.namespace = $5 AND x.imported_at > $6)
      ORDER BY c.profile_id`,
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
        // One read decides them all: each is another profile, and what a decision reads (its own
        // membership, the list's rows) no exit changes.
        const rows = await tx.all<{ profileId: number; status: MembershipStatus }>(q.expiring, [
          a.audienceId,
          cutoff,
          a.audienceId,
          a.audienceId,
          a.namespace,
          cutoff,
        ]);
        // A list has no definition, so no definition version.
        const exits = rows.map((r) =>
          membershipMove(a.sandboxId, a.audienceId, r.profileId, r.status, false, now, 'expiry', null),
        );
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
