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
 * Run synchronously (preparedOn) inside the ingest's write transaction on the ingest path's
 * connection, or awaited inside a pooled ingest's unit: a fixed number of statements per ingest
 * whatever the number of identities it added (on PostgreSQL each statement is a round trip).
 */
const q = statements('pending-members', {
  /** Whether the sandbox has any list row at all (most have none: nothing else to read). */
  any: {
    sqlite: 'SELECT 1 AS found FROM external_members WHERE sandbox_id = ? LIMIT 1',
    postgres: 'SELECT 1 AS found FROM external_members WHERE sandbox_id = $1 LIMIT 1',
  },
  /**
   * The list rows naming any of the identities (a JSON array of [namespace, value, profileId]) in
   * audiences not archived, with their audience's TTL and the profile's membership there: in the
   * identities' order (`idx`), each one's rows in audience order. CROSS JOIN holds SQLite to the identities first,
   * each looked up in external_members_identity: left to choose, it walked every list row of the sandbox and read
   * the whole JSON array again for each (seconds per ingest batch against a list of 20,000).
   */
  rows: {
    sqlite: `SELECT j.key AS idx, x.audience_id AS "audienceId", x.payload, x.imported_at AS "importedAt",
        e.ttl_in_days AS ttl, m.status
      FROM json_each(?) AS j
      CROSS JOIN external_members x ON x.sandbox_id = ? AND x.namespace = j.value ->> 0 AND x.value = j.value ->> 1
      JOIN external_audiences e ON e.audience_id = x.audience_id
      JOIN audiences a ON a.id = x.audience_id
      LEFT JOIN memberships m ON m.audience_id = x.audience_id AND m.profile_id = j.value ->> 2
      WHERE a.lifecycle_state != 'ARCHIVED'
      ORDER BY j.key, x.audience_id`,
    postgres: `SELECT j.idx - 1 AS idx, x.audience_id AS "audienceId", CAST(x.payload AS text) AS payload,
        x.imported_at AS "importedAt", e.ttl_in_days AS ttl, m.status
      FROM jsonb_array_elements(CAST($1 AS jsonb)) WITH ORDINALITY AS j(v, idx)
      JOIN external_members x ON x.sandbox_id = $2 AND x.namespace = j.v ->> 0 AND x.value = j.v ->> 1
      JOIN external_audiences e ON e.audience_id = x.audience_id
      JOIN audiences a ON a.id = x.audience_id
      LEFT JOIN memberships m ON m.audience_id = x.audience_id AND m.profile_id = CAST(j.v ->> 2 AS bigint)
      WHERE a.lifecycle_state != 'ARCHIVED'
      ORDER BY j.idx, x.audience_id`,
  },
  /** The list rows' other fields onto their memberships (a JSON array of [audienceId, profileId, payload text]). */
  payloads: {
    sqlite: `UPDATE memberships SET payload = u.value ->> 2 FROM json_each(?) AS u
      WHERE memberships.audience_id = u.value ->> 0 AND memberships.profile_id = u.value ->> 1`,
    postgres: `UPDATE memberships AS m SET payload = CAST(u.v ->> 2 AS jsonb)
      FROM jsonb_array_elements(CAST($1 AS jsonb)) AS u(v)
      WHERE m.audience_id = CAST(u.v ->> 0 AS bigint) AND m.profile_id = CAST(u.v ->> 1 AS bigint)`,
  },
});

interface PendingRow {
  idx: number;
  audienceId: number;
  payload: string;
  importedAt: number;
  ttl: number;
  status: MembershipStatus | null;
}

/**
 * What the list rows found make of the profiles, the same on both databases: a profile not a
 * current member enters (once, though it may have gained two identities of one list), and every
 * live row's fields go onto its membership, the last row listed winning. Rows past their
 * audience's TTL are ignored.
 */
function pendingMoves(
  sandboxId: number,
  added: readonly AddedIdentity[],
  rows: readonly PendingRow[],
  now: number,
): { moves: MembershipMove[]; payloads: string | undefined } {
  const moves: MembershipMove[] = [];
  const decided = new Map<string, MembershipStatus>();
  const payloads = new Map<string, [number, number, string]>();
  for (const row of rows) {
    if (row.importedAt + row.ttl * DAY_MS <= now) continue;
    const { profileId } = added[row.idx]!;
    const key = `${row.audienceId}:${profileId}`;
    const status = decided.get(key) ?? row.status ?? null;
    if (status === null || !CURRENT_STATUSES.includes(status)) {
      moves.push(membershipMove(sandboxId, row.audienceId, profileId, status, true, now, 'import', null));
      decided.set(key, 'REALIZED');
    }
    payloads.delete(key);
    payloads.set(key, [row.audienceId, profileId, row.payload]);
  }
  return { moves, payloads: payloads.size > 0 ? JSON.stringify([...payloads.values()]) : undefined };
}

const identitiesJson = (added: readonly AddedIdentity[]) =>
  JSON.stringify(added.map(({ namespace, value, profileId }) => [namespace, value, profileId]));

/**
 * Makes profiles members of the external audiences whose lists name identities they just gained
 * (call inside the ingest's write transaction).
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
  const rows = preparedOn(sqlite, q.rows).all(identitiesJson(added), sandboxId) as PendingRow[];
  const { moves, payloads } = pendingMoves(sandboxId, added, rows, now);
  const writer = new MembershipWriter(conn);
  const changes = moves.map((move) => writer.write(move));
  writer.flushSizes(now);
  // After the rows they go onto.
  if (payloads) preparedOn(sqlite, q.payloads).run(payloads);
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
  const rows = await tx.all<PendingRow>(q.rows, [identitiesJson(added), sandboxId]);
  const { moves, payloads } = pendingMoves(sandboxId, added, rows, now);
  const writer = new StoreMembershipWriter(tx);
  const changes = await writer.writeAll(moves);
  await writer.flushSizes(now);
  if (payloads) await tx.run(q.payloads, [payloads]);
  return changes;
}
