/**
 * Members of an external audience last `ttlInDays` after the last import that listed them; the
 * ingestion kind's sweep exits the ones past it (cause `expiry`) and forgets their rows.
 */
import type { Connection } from '../../db/index.js';
import { type UnitConnection, writeUnit } from '../../db/unit.js';
import { CURRENT_STATUSES, type MembershipStatus } from '../membership-statuses.js';
import { MembershipWriter } from '../memberships.js';

const DAY_MS = 86_400_000;

/** The statements of one audience's expiry, on the unit that runs it. */
function expiryStatements(tx: UnitConnection) {
  const { sqlite } = tx;
  return {
    candidates: sqlite
      .prepare(
        `SELECT DISTINCT i.profile_id FROM external_members x
         JOIN identities i ON i.sandbox_id = x.sandbox_id AND i.namespace = x.namespace AND i.value = x.value
         WHERE x.audience_id = ? AND x.imported_at <= ?`,
      )
      .pluck(),
    status: sqlite.prepare('SELECT status FROM memberships WHERE audience_id = ? AND profile_id = ?').pluck(),
    fresh: sqlite
      .prepare(
        `SELECT 1 FROM identities i JOIN external_members x ON x.audience_id = ? AND x.value = i.value
         WHERE i.profile_id = ? AND i.namespace = ? AND x.imported_at > ? LIMIT 1`,
      )
      .pluck(),
    forget: sqlite.prepare('DELETE FROM external_members WHERE audience_id = ? AND imported_at <= ?'),
  };
}

/**
 * Exits members whose every row in the list is older than the audience's TTL at `now`; returns how many exited.
 * Each audience with such rows is one unit: its exits, its size and the rows it forgets commit together.
 * A sweep: it fails with SQLITE_BUSY rather than wait when another process holds the write lock.
 */
export async function expireExternalMembers(conn: Connection, now: number): Promise<number> {
  const { sqlite } = conn;
  const audiences = sqlite
    .prepare(
      'SELECT sandbox_id AS sandboxId, audience_id AS audienceId, identity_namespace AS namespace, ttl_in_days AS ttl FROM external_audiences',
    )
    .all() as { sandboxId: number; audienceId: number; namespace: string; ttl: number }[];
  const anyExpired = sqlite
    .prepare('SELECT 1 FROM external_members WHERE audience_id = ? AND imported_at <= ? LIMIT 1')
    .pluck();
  let exited = 0;
  for (const a of audiences) {
    const cutoff = now - a.ttl * DAY_MS;
    if (anyExpired.get(a.audienceId, cutoff) === undefined) continue;
    // Audiences are few; within one, the members are a synchronous loop of statements.
    exited += await writeUnit(
      conn,
      (tx) => {
        const { candidates, status, fresh, forget } = expiryStatements(tx);
        const writer = new MembershipWriter(tx);
        let count = 0;
        for (const profileId of candidates.all(a.audienceId, cutoff) as number[]) {
          const current = status.get(a.audienceId, profileId) as MembershipStatus | undefined;
          if (!current || !CURRENT_STATUSES.includes(current)) continue;
          if (fresh.get(a.audienceId, profileId, a.namespace, cutoff) !== undefined) continue;
          // A list has no definition, so no definition version.
          writer.change(a.sandboxId, a.audienceId, profileId, current, false, now, 'expiry', null);
          count++;
        }
        writer.flushSizes(now);
        forget.run(a.audienceId, cutoff);
        return count;
      },
      { busyWait: false },
    );
  }
  return exited;
}
