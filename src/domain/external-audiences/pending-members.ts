/**
 * A list row whose identity no profile had at import is kept; when a profile gains that identity
 * (an ingest, in its own transaction), the profile becomes a member then, with a history entry.
 */
import { cacheKey } from '../../db/connection-cache.js';
import type { Connection } from '../../db/index.js';
import { CURRENT_STATUSES, type MembershipStatus } from '../membership-statuses.js';
import { type MembershipChange, MembershipWriter } from '../memberships.js';

export interface AddedIdentity {
  namespace: string;
  value: string;
  profileId: number;
}

const DAY_MS = 86_400_000;
const STATEMENTS = cacheKey<ReturnType<typeof prepare>>('pending external member statements');

function prepare(conn: Connection) {
  const { sqlite } = conn;
  return {
    any: sqlite.prepare('SELECT 1 FROM external_members WHERE sandbox_id = ? LIMIT 1').pluck(),
    rows: sqlite.prepare(
      `SELECT x.audience_id AS audienceId, x.payload, x.imported_at AS importedAt, e.ttl_in_days AS ttl
       FROM external_members x JOIN external_audiences e ON e.audience_id = x.audience_id
       JOIN audiences a ON a.id = x.audience_id
       WHERE x.sandbox_id = ? AND x.namespace = ? AND x.value = ? AND a.lifecycle_state != 'ARCHIVED'`,
    ),
    status: sqlite.prepare('SELECT status FROM memberships WHERE audience_id = ? AND profile_id = ?').pluck(),
    payload: sqlite.prepare('UPDATE memberships SET payload = ? WHERE audience_id = ? AND profile_id = ?'),
  };
}

/**
 * Makes profiles members of the external audiences whose lists name identities they just gained
 * (call inside the ingest's write transaction). Rows past their audience's TTL are ignored.
 */
export function resolvePendingMembers(
  conn: Connection,
  sandboxId: number,
  added: readonly AddedIdentity[],
  now: number,
): MembershipChange[] {
  if (added.length === 0) return [];
  const s = conn.cache.get(STATEMENTS, () => prepare(conn));
  if (s.any.get(sandboxId) === undefined) return [];
  const writer = new MembershipWriter(conn);
  const changes: MembershipChange[] = [];
  for (const { namespace, value, profileId } of added) {
    const rows = s.rows.all(sandboxId, namespace, value) as {
      audienceId: number;
      payload: string;
      importedAt: number;
      ttl: number;
    }[];
    for (const row of rows) {
      if (row.importedAt + row.ttl * DAY_MS <= now) continue;
      const status = (s.status.get(row.audienceId, profileId) as MembershipStatus | undefined) ?? null;
      if (status === null || !CURRENT_STATUSES.includes(status)) {
        changes.push(writer.change(sandboxId, row.audienceId, profileId, status, true, now, 'import', null));
      }
      s.payload.run(row.payload, row.audienceId, profileId);
    }
  }
  writer.flushSizes(now);
  return changes;
}
