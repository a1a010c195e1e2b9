/**
 * Streaming segmentation (docs/domain.md "Streaming and edge segmentation"): when profiles or events
 * are ingested, the DRAFT or PUBLISHED definitions with streaming enabled (and eligible) that
 * read what changed are evaluated for each changed profile with the JS engine at the ingest
 * time, and its membership is updated in the ingest's own transaction; the changes are published
 * on the sandbox's membership topic once it has committed. Conditions on time windows also stop
 * holding without new data: a sweep exits the members for whom they no longer hold.
 */

import type { Logger } from 'pino';
import { isBusy, withoutBusyWait } from '../db/busy.js';
import { cacheKey } from '../db/connection-cache.js';
import type { Connection } from '../db/index.js';
import { preparedOn, statements } from '../db/statement.js';
import { dataVersion } from '../db/write-stamp.js';
import { type CheckedExpression, compilePredicate, evaluate, eventReads, STREAMING_WINDOW_MS } from '../pql/index.js';
import { definitionsByIdsSync, dependenciesOfSync, dependencyOrder, type SegmentDefinition } from './definitions.js';
import { checkedDefinition } from './evaluation.js';
import { type EventBus, topics } from './events.js';
import { CURRENT_STATUSES_SQL, type MembershipStatus } from './membership-statuses.js';
import { type MembershipChange, MembershipWriter } from './memberships.js';
import type { StoredProfileDocument } from './profile-documents.js';
import type { AddedEventTypes, ProfilesChangedHook } from './profile-ingest.js';
import {
  configureStreamingWindows,
  StreamingWindows,
  streamingWindows,
  type WrittenEvents,
} from './streaming-window.js';

/**
 * The versions of the sandbox's streaming definitions: they say when a definition or its
 * audience (lifecycle) changed. Read at every ingest, synchronously on SQLite (preparedOn) and
 * awaited on a pooled database (streaming-pooled.ts).
 */
export const streamingStatements = statements('streaming', {
  definitionVersions: {
    sqlite: `SELECT d.id AS id, d.version AS dv, d.created_at AS dc, a.id AS aid, a.version AS av FROM segment_definitions d JOIN audiences a ON a.id = d.audience_id
       WHERE d.sandbox_id = ? AND d.eval_streaming = 1 AND d.eligible_streaming = 1
         AND a.lifecycle_state IN ('DRAFT', 'PUBLISHED')
       ORDER BY d.id`,
    postgres: `SELECT d.id AS id, d.version AS dv, d.created_at AS dc, a.id AS aid, a.version AS av FROM segment_definitions d JOIN audiences a ON a.id = d.audience_id
       WHERE d.sandbox_id = $1 AND d.eval_streaming AND d.eligible_streaming
         AND a.lifecycle_state IN ('DRAFT', 'PUBLISHED')
       ORDER BY d.id`,
  },
});

/** A row of `definitionVersions`. */
export interface DefinitionVersionRow {
  id: number;
  dv: number;
  dc: number;
  aid: number;
  av: number;
}

/** What the plan is built again on: creation time and audience id too, so a row that replaced a deleted one is never taken for it. */
export function planFingerprint(rows: readonly DefinitionVersionRow[]): string {
  return rows.map((r) => `${r.id}:${r.dv}:${r.dc}:${r.aid}:${r.av}`).join(',');
}

/** The sandbox's streaming definitions, each before the definitions whose inSegment reads it. */
export function streamingDefinitions(conn: Connection, sandboxId: number): SegmentDefinition[] {
  return streamingPlan(conn, sandboxId).definitions;
}

export interface StreamingPlan {
  /** Each definition's and audience's version: the plan is built again when it changes. */
  fingerprint: string;
  definitions: SegmentDefinition[];
  evaluated: PlannedDefinition[];
  /** The event types any of them reads (null: any type): what the streaming windows hold. */
  eventTypes: ReadonlySet<string> | null;
}

export interface PlannedDefinition {
  audienceId: number;
  version: number;
  checked: CheckedExpression;
  /** The event types whose events can change it (null: any type; empty: it reads no events). */
  eventTypes: ReadonlySet<string> | null;
  /** It names audiences (inSegment): their memberships can move by other paths, so it follows every change. */
  readsAudiences: boolean;
}

let evaluations = 0;

/** Definition evaluations streaming has run in this process (`segql_streaming_evaluations_total`). */
export function streamingEvaluationsTotal(): number {
  return evaluations;
}

/** Adds evaluations run on the ingest thread, which counts its own (ingest-thread.ts). */
export function countStreamingEvaluations(n: number): void {
  evaluations += n;
}

const PLANS = cacheKey<Map<number, StreamingPlan>>('streaming plans');
/** Per sandbox, the `data_version` at which its plan was last found current. */
const PLANS_CHECKED = cacheKey<Map<number, number>>('streaming plans checked');

/**
 * The streaming definitions in dependency order with their checked expressions, rebuilt only when one changes.
 *
 * `othersWriteDefinitions`: only other connections change this connection's definitions and
 * audiences (the ingest thread's), so while none has committed (`data_version` unchanged) the
 * plan last read is current and the versions are not read again. Reading them was ~50 µs a
 * group, a cost per commit whatever the group's size.
 */
export function streamingPlan(conn: Connection, sandboxId: number, othersWriteDefinitions = false): StreamingPlan {
  if (!othersWriteDefinitions) return readStreamingPlan(conn, sandboxId);
  const checked = conn.cache.get(PLANS_CHECKED, () => new Map<number, number>());
  const version = dataVersion(conn);
  const cached = conn.cache.get(PLANS, () => new Map<number, StreamingPlan>()).get(sandboxId);
  if (cached && checked.get(sandboxId) === version) return cached;
  const plan = readStreamingPlan(conn, sandboxId);
  checked.set(sandboxId, version);
  return plan;
}

function readStreamingPlan(conn: Connection, sandboxId: number): StreamingPlan {
  const rows = preparedOn(conn.sqlite, streamingStatements.definitionVersions).all(sandboxId) as DefinitionVersionRow[];
  const fingerprint = planFingerprint(rows);
  const bySandbox = conn.cache.get(PLANS, () => new Map<number, StreamingPlan>());
  const cached = bySandbox.get(sandboxId);
  if (cached?.fingerprint === fingerprint) return cached;
  const ids = rows.map((r) => r.id);
  const definitions =
    ids.length === 0
      ? []
      : dependencyOrder(
          [...definitionsByIdsSync(conn, sandboxId, ids).values()],
          dependenciesOfSync(conn, sandboxId, ids),
        );
  const plan = buildPlan(
    fingerprint,
    definitions,
    definitions.map((d) => checkedDefinition(conn, d)),
  );
  bySandbox.set(sandboxId, plan);
  return plan;
}

/**
 * A plan from its definitions in dependency order and their checked expressions (in the same
 * order), however they were read.
 */
export function buildPlan(
  fingerprint: string,
  definitions: SegmentDefinition[],
  checkedExpressions: readonly CheckedExpression[],
): StreamingPlan {
  const evaluated = definitions.map((d, i): PlannedDefinition => {
    const checked = checkedExpressions[i]!;
    return {
      audienceId: d.audienceId,
      version: d.version,
      checked,
      eventTypes: eventReads(checked).eventTypes,
      readsAudiences: checked.referencedAudiences.length > 0,
    };
  });
  let eventTypes: Set<string> | null = new Set();
  for (const d of evaluated) {
    if (d.eventTypes === null) {
      eventTypes = null;
      break;
    }
    for (const t of d.eventTypes) eventTypes.add(t);
  }
  return { fingerprint, definitions, evaluated, eventTypes };
}

/**
 * Whether new events of `added` types can change `d`'s value. Time-dependent definitions too
 * wait for data they read: the sweep exits the members whose window has passed.
 */
export function readsAny(d: PlannedDefinition, added: ReadonlySet<string>): boolean {
  if (d.readsAudiences || d.eventTypes === null) return true;
  for (const type of added) if (d.eventTypes.has(type)) return true;
  return false;
}

/**
 * Per profile, the definitions to evaluate: all of them when it may have changed in any way;
 * with `added`, a profile that only gained events meets only the definitions those can change.
 * Profiles with none are left out.
 */
export function streamingWork(
  planned: readonly PlannedDefinition[],
  profileIds: readonly number[],
  added: AddedEventTypes | undefined,
): Map<number, readonly PlannedDefinition[]> {
  const work = new Map<number, readonly PlannedDefinition[]>();
  // Profiles that gained events of the same types meet the same definitions: chosen once per set of types.
  const byTypes = new Map<string, readonly PlannedDefinition[]>();
  for (const profileId of profileIds) {
    const only = added?.get(profileId);
    let relevant = planned;
    if (only) {
      // Unambiguous whatever characters a type holds: one type as itself, several as JSON.
      const key = only.size === 1 ? `1${only.values().next().value!}` : `n${JSON.stringify([...only].sort())}`;
      let some = byTypes.get(key);
      if (some === undefined) {
        some = planned.filter((d) => readsAny(d, only));
        byTypes.set(key, some);
      }
      relevant = some;
    }
    if (relevant.length > 0) work.set(profileId, relevant);
  }
  return work;
}

/** A transition the evaluation decided, in the order decided (profiles, then definitions). */
export type StreamingTransition = (
  profileId: number,
  audienceId: number,
  version: number,
  from: MembershipStatus | null,
  qualifies: boolean,
) => void;

/**
 * Evaluates each profile's definitions on its document at `now`, in dependency order, and hands
 * each transition to `transition`. The document takes each new state, so the definitions after
 * it see it (inSegment); a profile the sandbox does not have is skipped.
 */
export function evaluateWork(
  work: ReadonlyMap<number, readonly PlannedDefinition[]>,
  docs: ReadonlyMap<number, StoredProfileDocument>,
  now: number,
  transition: StreamingTransition,
): void {
  for (const [profileId, relevant] of work) {
    const doc = docs.get(profileId);
    if (!doc) continue;
    evaluations += relevant.length;
    let changed = false;
    for (const { audienceId, version, checked: expression } of relevant) {
      const qualifies = evaluate(expression, doc, { now });
      if (qualifies === doc.memberships.has(audienceId)) continue;
      if (!changed) StreamingWindows.changing(doc);
      changed = true;
      transition(profileId, audienceId, version, doc.statuses.get(audienceId) ?? null, qualifies);
      // The definitions after this one see the new state (inSegment), and the kept document too.
      doc.statuses.set(audienceId, qualifies ? 'REALIZED' : 'EXITED');
      if (qualifies) doc.memberships.add(audienceId);
      else doc.memberships.delete(audienceId);
    }
  }
}

/**
 * Evaluates the streaming definitions for the given profiles at `now` and writes the
 * transitions (call inside the ingest's write transaction). Definitions are taken in
 * dependency order and each result is seen by the next, so `inSegment` of a streaming audience
 * reads its new state. With `added`, a profile that only gained events meets only the
 * definitions those events can change. Events come from the connection's streaming windows
 * (streaming-window.ts), which are kept only by `segmentAndKeep`'s caller after the commit.
 */
export function segmentProfiles(
  conn: Connection,
  sandboxId: number,
  profileIds: readonly number[],
  now: number,
  cause: 'streaming' | 'expiry' = 'streaming',
  added?: AddedEventTypes,
): MembershipChange[] {
  return segmentAndKeep(conn, sandboxId, profileIds, now, cause, added).changes;
}

/**
 * `segmentProfiles`, with the events the transaction wrote (`written`, per profile) to advance
 * the windows without reading them back; `keep` holds the windows read once the transaction has
 * committed (never before: a rolled-back ingest must leave nothing in them).
 */
function segmentAndKeep(
  conn: Connection,
  sandboxId: number,
  profileIds: readonly number[],
  now: number,
  cause: 'streaming' | 'expiry',
  added?: AddedEventTypes,
  written?: WrittenEvents,
  othersWriteDefinitions = false,
): { changes: MembershipChange[]; keep?: () => void } {
  const plan = streamingPlan(conn, sandboxId, othersWriteDefinitions);
  const planned = plan.evaluated;
  if (planned.length === 0 || profileIds.length === 0) return { changes: [] };
  const work = streamingWork(planned, profileIds, added);
  // The windows of profiles none of whose definitions ran still take what was written to them.
  const windows = streamingWindows(conn);
  const { docs, commit } = windows.read(sandboxId, work.keys(), now - STREAMING_WINDOW_MS, plan.eventTypes, written);
  if (work.size === 0) return { changes: [], keep: commit };
  const writer = new MembershipWriter(conn);
  const changes: MembershipChange[] = [];
  windows.evaluating(() =>
    evaluateWork(work, docs, now, (profileId, audienceId, version, from, qualifies) => {
      changes.push(writer.change(sandboxId, audienceId, profileId, from, qualifies, now, cause, version));
    }),
  );
  writer.flushSizes(now);
  return { changes, keep: commit };
}

/**
 * Exits the members of time-dependent streaming audiences for whom the condition no longer
 * holds at `now` (a purchase leaving "the last hour"), then evaluates those profiles again so
 * the audiences that read them follow; one write transaction per sandbox.
 */
export function sweepExpired(conn: Connection, sandboxId: number, now: number): MembershipChange[] {
  let keep: (() => void) | undefined;
  const swept = conn.sqlite
    .transaction(() => {
      const changes: MembershipChange[] = [];
      const writer = new MembershipWriter(conn);
      for (const { audienceId, version, checked } of streamingPlan(conn, sandboxId).evaluated) {
        if (!checked.timeDependent) continue;
        // compilePredicate is exactly 0 or 1, so NOT is exact; the members are few next to the store.
        const predicate = compilePredicate(checked, { now });
        const expired = conn.sqlite
          .prepare(
            `SELECT m.profile_id AS profileId, m.status AS status FROM memberships AS m JOIN profiles AS p ON p.id = m.profile_id
             WHERE m.audience_id = ? AND m.status IN ${CURRENT_STATUSES_SQL} AND NOT (${predicate.sql})`,
          )
          .all(audienceId, ...predicate.params) as { profileId: number; status: MembershipStatus }[];
        for (const { profileId, status } of expired) {
          changes.push(writer.change(sandboxId, audienceId, profileId, status, false, now, 'expiry', version));
        }
      }
      writer.flushSizes(now);
      // The profiles that left are evaluated again, so the audiences reading those (inSegment) follow.
      const affected = [...new Set(changes.map((c) => c.profileId))];
      const again = segmentAndKeep(conn, sandboxId, affected, now, 'expiry');
      keep = again.keep;
      changes.push(...again.changes);
      return changes;
    })
    .immediate();
  keep?.();
  return swept;
}

/**
 * Streaming segmentation as a service: the ingest service calls `onProfilesChanged` inside its
 * transaction, and a sweep drops members whose time window has passed every `sweepMs` (unref'd;
 * `stop()` ends it).
 */
export class StreamingSegmentation {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: {
      conn: Connection;
      /** Where committed changes go: the event bus, or on the ingest thread a port to it. */
      bus: Pick<EventBus, 'publishAll'>;
      log: Logger;
      sweepMs: number;
      /** Profiles whose streaming windows are kept in memory (SEGQL_STREAMING_WINDOW_PROFILES). */
      windowProfiles?: number;
      /**
       * The connection never writes definitions or audiences itself (the ingest thread's): the
       * plan is read again only after another connection's commit (`streamingPlan`).
       */
      othersWriteDefinitions?: boolean;
    },
  ) {
    if (deps.windowProfiles !== undefined) configureStreamingWindows(deps.conn, deps.windowProfiles);
  }

  /** Evaluates the changed profiles in the ingest's transaction; what it returns publishes the changes after commit. */
  readonly onProfilesChanged: ProfilesChangedHook = (sandboxId, profileIds, now, added, written) => {
    const { changes, keep } = segmentAndKeep(
      this.deps.conn,
      sandboxId,
      profileIds,
      now,
      'streaming',
      added,
      written,
      this.deps.othersWriteDefinitions,
    );
    if (changes.length === 0) return keep;
    return () => {
      keep?.();
      this.publish(changes);
    };
  };

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), this.deps.sweepMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private sweep(): void {
    const { conn, log } = this.deps;
    try {
      const sandboxIds = conn.sqlite
        .prepare(
          `SELECT DISTINCT d.sandbox_id FROM segment_definitions d
           WHERE d.eval_streaming = 1 AND d.eligible_streaming = 1`,
        )
        .pluck()
        .all() as number[];
      // A sweep that finds the write lock taken (a job writing its results) is skipped rather
      // than waited for on the main thread (db/busy.ts); the next one does its work.
      for (const sandboxId of sandboxIds) {
        this.publish(withoutBusyWait(conn, () => sweepExpired(conn, sandboxId, Date.now())));
      }
    } catch (err) {
      if (isBusy(err)) return;
      log.error({ err }, 'streaming sweep failed');
    }
  }

  /** Publishes committed membership changes on their sandbox's topic (audienceMembershipChanged). */
  publish(changes: readonly MembershipChange[]): void {
    publishMembershipChanges(this.deps.bus, changes);
  }
}

/** Publishes committed membership changes: one call per sandbox's topic, the changes in their order (EventBus.publishAll). */
export function publishMembershipChanges(
  bus: Pick<EventBus, 'publishAll'>,
  changes: readonly MembershipChange[],
): void {
  const bySandbox = new Map<number, MembershipChange[]>();
  for (const change of changes) {
    const list = bySandbox.get(change.sandboxId);
    if (list) list.push(change);
    else bySandbox.set(change.sandboxId, [change]);
  }
  for (const [sandboxId, list] of bySandbox) bus.publishAll(topics.memberships(sandboxId), list);
}
