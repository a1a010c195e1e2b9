/**
 * Streaming segmentation (domain.md "Streaming and edge segmentation"): when profiles or events
 * are ingested, every DRAFT or PUBLISHED definition with streaming enabled (and eligible) is
 * evaluated for each changed profile with the JS engine at the ingest time, and its membership
 * is updated in the ingest's own transaction; the changes are published on the sandbox's
 * membership topic once it has committed. Conditions on time windows also stop holding without
 * new data: a sweep exits the members for whom they no longer hold.
 */
import type { Connection } from '../db/index.js';
import { evaluate } from '../pql/evaluate.js';
import { compilePredicate } from '../pql/to-sql.js';
import type { CheckedExpression } from '../pql/types.js';
import type { App } from './app.js';
import { definitionsByIds, dependenciesOf, type SegmentDefinition } from './definitions.js';
import { topics } from './events.js';
import type { MembershipStatus } from './memberships.js';
import { checkedDefinition, loadProfileDocument } from './pql-tools.js';
import { dependencyOrder } from './segment-jobs/segment-job.js';

export interface MembershipChange {
  sandboxId: number;
  audienceId: number;
  profileId: number;
  from: MembershipStatus | null;
  to: MembershipStatus;
  at: number;
  /** `streaming` (an ingest) or `expiry` (a time window passed). */
  cause: 'streaming' | 'expiry';
}

/** The sandbox's streaming definitions, each before the definitions whose inSegment reads it. */
export function streamingDefinitions(conn: Connection, sandboxId: number): SegmentDefinition[] {
  const ids = conn.sqlite
    .prepare(
      `SELECT d.id FROM segment_definitions d JOIN audiences a ON a.id = d.audience_id
       WHERE d.sandbox_id = ? AND d.eval_streaming = 1 AND d.eligible_streaming = 1
         AND a.lifecycle_state IN ('DRAFT', 'PUBLISHED')`,
    )
    .pluck()
    .all(sandboxId) as number[];
  if (ids.length === 0) return [];
  const definitions = [...definitionsByIds(conn, sandboxId, ids).values()];
  return dependencyOrder(definitions, dependenciesOf(conn, sandboxId, ids));
}

/** Writes membership transitions: the row, a history entry, the audience's size. */
class MembershipWriter {
  private readonly status;
  private readonly enter;
  private readonly exit;
  private readonly history;
  private readonly size;

  constructor(private readonly conn: Connection) {
    const { sqlite } = conn;
    this.status = sqlite.prepare('SELECT status FROM memberships WHERE audience_id = ? AND profile_id = ?').pluck();
    this.enter = sqlite.prepare(
      `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)
       VALUES (?, ?, ?, 'REALIZED', ?, ?, NULL)
       ON CONFLICT (audience_id, profile_id) DO UPDATE SET status = 'REALIZED', qualified_at = excluded.qualified_at,
         last_evaluated_at = excluded.last_evaluated_at, exited_at = NULL`,
    );
    this.exit = sqlite.prepare(
      `UPDATE memberships SET status = 'EXITED', exited_at = ?, last_evaluated_at = ? WHERE audience_id = ? AND profile_id = ?`,
    );
    this.history = sqlite.prepare(
      `INSERT INTO membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.size = sqlite.prepare('UPDATE audiences SET size = size + ?, last_evaluated_at = ? WHERE id = ?');
  }

  change(
    sandboxId: number,
    audienceId: number,
    profileId: number,
    enters: boolean,
    at: number,
    cause: MembershipChange['cause'],
  ): MembershipChange {
    const from = (this.status.get(audienceId, profileId) as MembershipStatus | undefined) ?? null;
    const to: MembershipStatus = enters ? 'REALIZED' : 'EXITED';
    if (enters) this.enter.run(sandboxId, audienceId, profileId, at, at);
    else this.exit.run(at, at, audienceId, profileId);
    this.history.run(sandboxId, profileId, audienceId, at, from, to, cause);
    this.size.run(enters ? 1 : -1, at, audienceId);
    return { sandboxId, audienceId, profileId, from, to, at, cause };
  }
}

/**
 * Evaluates the streaming definitions for the given profiles at `now` and writes the
 * transitions (call inside the ingest's write transaction). Definitions are taken in
 * dependency order and each result is seen by the next, so `inSegment` of a streaming audience
 * reads its new state.
 */
export function segmentProfiles(
  conn: Connection,
  sandboxId: number,
  profileIds: readonly number[],
  now: number,
): MembershipChange[] {
  const definitions = streamingDefinitions(conn, sandboxId);
  if (definitions.length === 0 || profileIds.length === 0) return [];
  const checked = definitions.map((d) => ({ audienceId: d.audienceId, checked: checkedDefinition(conn, d) }));
  const writer = new MembershipWriter(conn);
  const changes: MembershipChange[] = [];
  for (const profileId of profileIds) {
    const loaded = loadProfileDocument(conn, sandboxId, profileId);
    if (!loaded) continue;
    // Each definition sees the memberships the ones before it just decided.
    const memberships = new Set(loaded.memberships);
    const doc = { ...loaded, memberships };
    for (const { audienceId, checked: expression } of checked) {
      const qualifies = evaluate(expression, doc, { now });
      if (qualifies === doc.memberships.has(audienceId)) continue;
      changes.push(writer.change(sandboxId, audienceId, profileId, qualifies, now, 'streaming'));
      if (qualifies) memberships.add(audienceId);
      else memberships.delete(audienceId);
    }
  }
  return changes;
}

const timeDependence = new WeakMap<CheckedExpression, boolean>();

/** Whether a condition can change with time alone: its SQL differs between two evaluation instants. */
function dependsOnTime(checked: CheckedExpression): boolean {
  let known = timeDependence.get(checked);
  if (known === undefined) {
    const a = compilePredicate(checked, { now: 0 });
    const b = compilePredicate(checked, { now: 86_400_000 * 400 + 12_345 });
    known = a.sql !== b.sql || JSON.stringify(a.params) !== JSON.stringify(b.params);
    timeDependence.set(checked, known);
  }
  return known;
}

/**
 * Exits the members of time-dependent streaming audiences for whom the condition no longer
 * holds at `now` (a purchase leaving "the last hour"), in one write transaction per sandbox.
 */
export function sweepExpired(conn: Connection, sandboxId: number, now: number): MembershipChange[] {
  return conn.sqlite
    .transaction(() => {
      const changes: MembershipChange[] = [];
      const writer = new MembershipWriter(conn);
      for (const definition of streamingDefinitions(conn, sandboxId)) {
        const checked = checkedDefinition(conn, definition);
        if (!dependsOnTime(checked)) continue;
        // compilePredicate is exactly 0 or 1, so NOT is exact; the members are few next to the store.
        const predicate = compilePredicate(checked, { now });
        const expired = conn.sqlite
          .prepare(
            `SELECT m.profile_id FROM memberships AS m JOIN profiles AS p ON p.id = m.profile_id
             WHERE m.audience_id = ? AND m.status IN ('REALIZED', 'EXISTING') AND NOT (${predicate.sql})`,
          )
          .pluck()
          .all(definition.audienceId, ...predicate.params) as number[];
        for (const profileId of expired) {
          changes.push(writer.change(sandboxId, definition.audienceId, profileId, false, now, 'expiry'));
        }
      }
      return changes;
    })
    .immediate();
}

/**
 * Plugs streaming segmentation into the app: the ingest hook, and a sweep of expired members
 * every `sweepMs` (unref'd; `stop()` ends it).
 */
export function startStreaming(app: App, sweepMs: number): { stop(): void } {
  const publish = (changes: readonly MembershipChange[]) => {
    for (const change of changes) app.bus.publish(topics.memberships(change.sandboxId), change);
  };
  app.ingestHooks.onProfilesChanged = (sandboxId, profileIds, now) => {
    const changes = segmentProfiles(app.conn, sandboxId, profileIds, now);
    return changes.length > 0 ? () => publish(changes) : undefined;
  };
  const timer = setInterval(() => {
    try {
      const sandboxIds = app.conn.sqlite
        .prepare(
          `SELECT DISTINCT d.sandbox_id FROM segment_definitions d
           WHERE d.eval_streaming = 1 AND d.eligible_streaming = 1`,
        )
        .pluck()
        .all() as number[];
      for (const sandboxId of sandboxIds) publish(sweepExpired(app.conn, sandboxId, Date.now()));
    } catch (err) {
      app.log.error({ err }, 'streaming sweep failed');
    }
  }, sweepMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      app.ingestHooks.onProfilesChanged = undefined;
    },
  };
}
