/**
 * A list row whose identity no profile had at import is kept; when a profile gains that identity
 * (an ingest, in its own transaction), the profile becomes a member then, with a history entry.
 */
import type { Connection } from '../../db/index.js';
import { preparedOn, statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { CURRENT_STATUSES, type MembershipStatus } from '../membership-statuses.js';
import {
  type MembershipChange,
  type MembershipMove,
  MembershipWriter,
  membershipMove,
  StoreMembershipWriter,
} from '../memberships.js';

export interface AddedIdentity {
  namespace: string;
  value: string;
  profileId: number;
}

const DAY_MS = 86_400_000;

/**
 * Run synchronously (preparedOn): inside the ingest's write transaction, on the ingest path's
 * connection (docs/scale-out.md step 1). Each list's rows in audience order on both databases.
 */
const q = statements('pending-members', {
  /** Whether the sandbox has any list row at all (most have none: nothing else to read). */
  any: {
    sqlite: 'SELECT 1 AS found FROM external_members WHERE sandbox_id = ? LIMIT 1',
    postgres: 'SELECT 1 AS found FROM external_members WHERE sandbox_id = $1 LIMIT 1',
  },
  /** The list rows naming an identity, in audiences not archived, with their audience's TTL. */
  rows: {
    sqlite: `SELECT x.audience_id AS "audienceId", x.payload, x.imported_at AS "importedAt", e.ttl_in_days AS ttl
      FROM external_members x JOIN external_audiences e ON e.audience_id = x.audience_id
      JOIN audiences a ON a.id = x.audience_id
      WHERE x.sandbox_id = ? AND x.namespace = ? AND x.value = ? AND a.lifecycle_state != 'ARCHIVED'
      ORDER BY x.audience_id`,
    postgres: `SELECT x.audience_id AS "audienceId", CAST(x.payload AS text) AS payload, x.imported_at AS "importedAt",
        e.ttl_in_days AS ttl
      FROM external_members x JOIN external_audiences e ON e.audience_id = x.audience_id
      JOIN audiences a ON a.id = x.audience_id
      WHERE x.sandbox_id = $1 AND x.namespace = $2 AND x.value = $3 AND a.lifecycle_state != 'ARCHIVED'
      ORDER BY x.audience_id`,
  },
  status: {
    sqlite: 'SELECT status FROM memberships WHERE audience_id = ? AND profile_id = ?',
    postgres: 'SELECT status FROM memberships WHERE audience_id = $1 AND profile_id = $2',
  },
  /** The list row's other fields onto the membership (JSON text). */
  payload: {
    sqlite: 'UPDATE memberships SET payload = ? WHERE audience_id = ? AND profile_id = ?',
    postgres: 'UPDATE memberships SET payload = CAST($1 AS jsonb) WHERE audience_id = $2 AND profile_id = $3',
  },
});

interface PendingRow {
  audienceId: number;
  payload: string;
  importedAt: number;
  ttl: number;
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
  const { sqlite } = conn;
  if (preparedOn(sqlite, q.any).get(sandboxId) === undefined) return [];
  const rowsOf = preparedOn(sqlite, q.rows);
  const statusOf = preparedOn(sqlite, q.status);
  const setPayload = preparedOn(sqlite, q.payload);
  const writer = new MembershipWriter(conn);
  const changes: MembershipChange[] = [];
  for (const { namespace, value, profileId } of added) {
    const rows = rowsOf.all(sandboxId, namespace, value) as PendingRow[];
    for (const row of rows) {
      if (row.importedAt + row.ttl * DAY_MS <= now) continue;
      const status =
        (statusOf.get(row.audienceId, profileId) as { status: MembershipStatus } | undefined)?.status ?? null;
      if (status === null || !CURRENT_STATUSES.includes(status)) {
        changes.push(writer.change(sandboxId, row.audienceId, profileId, status, true, now, 'import', null));
      }
      setPayload.run(row.payload, row.audienceId, profileId);
    }
  }
  writer.flushSizes(now);
  return changes;
}

/**
 * resolvePendingMembers through either database's handle, inside a pooled ingest's unit (the
 * same statements and decisions, awaited).
 */
export async function resolvePendingMembersOn(
  tx: Store,
  sandboxId: number,
  added: readonly AddedIdentity[],
  now: number,
): Promise<MembershipChange[]> {
  if (added.length === 0) return [];
  if ((await tx.get(q.any, [sandboxId])) === undefined) return [];
  // Decided first, then written together; a membership decided here is read from `decided`, as
  // the one-at-a-time writes left it (a profile may gain two identities of the same list).
  const moves: MembershipMove[] = [];
  const decided = new Map<string, MembershipStatus>();
  const payloads: unknown[][] = [];
  for (const { namespace, value, profileId } of added) {
    for (const row of await tx.all<PendingRow>(q.rows, [sandboxId, namespace, value])) {
      if (row.importedAt + row.ttl * DAY_MS <= now) continue;
      const key = `${row.audienceId}:${profileId}`;
      const status =
        decided.get(key) ??
        (await tx.get<{ status: MembershipStatus }>(q.status, [row.audienceId, profileId]))?.status ??
        null;
      if (status === null || !CURRENT_STATUSES.includes(status)) {
        moves.push(membershipMove(sandboxId, row.audienceId, profileId, status, true, now, 'import', null));
        decided.set(key, 'REALIZED');
      }
      payloads.push([row.payload, row.audienceId, profileId]);
    }
  }
  const writer = new StoreMembershipWriter(tx);
  const changes = await writer.writeAll(moves);
  await writer.flushSizes(now);
  // After the rows they go onto, in the lists' order: the last one listed wins, as before.
  for (const params of payloads) await tx.run(q.payload, params);
  return changes;
}
