import { and, desc, eq, gt, inArray, lt, type SQL, sql } from 'drizzle-orm';
import { cacheKey } from '../db/connection-cache.js';
import type { Connection } from '../db/index.js';
import { membershipHistory, memberships } from '../db/schema.js';
import { writeUnit } from '../db/unit.js';
import { type Audience, refreshAudienceSize, requireAudience } from './audiences.js';
import { badInput, conflict } from './errors.js';
import { CURRENT_STATUSES_SQL, isCurrentStatus, type MembershipStatus, statusSql } from './membership-statuses.js';
import { countRows, type Page, type PageArgs, pageQuery, toPage } from './paging.js';
import { type IdentityInput, identityProblem } from './profile-ingest.js';
import { profileIdByIdentity } from './profiles.js';

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

const WRITER_STATEMENTS = cacheKey<ReturnType<typeof prepareWriter>>('membership writer statements');

function prepareWriter(conn: Connection) {
  const { sqlite } = conn;
  return {
    enter: sqlite.prepare(
      `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)
       VALUES (?, ?, ?, ${statusSql('REALIZED')}, ?, ?, NULL)
       ON CONFLICT (audience_id, profile_id) DO UPDATE SET status = ${statusSql('REALIZED')}, qualified_at = excluded.qualified_at,
         last_evaluated_at = excluded.last_evaluated_at, exited_at = NULL`,
    ),
    exit: sqlite.prepare(
      `UPDATE memberships SET status = ${statusSql('EXITED')}, exited_at = ?, last_evaluated_at = ? WHERE audience_id = ? AND profile_id = ?`,
    ),
    history: sqlite.prepare(
      `INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause, definition_version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    size: sqlite.prepare('UPDATE audiences SET size = size + ?, last_evaluated_at = ? WHERE id = ?'),
  };
}

/**
 * Writes single membership transitions (call inside a write transaction): the row and a history
 * entry each; `flushSizes()` then moves each audience's size by what changed. Segment jobs write
 * whole audiences with set statements instead (segment-evaluation.ts).
 */
export class MembershipWriter {
  private readonly s;
  private readonly sizeDeltas = new Map<number, number>();

  constructor(conn: Connection) {
    this.s = conn.cache.get(WRITER_STATEMENTS, () => prepareWriter(conn));
  }

  /**
   * `from`: the stored status before (null: never a member); `definitionVersion`: the version of
   * the audience's definition that decided it (null for audiences without one).
   */
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
    const to: MembershipStatus = enters ? 'REALIZED' : 'EXITED';
    if (enters) this.s.enter.run(sandboxId, audienceId, profileId, at, at);
    else this.s.exit.run(at, at, audienceId, profileId);
    this.s.history.run(sandboxId, profileId, audienceId, at, from, to, cause, definitionVersion);
    this.sizeDeltas.set(audienceId, (this.sizeDeltas.get(audienceId) ?? 0) + (enters ? 1 : -1));
    return { sandboxId, audienceId, profileId, from, to, at, cause };
  }

  /** One size update per audience that changed (and its evaluation time). */
  flushSizes(at: number): void {
    for (const [audienceId, delta] of this.sizeDeltas) if (delta !== 0) this.s.size.run(delta, at, audienceId);
    this.sizeDeltas.clear();
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

const columns = {
  audienceId: memberships.audienceId,
  profileId: memberships.profileId,
  status: memberships.status,
  qualifiedAt: memberships.qualifiedAt,
  // A segment job leaves a member that stays EXISTING unwritten: a current member was confirmed
  // by its audience's latest evaluation when that is later than its row's last change.
  lastEvaluatedAt: sql<number>`CASE WHEN ${memberships.status} IN ${sql.raw(CURRENT_STATUSES_SQL)}
    THEN max(${memberships.lastEvaluatedAt}, coalesce((SELECT a.last_evaluated_at FROM audiences AS a WHERE a.id = ${memberships.audienceId}), 0))
    ELSE ${memberships.lastEvaluatedAt} END`,
  exitedAt: memberships.exitedAt,
  payload: memberships.payload,
};

/** An audience's members in profile order, optionally only some statuses. */
export async function listMembers(
  conn: Connection,
  sandboxId: number,
  audienceId: number,
  statuses: readonly MembershipStatus[] | null | undefined,
  args: PageArgs,
): Promise<Page<Membership> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const conditions: SQL[] = [eq(memberships.sandboxId, sandboxId), eq(memberships.audienceId, audienceId)];
  if (statuses && statuses.length > 0) conditions.push(inArray(memberships.status, [...statuses]));
  const base = [...conditions];
  if (query.after) conditions.push(gt(memberships.profileId, Number(query.after[0])));
  if (query.before) conditions.push(lt(memberships.profileId, Number(query.before[0])));
  const rows = conn.db
    .select(columns)
    .from(memberships)
    .where(and(...conditions))
    .orderBy(query.direction === 'forward' ? memberships.profileId : desc(memberships.profileId))
    .limit(query.fetch)
    .all() as Membership[];
  return {
    ...toPage(rows, query, (m) => [m.profileId]),
    totalCount: () => countRows(conn, memberships, and(...base)),
  };
}

/** Memberships of many profiles (all statuses), for the Profile.memberships loader. */
export async function membershipsOfProfiles(
  conn: Connection,
  sandboxId: number,
  profileIds: readonly number[],
): Promise<Map<number, Membership[]>> {
  const out = new Map<number, Membership[]>(profileIds.map((id) => [id, []]));
  if (profileIds.length === 0) return out;
  const rows = conn.db
    .select(columns)
    .from(memberships)
    .where(and(eq(memberships.sandboxId, sandboxId), inArray(memberships.profileId, [...profileIds])))
    .orderBy(memberships.profileId, memberships.audienceId)
    .all() as Membership[];
  for (const r of rows) out.get(r.profileId)?.push(r);
  return out;
}

/** A profile's membership transitions, newest first. */
export async function listMembershipHistory(
  conn: Connection,
  sandboxId: number,
  profileId: number,
  args: PageArgs,
): Promise<Page<MembershipTransition> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const conditions: SQL[] = [eq(membershipHistory.sandboxId, sandboxId), eq(membershipHistory.profileId, profileId)];
  const base = [...conditions];
  // Newest first by row id (ids grow with time).
  if (query.after) conditions.push(lt(membershipHistory.id, Number(query.after[0])));
  if (query.before) conditions.push(gt(membershipHistory.id, Number(query.before[0])));
  const rows = conn.db
    .select()
    .from(membershipHistory)
    .where(and(...conditions))
    .orderBy(query.direction === 'forward' ? desc(membershipHistory.id) : membershipHistory.id)
    .limit(query.fetch)
    .all() as MembershipTransition[];
  return {
    ...toPage(rows, query, (t) => [t.id]),
    totalCount: () => countRows(conn, membershipHistory, and(...base)),
  };
}

async function resolveIdentities(
  conn: Connection,
  sandboxId: number,
  identities: readonly IdentityInput[],
): Promise<number[]> {
  if (identities.length === 0) throw badInput('Give at least one identity', 'identities');
  if (identities.length > 10_000) throw badInput('At most 10,000 identities per call', 'identities');
  const ids: number[] = [];
  const unknown: string[] = [];
  identities.forEach((identity, i) => {
    const problem = identityProblem(identity);
    if (problem) throw badInput(`Invalid identity: ${problem}`, `identities.${i}`);
    const id = profileIdByIdentity(conn, sandboxId, identity);
    if (id === undefined) unknown.push(`${identity.namespace}:${identity.id}`);
    else ids.push(id);
  });
  if (unknown.length > 0) {
    throw badInput(
      `No profile has identity ${unknown.slice(0, 10).join(', ')}${unknown.length > 10 ? ', …' : ''}`,
      'identities',
    );
  }
  return [...new Set(ids)];
}

async function requireManual(conn: Connection, sandboxId: number, audienceId: number): Promise<Audience> {
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
  conn: Connection,
  sandboxId: number,
  audienceId: number,
  identities: readonly IdentityInput[],
  to: 'REALIZED' | 'EXITED',
  now: number,
): Promise<void> {
  await writeUnit(conn, async (tx) => {
    await requireManual(tx, sandboxId, audienceId);
    const current = tx.sqlite
      .prepare('SELECT status FROM memberships WHERE audience_id = ? AND profile_id = ?')
      .pluck();
    const writer = new MembershipWriter(tx);
    for (const profileId of await resolveIdentities(tx, sandboxId, identities)) {
      const status = (current.get(audienceId, profileId) as MembershipStatus | undefined) ?? null;
      const member = status !== null && isCurrentStatus(status);
      if (member === (to === 'REALIZED')) continue;
      // A MANUAL audience has no definition: no version decided it.
      writer.change(sandboxId, audienceId, profileId, status, to === 'REALIZED', now, 'manual', null);
    }
    await refreshAudienceSize(tx, audienceId);
    await touchAudience(tx, audienceId, now);
  });
}

/** Makes profiles members of a MANUAL audience (REALIZED). */
export async function addAudienceMembers(
  conn: Connection,
  sandboxId: number,
  audienceId: number,
  identities: readonly IdentityInput[],
  now = Date.now(),
): Promise<void> {
  await setManualMembership(conn, sandboxId, audienceId, identities, 'REALIZED', now);
}

/** Ends the membership of profiles in a MANUAL audience (EXITED). */
export async function removeAudienceMembers(
  conn: Connection,
  sandboxId: number,
  audienceId: number,
  identities: readonly IdentityInput[],
  now = Date.now(),
): Promise<void> {
  await setManualMembership(conn, sandboxId, audienceId, identities, 'EXITED', now);
}

async function touchAudience(conn: Connection, audienceId: number, now: number): Promise<void> {
  conn.sqlite
    .prepare('UPDATE audiences SET updated_at = ?, last_evaluated_at = ? WHERE id = ?')
    .run(now, now, audienceId);
}
