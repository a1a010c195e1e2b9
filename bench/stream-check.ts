/**
 * The `stream` bench's check of the store after its runs (the servers stopped), on either
 * database: the events sent are stored once each, every membership change written reached the
 * subscriber or was counted to it in `lagged`, and each streaming membership is the JS
 * evaluator's answer at the profile's last relevant ingest (docs/domain.md "Streaming and edge
 * segmentation").
 *
 * What the runs wrote (events, memberships, history) is read from the store the servers wrote:
 * the SQLite file, or the PostgreSQL database the nodes shared. The definitions and their checked
 * expressions come from the seeded SQLite file, which the PostgreSQL copy was made from (row for
 * row, ids kept) and which the runs do not change: so on PostgreSQL the evaluator's answer does
 * not depend on the product's own PostgreSQL reading of the definitions it is checking.
 */
import type { Connection } from '../src/db/index.js';
import { statements } from '../src/db/statement.js';
import type { Store } from '../src/db/store.js';
import { checkedDefinition } from '../src/domain/evaluation.js';
import { isCurrentStatus, type MembershipStatus } from '../src/domain/membership-statuses.js';
import { loadProfileDocumentsOn } from '../src/domain/profile-documents.js';
import { streamingDefinitions } from '../src/domain/streaming.js';
import { evaluate, eventReads } from '../src/pql/index.js';

const q = statements('bench-stream-check', {
  /** Parameters: sandbox, event id pattern. */
  storedEvents: {
    sqlite:
      'SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM events WHERE sandbox_id = ? AND event_id LIKE ?',
    postgres:
      'SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM events WHERE sandbox_id = $1 AND event_id LIKE $2',
  },
  /** Parameters: sandbox. */
  streamingChanges: {
    sqlite: "SELECT count(*) AS n FROM membership_history WHERE sandbox_id = ? AND cause = 'streaming'",
    postgres: "SELECT count(*) AS n FROM membership_history WHERE sandbox_id = $1 AND cause = 'streaming'",
  },
  /** Parameters: sandbox, event id pattern. Per profile and event type, the last ingest instant of a bench event. */
  lastIngest: {
    sqlite: `SELECT profile_id AS profileId, event_type AS type, max(ingested_at) AS at FROM events
       WHERE sandbox_id = ? AND event_id LIKE ? GROUP BY profile_id, event_type`,
    postgres: `SELECT profile_id AS "profileId", event_type AS type, max(ingested_at) AS at FROM events
       WHERE sandbox_id = $1 AND event_id LIKE $2 GROUP BY profile_id, event_type`,
  },
  /** Parameters: sandbox. */
  profileIds: {
    sqlite: 'SELECT id FROM profiles WHERE sandbox_id = ? ORDER BY id',
    postgres: 'SELECT id FROM profiles WHERE sandbox_id = $1 ORDER BY id',
  },
});

export interface StreamCheckInput {
  /** The seeded SQLite file: the definitions and their checked expressions. */
  seed: Connection;
  /** Where the servers wrote: the same connection as `seed` on SQLite, the nodes' database on PostgreSQL. */
  store: Store;
  sandboxId: number;
  /** The prefix of the ids of the events the bench sent. */
  eventPrefix: string;
  sent: number;
  /** Changes the subscriber received plus those counted in `lagged`; undefined with no subscriber. */
  heard: number | undefined;
  /** Names the bench in the summary line. */
  name: string;
}

/** The problems found (at most a few memberships are described); prints one summary line. */
export async function checkStreamStore(input: StreamCheckInput): Promise<string[]> {
  const { seed, store, sandboxId, eventPrefix, sent, heard } = input;
  const problems: string[] = [];
  const pattern = `${eventPrefix}%`;
  const stored = (await store.get<{ n: number; ids: number }>(q.storedEvents, [sandboxId, pattern]))!;
  if (stored.n !== sent || stored.ids !== sent) {
    problems.push(`${sent} events sent, ${stored.n} stored (${stored.ids} distinct ids)`);
  }
  const written = (await store.get<{ n: number }>(q.streamingChanges, [sandboxId]))!.n;
  if (heard !== undefined && heard !== written) {
    problems.push(`${written} membership changes written, the subscriber heard of ${heard} (received + lagged)`);
  }

  const lastIngest = new Map<number, Map<string, number>>();
  for (const r of await store.all<{ profileId: number; type: string; at: number }>(q.lastIngest, [
    sandboxId,
    pattern,
  ])) {
    let byType = lastIngest.get(r.profileId);
    if (!byType) {
      byType = new Map();
      lastIngest.set(r.profileId, byType);
    }
    byType.set(r.type, r.at);
  }
  const profileIds = (await store.all<{ id: number }>(q.profileIds, [sandboxId])).map((r) => r.id);
  const docs = await loadProfileDocumentsOn(store, sandboxId, profileIds);
  let compared = 0;
  let wrong = 0;
  for (const d of streamingDefinitions(seed, sandboxId)) {
    const checked = checkedDefinition(seed, d);
    if (checked.referencedAudiences.length > 0) {
      problems.push(`definition ${d.id} reads audiences: the bench's check does not cover it`);
      continue;
    }
    const types = eventReads(checked).eventTypes;
    for (const profileId of profileIds) {
      const doc = docs.get(profileId)!;
      const status: MembershipStatus | undefined = doc.statuses.get(d.audienceId);
      const member = status !== undefined && isCurrentStatus(status);
      // The last instant streaming evaluated this definition for this profile.
      let at: number | undefined;
      for (const [type, t] of lastIngest.get(profileId) ?? []) {
        if ((types === null || types.has(type)) && (at === undefined || t > at)) at = t;
      }
      const expected = at === undefined ? status === undefined : evaluate(checked, doc, { now: at }) === member;
      compared++;
      if (expected) continue;
      wrong++;
      if (wrong <= 5) {
        problems.push(
          `audience ${d.audienceId} (${d.expressionText}) profile ${profileId}: stored ${status ?? 'none'}, ` +
            (at === undefined
              ? 'never evaluated by streaming'
              : `evaluator at ${new Date(at).toISOString()} says ${!member}`),
        );
      }
    }
  }
  if (wrong > 5) problems.push(`… ${wrong} wrong memberships in all`);
  console.log(
    `check ${input.name}: ${stored.n} events stored for ${sent} sent; ${written} changes written; ${compared} memberships compared, ${wrong} wrong`,
  );
  return problems;
}
