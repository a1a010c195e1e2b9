/**
 * Streaming segmentation on a pooled database (PostgreSQL): the counterpart of streaming.ts's
 * synchronous step, run inside the ingest's unit with awaited statements by name. The plan, the
 * choice of definitions per profile, the JS evaluation and the membership decisions are
 * streaming.ts's and memberships.ts's own; what differs is where the documents come from. A node
 * of a cluster keeps no windows in memory (another node may have written the profile's events),
 * so each step reads the profiles' attributes, their events inside the streaming window of the
 * types the plan reads, and their memberships, in three statements, inside the unit: what the
 * ingest has just written is read back with the rest.
 *
 * Publishing stays the caller's: the changes are returned, to be published once the unit has
 * committed.
 */
import { createHash } from 'node:crypto';
import { cacheKey } from '../db/connection-cache.js';
import { type Statement, statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import { type UnitOf, writeUnit } from '../db/unit.js';
import {
  type CheckedExpression,
  compilePredicate,
  evaluate,
  eventReads,
  PqlError,
  STREAMING_WINDOW_MS,
} from '../pql/index.js';
import { definitionsByIds, dependenciesOf, dependencyOrder } from './definitions.js';
import { CURRENT_STATUSES_SQL, type MembershipStatus } from './membership-statuses.js';
import { type MembershipChange, type MembershipMove, membershipMove, StoreMembershipWriter } from './memberships.js';
import { checkDefinitionOn } from './pg-expressions.js';
import { ingestLock } from './pooled-ingest.js';
import { loadProfileDocumentsOn } from './profile-documents.js';
import type { AddedEventTypes } from './profile-ingest.js';
import { readCatalog } from './profile-schema.js';
import {
  buildPlan,
  type DefinitionVersionRow,
  evaluateWork,
  planFingerprint,
  type StreamingPlan,
  streamingStatements,
  streamingWork,
} from './streaming.js';
import type { WrittenEvents } from './streaming-window.js';

const PLANS = cacheKey<Map<number, StreamingPlan>>('streaming plans read through the store');

/**
 * streamingPlan read through a store: the definitions' versions at every call (another node may
 * have changed one), the definitions, their order and their checked expressions only when those
 * moved. Kept per store, so across the units of a pool.
 */
export async function streamingPlanOn(tx: Store, sandboxId: number): Promise<StreamingPlan> {
  const rows = await tx.all<DefinitionVersionRow>(streamingStatements.definitionVersions, [sandboxId]);
  const fingerprint = planFingerprint(rows);
  const bySandbox = tx.cache.get(PLANS, () => new Map<number, StreamingPlan>());
  const cached = bySandbox.get(sandboxId);
  if (cached?.fingerprint === fingerprint) return cached;
  const ids = rows.map((r) => r.id);
  const definitions =
    ids.length === 0
      ? []
      : dependencyOrder(
          [...(await definitionsByIds(tx, sandboxId, ids)).values()],
          await dependenciesOf(tx, sandboxId, ids),
        );
  const checked: CheckedExpression[] = [];
  if (definitions.length > 0) {
    const catalog = await readCatalog(tx, sandboxId);
    for (const d of definitions) {
      const input = { format: 'PQL_TEXT' as const, value: d.expressionText };
      checked.push((await checkDefinitionOn(tx, sandboxId, catalog, input)).checked);
    }
  }
  const plan = buildPlan(fingerprint, definitions, checked);
  bySandbox.set(sandboxId, plan);
  return plan;
}

export interface PooledStreamingOptions {
  /** Per profile that existed before, the types of the events it gained (EventsIngested.addedTypes). */
  added?: AddedEventTypes;
  /**
   * The events the ingest wrote (EventsIngested.written). Taken for the same call as SQLite's
   * hook; not needed here, since the documents are read inside the unit that wrote them.
   */
  written?: WrittenEvents;
  cause: 'streaming' | 'expiry';
}

/**
 * Evaluates the sandbox's streaming definitions for the given profiles at `now` inside the unit
 * `tx` and writes the transitions (memberships, history, audience sizes), as segmentProfiles
 * does on SQLite: definitions in dependency order, each result seen by the next (inSegment);
 * with `added`, a profile that only gained events meets only the definitions those can change.
 * Returns the changes, for the caller to publish once the unit has committed.
 */
export async function segmentProfilesPooled(
  tx: UnitOf<Store>,
  sandboxId: number,
  profileIds: readonly number[],
  now: number,
  options: PooledStreamingOptions,
): Promise<MembershipChange[]> {
  const plan = await streamingPlanOn(tx, sandboxId);
  if (plan.evaluated.length === 0 || profileIds.length === 0) return [];
  const work = streamingWork(plan.evaluated, profileIds, options.added);
  if (work.size === 0) return [];
  const docs = await loadProfileDocumentsOn(
    tx,
    sandboxId,
    [...work.keys()],
    now - STREAMING_WINDOW_MS,
    plan.eventTypes,
  );
  // Decided first, in SQLite's order (profiles, then definitions), then written in that order.
  const moves: MembershipMove[] = [];
  evaluateWork(work, docs, now, (profileId, audienceId, version, from, qualifies) => {
    moves.push(membershipMove(sandboxId, audienceId, profileId, from, qualifies, now, options.cause, version));
  });
  return writeMoves(tx, moves, now);
}

async function writeMoves(tx: Store, moves: readonly MembershipMove[], now: number): Promise<MembershipChange[]> {
  if (moves.length === 0) return [];
  const writer = new StoreMembershipWriter(tx);
  const changes = await writer.writeAll(moves);
  await writer.flushSizes(now);
  return changes;
}

const EXPIRED = cacheKey<Map<string, Statement>>('streaming expiry statements');

/** Texts kept per store before the cache starts again (each one a prepared statement per client). */
const MAX_EXPIRY_TEXTS = 500;

/**
 * The statement that finds an audience's current members for whom `checked` no longer holds at
 * `now`, compiled for the store's database; its parameters are the predicate's, then the
 * audience. compilePredicate is exactly 0 or 1, so NOT is exact. The statement is kept per text
 * (the same definition compiles to the same text whatever `now`, which is bound) and named after
 * it, so a PostgreSQL client prepares each text once.
 */
function expiredMembers(
  store: Store,
  checked: CheckedExpression,
  now: number,
): { statement: Statement; params: unknown[] } {
  const predicate = compilePredicate(checked, { now, dialect: store.dialect });
  const audience = store.dialect === 'postgres' ? `$${predicate.params.length + 1}` : '?';
  const text = `SELECT m.profile_id AS "profileId", m.status AS status FROM memberships AS m JOIN profiles AS p ON p.id = m.profile_id
    WHERE NOT (${predicate.sql}) AND m.audience_id = ${audience} AND m.status IN ${CURRENT_STATUSES_SQL}
    ORDER BY m.profile_id`;
  const cache = store.cache.get(EXPIRED, () => new Map<string, Statement>());
  let statement = cache.get(text);
  if (!statement) {
    if (cache.size >= MAX_EXPIRY_TEXTS) cache.clear();
    const name = `streaming-pooled.expired.${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
    // Only the store's own dialect is compiled (the other may not express the expression).
    statement = { sqlite: text, postgres: text, name };
    cache.set(text, statement);
  }
  return { statement, params: predicate.params };
}

const q = statements('streaming-pooled', {
  /** The sandboxes with streaming definitions: the ones a sweep visits. */
  streamingSandboxes: {
    sqlite: `SELECT DISTINCT sandbox_id AS "sandboxId" FROM segment_definitions
      WHERE eval_streaming = 1 AND eligible_streaming = 1 ORDER BY sandbox_id`,
    postgres: `SELECT DISTINCT sandbox_id AS "sandboxId" FROM segment_definitions
      WHERE eval_streaming AND eligible_streaming ORDER BY sandbox_id`,
  },
  /** An audience's current members in profile order: the audience. */
  currentMembers: {
    sqlite: `SELECT profile_id AS "profileId", status FROM memberships
      WHERE audience_id = ? AND status IN ${CURRENT_STATUSES_SQL} ORDER BY profile_id`,
    postgres: `SELECT profile_id AS "profileId", status FROM memberships
      WHERE audience_id = $1 AND status IN ${CURRENT_STATUSES_SQL} ORDER BY profile_id`,
  },
});

type Member = { profileId: number; status: MembershipStatus };

/**
 * The audience's current members for whom `checked` no longer holds at `now`, in profile order:
 * by its predicate compiled for the store's database, or, for an expression that database cannot
 * express (PostgreSQL refuses a few constructs SQLite runs), by the JS engine on the members'
 * documents, whose streaming window holds every event a streaming definition reads.
 */
async function expired(
  tx: Store,
  sandboxId: number,
  audienceId: number,
  checked: CheckedExpression,
  now: number,
): Promise<Member[]> {
  let compiled: { statement: Statement; params: unknown[] } | undefined;
  try {
    compiled = expiredMembers(tx, checked, now);
  } catch (err) {
    if (!(err instanceof PqlError)) throw err;
  }
  if (compiled) return tx.all<Member>(compiled.statement, [...compiled.params, audienceId]);
  const members = await tx.all<Member>(q.currentMembers, [audienceId]);
  if (members.length === 0) return [];
  const docs = await loadProfileDocumentsOn(
    tx,
    sandboxId,
    members.map((m) => m.profileId),
    now - STREAMING_WINDOW_MS,
    eventReads(checked).eventTypes,
  );
  return members.filter((m) => {
    const doc = docs.get(m.profileId);
    return doc !== undefined && !evaluate(checked, doc, { now });
  });
}

/** The sandboxes a sweep visits (StreamingSegmentation's timer reads the same on SQLite). */
export async function streamingSandboxIds(store: Store): Promise<number[]> {
  return (await store.all<{ sandboxId: number }>(q.streamingSandboxes)).map((r) => r.sandboxId);
}

/**
 * sweepExpired on a pooled database: exits the members of time-dependent streaming audiences for
 * whom the condition no longer holds at `now`, then evaluates those profiles again so the
 * audiences that read them (inSegment) follow; one unit, under the sandbox's ingest lock so that
 * an ingest's streaming step and the sweep never decide on the same membership at once. Returns
 * the changes, for the caller to publish once it has resolved (the unit has committed).
 */
export function sweepExpiredPooled(store: Store, sandboxId: number, now: number): Promise<MembershipChange[]> {
  return writeUnit(
    store,
    async (tx) => {
      // Each audience's exits are written before the next is read, as on SQLite.
      const writer = new StoreMembershipWriter(tx);
      const changes: MembershipChange[] = [];
      for (const { audienceId, version, checked } of (await streamingPlanOn(tx, sandboxId)).evaluated) {
        if (!checked.timeDependent) continue;
        const exits = (await expired(tx, sandboxId, audienceId, checked, now)).map(({ profileId, status }) =>
          membershipMove(sandboxId, audienceId, profileId, status, false, now, 'expiry', version),
        );
        changes.push(...(await writer.writeAll(exits)));
      }
      await writer.flushSizes(now);
      // The profiles that left are evaluated again, so the audiences reading those (inSegment) follow.
      const affected = [...new Set(changes.map((c) => c.profileId))];
      changes.push(...(await segmentProfilesPooled(tx, sandboxId, affected, now, { cause: 'expiry' })));
      return changes;
    },
    { lock: ingestLock(sandboxId) },
  );
}
