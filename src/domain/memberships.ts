import type Database from 'better-sqlite3';
import type { Connection } from '../db/index.js';
import { preparedOn, statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import { writeUnit } from '../db/unit.js';
import { type Audience, refreshAudienceSize, requireAudience } from './audiences.js';
import { badInput, conflict } from './errors.js';
import { CURRENT_STATUSES_SQL, isCurrentStatus, type MembershipStatus, statusSql } from './membership-statuses.js';
import { integerBounds, type Page, type PageArgs, pageQuery, toPage } from './paging.js';
import { type IdentityInput, identityProblem } from './profile-ingest.js';

/**
 * What moved a membership, as membership_history.cause stores it; a job's entries (a segment job,
 * an ingestion run) carry its id after the cause (`job:<id>`).
 */
export const MEMBERSHIP_CAUSES = ['job', 'streaming', 'manual', 'expiry', 'import'] as const;
export type MembershipCause = (typeof MEMBERSHIP_CAUSES)[number];

/** One profile's move into (REALIZED) or out of (EXITED) an audience, as written. */
export interface MembershipChange {
  sandboxId: number;
  audienceId: number;
  profileId: number;
  from: MembershipStatus | null;
  to: MembershipStatus;
  at: number;
  /** What caused it (membership_history.cause); never `job`, whose writes are set statements. */
  cause: MembershipCause;
}

/**
 * A membership's columns. A segment job leaves a member that stays EXISTING unwritten: a current
 * member was confirmed by its audience's latest evaluation when that is later than its row's
 * last change. The payload is JSON text on both (PostgreSQL's jsonb spacing differs).
 */
const MEMBERSHIP = (
  greatest: 'max' | 'GREATEST',
  payload: string,
) => `audience_id AS "audienceId", profile_id AS "profileId",
  status, qualified_at AS "qualifiedAt",
  CASE WHEN status IN ${CURRENT_STATUSES_SQL}
    THEN ${greatest}(last_evaluated_at, coalesce((SELECT a.last_evaluated_at FROM audiences AS a WHERE a.id = memberships.audience_id), 0))
    ELSE last_evaluated_at END AS "lastEvaluatedAt",
  exited_at AS "exitedAt", ${payload} AS payload`;
const MEMBERSHIP_SQLITE = MEMBERSHIP('max', 'payload');
const MEMBERSHIP_PG = MEMBERSHIP('GREATEST', 'CAST(payload AS text)');

const TRANSITION = `id, profile_id AS "profileId", audience_id AS "audienceId", at, from_status AS "fromStatus",
  to_status AS "toStatus", cause, definition_version AS "definitionVersion"`;

/**
 * An audience's members: sandbox, audience, the statuses (JSON array, or null for all) twice,
 * then profile ids above and below (paging.ts integerBounds) and the limit.
 */
const MEMBERS = `sandbox_id = ? AND audience_id = ? AND (? IS NULL OR status IN (SELECT value FROM json_each(?)))`;
const MEMBERS_PG = `sandbox_id = $1 AND audience_id = $2
  AND (CAST($3 AS text) IS NULL OR status IN (SELECT value FROM jsonb_array_elements_text(CAST($4 AS jsonb))))`;

const q = statements('memberships', {
  /** A profile enters (REALIZED): sandbox, audience, profile, qualified at, evaluated at. */
  enter: {
    sqlite: `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)
       VALUES (?, ?, ?, ${statusSql('REALIZED')}, ?, ?, NULL)
       ON CONFLICT (audience_id, profile_id) DO UPDATE SET status = ${statusSql('REALIZED')}, qualified_at = excluded.qualified_at,
         last_evaluated_at = excluded.last_evaluated_at, exited_at = NULL`,
    postgres: `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)
       VALUES ($1, $2, $3, ${statusSql('REALIZED')}, $4, $5, NULL)
       ON CONFLICT (audience_id, profile_id) DO UPDATE SET status = ${statusSql('REALIZED')}, qualified_at = excluded.qualified_at,
         last_evaluated_at = excluded.last_evaluated_at, exited_at = NULL`,
  },
  /** A profile exits (EXITED): exited at, evaluated at, audience, profile. */
  exit: {
    sqlite: `UPDATE memberships SET status = ${statusSql('EXITED')}, exited_at = ?, last_evaluated_at = ? WHERE audience_id = ? AND profile_id = ?`,
    postgres: `UPDATE memberships SET status = ${statusSql('EXITED')}, exited_at = $1, last_evaluated_at = $2 WHERE audience_id = $3 AND profile_id = $4`,
  },
  history: {
    sqlite: `INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause, definition_version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    postgres: `INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause, definition_version)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
  },
  /**
   * `enter` for many: a JSON array of `enter`'s parameter lists (no two naming one membership:
   * PostgreSQL's upsert refuses to touch a row twice).
   */
  enterMany: {
    // SQLite reads "ON" after a FROM as a join's unless a WHERE comes first.
    sqlite: `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)
       SELECT m.value ->> 0, m.value ->> 1, m.value ->> 2, ${statusSql('REALIZED')}, m.value ->> 3, m.value ->> 4, NULL
       FROM json_each(?) AS m WHERE true
       ON CONFLICT (audience_id, profile_id) DO UPDATE SET status = ${statusSql('REALIZED')}, qualified_at = excluded.qualified_at,
         last_evaluated_at = excluded.last_evaluated_at, exited_at = NULL`,
    postgres: `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)
       SELECT CAST(m ->> 0 AS bigint), CAST(m ->> 1 AS bigint), CAST(m ->> 2 AS bigint), ${statusSql('REALIZED')},
         CAST(m ->> 3 AS bigint), CAST(m ->> 4 AS bigint), CAST(NULL AS bigint)
       FROM jsonb_array_elements(CAST($1 AS jsonb)) AS m
       ON CONFLICT (audience_id, profile_id) DO UPDATE SET status = ${statusSql('REALIZED')}, qualified_at = excluded.qualified_at,
         last_evaluated_at = excluded.last_evaluated_at, exited_at = NULL`,
  },
  /** `exit` for many: a JSON array of `exit`'s parameter lists, each naming its own membership. */
  exitMany: {
    sqlite: `UPDATE memberships SET status = ${statusSql('EXITED')}, exited_at = x.value ->> 0, last_evaluated_at = x.value ->> 1
      FROM json_each(?) AS x WHERE memberships.audience_id = x.value ->> 2 AND memberships.profile_id = x.value ->> 3`,
    postgres: `UPDATE memberships SET status = ${statusSql('EXITED')}, exited_at = CAST(x ->> 0 AS bigint),
        last_evaluated_at = CAST(x ->> 1 AS bigint)
      FROM jsonb_array_elements(CAST($1 AS jsonb)) AS x
      WHERE memberships.audience_id = CAST(x ->> 2 AS bigint) AND memberships.profile_id = CAST(x ->> 3 AS bigint)`,
  },
  /** `history` for many, ids given in the array's order: a JSON array of `history`'s parameter lists. */
  historyMany: {
    sqlite: `INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause, definition_version)
      SELECT h.value ->> 0, h.value ->> 1, h.value ->> 2, h.value ->> 3, h.value ->> 4, h.value ->> 5, h.value ->> 6, h.value ->> 7
      FROM json_each(?) AS h ORDER BY h.key`,
    postgres: `INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause, definition_version)
      SELECT CAST(h.x ->> 0 AS bigint), CAST(h.x ->> 1 AS bigint), CAST(h.x ->> 2 AS bigint), CAST(h.x ->> 3 AS bigint),
        h.x ->> 4, h.x ->> 5, h.x ->> 6, CAST(h.x ->> 7 AS bigint)
      FROM jsonb_array_elements(CAST($1 AS jsonb)) WITH ORDINALITY AS h(x, n) ORDER BY h.n`,
  },
  /** Moves an audience's size by a delta and sets its evaluation time. */
  moveSize: {
    sqlite: 'UPDATE audiences SET size = size + ?, last_evaluated_at = ? WHERE id = ?',
    postgres: 'UPDATE audiences SET size = size + $1, last_evaluated_at = $2 WHERE id = $3',
  },
  /**
   * The profile each identity of a JSON array of `[namespace, id]` pairs names, or null, by the
   * pair's index: the sandbox after the array.
   */
  profilesOfIdentities: {
    sqlite: `SELECT CAST(j.key AS integer) AS "index", i.profile_id AS "profileId" FROM json_each(?) AS j
      LEFT JOIN identities AS i ON i.sandbox_id = ? AND i.namespace = j.value ->> 0 AND i.value = j.value ->> 1
      ORDER BY j.key`,
    postgres: `SELECT CAST(j.n - 1 AS integer) AS "index", i.profile_id AS "profileId"
      FROM jsonb_array_elements(CAST($1 AS jsonb)) WITH ORDINALITY AS j(value, n)
      LEFT JOIN identities AS i ON i.sandbox_id = $2 AND i.namespace = j.value ->> 0 AND i.value = j.value ->> 1
      ORDER BY j.n`,
  },
  /** The stored status of the audience's memberships of the profiles of the JSON array. */
  statusesOf: {
    sqlite: `SELECT profile_id AS "profileId", status FROM memberships
      WHERE audience_id = ? AND profile_id IN (SELECT value FROM json_each(?)) ORDER BY profile_id`,
    postgres: `SELECT profile_id AS "profileId", status FROM memberships
      WHERE audience_id = $1 AND profile_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))
      ORDER BY profile_id`,
  },
  /** `enter` for the profiles of a JSON array: sandbox, audience, qualified at, evaluated at, the array. */
  enterAll: {
    sqlite: `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)
       SELECT ?, ?, value, ${statusSql('REALIZED')}, ?, ?, NULL FROM json_each(?) WHERE true
       ON CONFLICT (audience_id, profile_id) DO UPDATE SET status = ${statusSql('REALIZED')}, qualified_at = excluded.qualified_at,
         last_evaluated_at = excluded.last_evaluated_at, exited_at = NULL`,
    postgres: `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)
       SELECT CAST($1 AS bigint), CAST($2 AS bigint), CAST(value AS bigint), ${statusSql('REALIZED')}, CAST($3 AS bigint),
         CAST($4 AS bigint), CAST(NULL AS bigint)
       FROM jsonb_array_elements_text(CAST($5 AS jsonb))
       ON CONFLICT (audience_id, profile_id) DO UPDATE SET status = ${statusSql('REALIZED')}, qualified_at = excluded.qualified_at,
         last_evaluated_at = excluded.last_evaluated_at, exited_at = NULL`,
  },
  /** `exit` for the profiles of a JSON array: exited at, evaluated at, audience, the array. */
  exitAll: {
    sqlite: `UPDATE memberships SET status = ${statusSql('EXITED')}, exited_at = ?, last_evaluated_at = ?
      WHERE audience_id = ? AND profile_id IN (SELECT value FROM json_each(?))`,
    postgres: `UPDATE memberships SET status = ${statusSql('EXITED')}, exited_at = $1, last_evaluated_at = $2
      WHERE audience_id = $3 AND profile_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($4 AS jsonb)))`,
  },
  /**
   * Manual history entries, in the array's order: sandbox, audience, at, to status, then a JSON
   * array of `[profile id, from status]` pairs. No definition version: a MANUAL audience has none.
   */
  manualHistory: {
    sqlite: `INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause, definition_version)
      SELECT ?, j.value ->> 0, ?, ?, j.value ->> 1, ?, 'manual', NULL FROM json_each(?) AS j ORDER BY j.key`,
    postgres: `INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause, definition_version)
      SELECT CAST($1 AS bigint), CAST(j.value ->> 0 AS bigint), CAST($2 AS bigint), CAST($3 AS bigint), j.value ->> 1,
        CAST($4 AS text), 'manual', CAST(NULL AS bigint)
      FROM jsonb_array_elements(CAST($5 AS jsonb)) WITH ORDINALITY AS j(value, n) ORDER BY j.n`,
  },
  touchAudience: {
    sqlite: 'UPDATE audiences SET updated_at = ?, last_evaluated_at = ? WHERE id = ?',
    postgres: 'UPDATE audiences SET updated_at = $1, last_evaluated_at = $2 WHERE id = $3',
  },
  /** A page of members in profile order (MEMBERS), read upwards or downwards. */
  membersUp: {
    sqlite: `SELECT ${MEMBERSHIP_SQLITE} FROM memberships WHERE ${MEMBERS} AND profile_id > ? AND profile_id < ?
      ORDER BY profile_id LIMIT ?`,
    postgres: `SELECT ${MEMBERSHIP_PG} FROM memberships WHERE ${MEMBERS_PG} AND profile_id > $5 AND profile_id < $6
      ORDER BY profile_id LIMIT $7`,
  },
  membersDown: {
    sqlite: `SELECT ${MEMBERSHIP_SQLITE} FROM memberships WHERE ${MEMBERS} AND profile_id > ? AND profile_id < ?
      ORDER BY profile_id DESC LIMIT ?`,
    postgres: `SELECT ${MEMBERSHIP_PG} FROM memberships WHERE ${MEMBERS_PG} AND profile_id > $5 AND profile_id < $6
      ORDER BY profile_id DESC LIMIT $7`,
  },
  countMembers: {
    sqlite: `SELECT count(*) AS n FROM memberships WHERE ${MEMBERS}`,
    postgres: `SELECT count(*) AS n FROM memberships WHERE ${MEMBERS_PG}`,
  },
  /** Memberships of the profiles of the JSON array, all statuses. */
  ofProfiles: {
    sqlite: `SELECT ${MEMBERSHIP_SQLITE} FROM memberships
      WHERE sandbox_id = ? AND profile_id IN (SELECT value FROM json_each(?)) ORDER BY profile_id, audience_id`,
    postgres: `SELECT ${MEMBERSHIP_PG} FROM memberships
      WHERE sandbox_id = $1 AND profile_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))
      ORDER BY profile_id, audience_id`,
  },
  /** A page of a profile's transitions: sandbox, profile, ids above and below, limit; newest first. */
  historyNewestFirst: {
    sqlite: `SELECT ${TRANSITION} FROM membership_history WHERE sandbox_id = ? AND profile_id = ? AND id > ? AND id < ?
      ORDER BY id DESC LIMIT ?`,
    postgres: `SELECT ${TRANSITION} FROM membership_history WHERE sandbox_id = $1 AND profile_id = $2 AND id > $3 AND id < $4
      ORDER BY id DESC LIMIT $5`,
  },
  historyOldestFirst: {
    sqlite: `SELECT ${TRANSITION} FROM membership_history WHERE sandbox_id = ? AND profile_id = ? AND id > ? AND id < ?
      ORDER BY id LIMIT ?`,
    postgres: `SELECT ${TRANSITION} FROM membership_history WHERE sandbox_id = $1 AND profile_id = $2 AND id > $3 AND id < $4
      ORDER BY id LIMIT $5`,
  },
  countHistory: {
    sqlite: 'SELECT count(*) AS n FROM membership_history WHERE sandbox_id = ? AND profile_id = ?',
    postgres: 'SELECT count(*) AS n FROM membership_history WHERE sandbox_id = $1 AND profile_id = $2',
  },
});

/**
 * One membership transition decided, before it is written: the row's write (`enter` or `exit`
 * with its parameters), the history entry's parameters and the size move. Both writers below
 * run the same decisions, synchronously on SQLite or awaited on a pooled database.
 */
export interface MembershipMove {
  change: MembershipChange;
  enters: boolean;
  /** `enter`'s parameters when it enters, `exit`'s when it leaves. */
  row: unknown[];
  history: unknown[];
}

/**
 * `from`: the stored status before (null: never a member); `definitionVersion`: the version of
 * the audience's definition that decided it (null for audiences without one).
 */
export function membershipMove(
  sandboxId: number,
  audienceId: number,
  profileId: number,
  from: MembershipStatus | null,
  enters: boolean,
  at: number,
  cause: MembershipCause,
  definitionVersion: number | null,
): MembershipMove {
  const to: MembershipStatus = enters ? 'REALIZED' : 'EXITED';
  return {
    change: { sandboxId, audienceId, profileId, from, to, at, cause },
    enters,
    row: enters ? [sandboxId, audienceId, profileId, at, at] : [at, at, audienceId, profileId],
    history: [sandboxId, profileId, audienceId, at, from, to, cause, definitionVersion],
  };
}

/** Each audience's size move, summed over the transitions written (what both writers flush). */
class SizeMoves {
  private readonly deltas = new Map<number, number>();

  add(move: MembershipMove): void {
    const { audienceId } = move.change;
    this.deltas.set(audienceId, (this.deltas.get(audienceId) ?? 0) + (move.enters ? 1 : -1));
  }

  /** `moveSize`'s parameters for each audience whose size moved; the moves are then forgotten. */
  take(at: number): unknown[][] {
    const out: unknown[][] = [];
    for (const [audienceId, delta] of this.deltas) if (delta !== 0) out.push([delta, at, audienceId]);
    this.deltas.clear();
    return out;
  }
}

/**
 * Writes single membership transitions (call inside a write transaction): the row and a history
 * entry each; `flushSizes()` then moves each audience's size by what changed. Segment jobs write
 * whole audiences with set statements instead (segment-evaluation.ts).
 */
export class MembershipWriter {
  private readonly s: Record<'enter' | 'exit' | 'history' | 'size', Database.Statement>;
  private readonly sizes = new SizeMoves();

  /**
   * Synchronous on SQLite, on the connection given (the streaming step, an external audience's
   * pending members and expiry, on their paths' connections): the catalogue's statements
   * prepared on it.
   */
  constructor(conn: Connection) {
    const { sqlite } = conn;
    this.s = {
      enter: preparedOn(sqlite, q.enter),
      exit: preparedOn(sqlite, q.exit),
      history: preparedOn(sqlite, q.history),
      size: preparedOn(sqlite, q.moveSize),
    };
  }

  /** Decides (membershipMove, same parameters) and writes one transition. */
  change(
    sandboxId: number,
    audienceId: number,
    profileId: number,
    from: MembershipStatus | null,
    enters: boolean,
    at: number,
    cause: MembershipCause,
    definitionVersion: number | null,
  ): MembershipChange {
    return this.write(membershipMove(sandboxId, audienceId, profileId, from, enters, at, cause, definitionVersion));
  }

  /** Writes one transition already decided (membershipMove): its row and its history entry. */
  write(move: MembershipMove): MembershipChange {
    (move.enters ? this.s.enter : this.s.exit).run(...move.row);
    this.s.history.run(...move.history);
    this.sizes.add(move);
    return move.change;
  }

  /** One size update per audience that changed (and its evaluation time). */
  flushSizes(at: number): void {
    for (const params of this.sizes.take(at)) this.s.size.run(...params);
  }
}

/**
 * MembershipWriter on any store (streaming, an external audience's pending members and expiry on
 * a pooled database, inside their units): the same decisions and rows, written many moves at a
 * time, since on PostgreSQL each statement is a round trip the ingest's unit waits on.
 */
export class StoreMembershipWriter {
  private readonly sizes = new SizeMoves();

  constructor(private readonly tx: Store) {}

  /**
   * Writes decided transitions (membershipMove) in their order, what writing them one at a time
   * writes, history ids in that order too: at most three statements per run of moves that name
   * each membership once. A membership moved twice starts the next run, so its second move
   * lands on the first (and PostgreSQL's upsert never meets a row twice).
   */
  async writeAll(moves: readonly MembershipMove[]): Promise<MembershipChange[]> {
    let run: MembershipMove[] = [];
    const named = new Set<string>();
    for (const move of moves) {
      const key = `${move.change.audienceId}:${move.change.profileId}`;
      if (named.has(key)) {
        await this.writeRun(run);
        run = [];
        named.clear();
      }
      named.add(key);
      run.push(move);
    }
    await this.writeRun(run);
    return moves.map((m) => m.change);
  }

  /** Moves naming distinct memberships: their row writes commute, so enters and exits go apart. */
  private async writeRun(run: readonly MembershipMove[]): Promise<void> {
    if (run.length === 0) return;
    const enters = run.filter((m) => m.enters).map((m) => m.row);
    const exits = run.filter((m) => !m.enters).map((m) => m.row);
    if (enters.length > 0) await this.tx.run(q.enterMany, [JSON.stringify(enters)]);
    if (exits.length > 0) await this.tx.run(q.exitMany, [JSON.stringify(exits)]);
    await this.tx.run(q.historyMany, [JSON.stringify(run.map((m) => m.history))]);
    for (const move of run) this.sizes.add(move);
  }

  /** One size update per audience that changed (and its evaluation time). */
  async flushSizes(at: number): Promise<void> {
    for (const params of this.sizes.take(at)) await this.tx.run(q.moveSize, params);
  }
}

export interface Membership {
  audienceId: number;
  profileId: number;
  status: MembershipStatus;
  qualifiedAt: number | null;
  lastEvaluatedAt: number;
  exitedAt: number | null;
  /** JSON object: an external audience member's other values from the list; null elsewhere. */
  payload: string | null;
}

export interface MembershipTransition {
  id: number;
  profileId: number;
  audienceId: number;
  at: number;
  fromStatus: MembershipStatus | null;
  toStatus: MembershipStatus;
  cause: string;
  /** The version of the audience's definition that decided it (null: manual audiences, older rows). */
  definitionVersion: number | null;
}

/** An audience's members in profile order, optionally only some statuses. */
export async function listMembers(
  conn: Store,
  sandboxId: number,
  audienceId: number,
  statuses: readonly MembershipStatus[] | null | undefined,
  args: PageArgs,
): Promise<Page<Membership> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const only = statuses && statuses.length > 0 ? JSON.stringify(statuses) : null;
  const filters = [sandboxId, audienceId, only, only];
  const { above, below } = integerBounds(query, 'ascending');
  const rows = await conn.all<Membership>(query.direction === 'forward' ? q.membersUp : q.membersDown, [
    ...filters,
    above,
    below,
    query.fetch,
  ]);
  return {
    ...toPage(rows, query, (m) => [m.profileId]),
    totalCount: async () => (await conn.get<{ n: number }>(q.countMembers, filters))!.n,
  };
}

/** Memberships of many profiles (all statuses), for the Profile.memberships loader. */
export async function membershipsOfProfiles(
  conn: Store,
  sandboxId: number,
  profileIds: readonly number[],
): Promise<Map<number, Membership[]>> {
  const out = new Map<number, Membership[]>(profileIds.map((id) => [id, []]));
  if (profileIds.length === 0) return out;
  const rows = await conn.all<Membership>(q.ofProfiles, [sandboxId, JSON.stringify(profileIds)]);
  for (const r of rows) out.get(r.profileId)?.push(r);
  return out;
}

/** A profile's membership transitions, newest first (by row id: ids grow with time). */
export async function listMembershipHistory(
  conn: Store,
  sandboxId: number,
  profileId: number,
  args: PageArgs,
): Promise<Page<MembershipTransition> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const { above, below } = integerBounds(query);
  const rows = await conn.all<MembershipTransition>(
    query.direction === 'forward' ? q.historyNewestFirst : q.historyOldestFirst,
    [sandboxId, profileId, above, below, query.fetch],
  );
  return {
    ...toPage(rows, query, (t) => [t.id]),
    totalCount: async () => (await conn.get<{ n: number }>(q.countHistory, [sandboxId, profileId]))!.n,
  };
}

async function resolveIdentities(
  conn: Store,
  sandboxId: number,
  identities: readonly IdentityInput[],
): Promise<number[]> {
  if (identities.length === 0) throw badInput('Give at least one identity', 'identities');
  if (identities.length > 10_000) throw badInput('At most 10,000 identities per call', 'identities');
  identities.forEach((identity, i) => {
    const problem = identityProblem(identity);
    if (problem) throw badInput(`Invalid identity: ${problem}`, `identities.${i}`);
  });
  const rows = await conn.all<{ index: number; profileId: number | null }>(q.profilesOfIdentities, [
    JSON.stringify(identities.map((identity) => [identity.namespace, identity.id])),
    sandboxId,
  ]);
  const ids: number[] = [];
  const unknown: string[] = [];
  for (const { index, profileId } of rows) {
    const identity = identities[index]!;
    if (profileId === null) unknown.push(`${identity.namespace}:${identity.id}`);
    else ids.push(profileId);
  }
  if (unknown.length > 0) {
    throw badInput(
      `No profile has identity ${unknown.slice(0, 10).join(', ')}${unknown.length > 10 ? ', …' : ''}`,
      'identities',
    );
  }
  return [...new Set(ids)];
}

async function requireManual(conn: Store, sandboxId: number, audienceId: number): Promise<Audience> {
  const audience = await requireAudience(conn, sandboxId, audienceId);
  if (audience.origin !== 'MANUAL') {
    throw badInput(`Members are added by hand only to MANUAL audiences; this one is ${audience.origin}`, 'audienceId');
  }
  if (audience.lifecycleState === 'ARCHIVED')
    throw conflict('The audience is ARCHIVED; archived audiences cannot change');
  return audience;
}

/**
 * Moves profiles of a MANUAL audience in (REALIZED) or out (EXITED), recording each actual
 * change in history; profiles already in that state are left alone.
 */
async function setManualMembership(
  conn: Store,
  sandboxId: number,
  audienceId: number,
  identities: readonly IdentityInput[],
  to: 'REALIZED' | 'EXITED',
  now: number,
): Promise<void> {
  await writeUnit(conn, async (tx) => {
    await requireManual(tx, sandboxId, audienceId);
    const profileIds = await resolveIdentities(tx, sandboxId, identities);
    const stored = await tx.all<{ profileId: number; status: MembershipStatus }>(q.statusesOf, [
      audienceId,
      JSON.stringify(profileIds),
    ]);
    const statuses = new Map(stored.map((r) => [r.profileId, r.status]));
    // Only actual changes: a profile already in that state is left alone.
    const moving = profileIds.filter((id) => {
      const status = statuses.get(id);
      return (status !== undefined && isCurrentStatus(status)) !== (to === 'REALIZED');
    });
    if (moving.length > 0) {
      const list = JSON.stringify(moving);
      if (to === 'REALIZED') await tx.run(q.enterAll, [sandboxId, audienceId, now, now, list]);
      else await tx.run(q.exitAll, [now, now, audienceId, list]);
      const entries = moving.map((id) => [id, statuses.get(id) ?? null]);
      await tx.run(q.manualHistory, [sandboxId, audienceId, now, to, JSON.stringify(entries)]);
    }
    // The size is recounted, not moved by the changes: the same answer after any mix of them.
    await refreshAudienceSize(tx, audienceId);
    await touchAudience(tx, audienceId, now);
  });
}

/** Makes profiles members of a MANUAL audience (REALIZED). */
export async function addAudienceMembers(
  conn: Store,
  sandboxId: number,
  audienceId: number,
  identities: readonly IdentityInput[],
  now = Date.now(),
): Promise<void> {
  await setManualMembership(conn, sandboxId, audienceId, identities, 'REALIZED', now);
}

/** Ends the membership of profiles in a MANUAL audience (EXITED). */
export async function removeAudienceMembers(
  conn: Store,
  sandboxId: number,
  audienceId: number,
  identities: readonly IdentityInput[],
  now = Date.now(),
): Promise<void> {
  await setManualMembership(conn, sandboxId, audienceId, identities, 'EXITED', now);
}

async function touchAudience(conn: Store, audienceId: number, now: number): Promise<void> {
  await conn.run(q.touchAudience, [now, now, audienceId]);
}
