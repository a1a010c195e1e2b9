/**
 * Ingestion as one service: validation and storage (profile-ingest.ts), the streaming step in the
 * same transaction, publishing after commit, and the counters — so a caller cannot forget one.
 */
import type { IngestLimits } from '../config.js';
import type { Connection } from '../db/index.js';
import { resolvePendingMembers } from './external-audiences/pending-members.js';
import {
  type EventInput,
  type IngestResult,
  ingestEvents,
  ingestProfiles,
  type ProfileRecord,
} from './profile-ingest.js';
import type { StreamingSegmentation } from './streaming.js';

type IngestKind = 'profile' | 'event';
type IngestOutcome = 'accepted' | 'duplicate' | 'rejected';

/** Where ingest counts go (the server hands in its Prometheus counter). */
export interface IngestCounter {
  add(kind: IngestKind, outcome: IngestOutcome, n: number): void;
}

export class IngestService {
  constructor(
    private readonly deps: {
      conn: Connection;
      limits: IngestLimits;
      streaming: StreamingSegmentation;
      counter?: IngestCounter;
    },
  ) {}

  profiles(sandboxId: number, records: ProfileRecord[]): IngestResult {
    const { conn, limits, streaming } = this.deps;
    return this.counted(
      'profile',
      ingestProfiles(conn, sandboxId, records, {
        limits,
        onProfilesChanged: streaming.onProfilesChanged,
        onIdentitiesAdded: this.onIdentitiesAdded,
      }),
    );
  }

  events(sandboxId: number, events: EventInput[]): IngestResult {
    const { conn, limits, streaming } = this.deps;
    return this.counted(
      'event',
      ingestEvents(conn, sandboxId, events, {
        limits,
        onProfilesChanged: streaming.onProfilesChanged,
        onIdentitiesAdded: this.onIdentitiesAdded,
      }),
    );
  }

  /**
   * External audience rows that named an identity before its profile arrived: members now,
   * published with the streaming changes once the ingest commits.
   */
  private readonly onIdentitiesAdded = (
    sandboxId: number,
    added: { namespace: string; value: string; profileId: number }[],
    now: number,
  ) => {
    const changes = resolvePendingMembers(this.deps.conn, sandboxId, added, now);
    return changes.length > 0 ? () => this.deps.streaming.publish(changes) : undefined;
  };

  private counted(kind: IngestKind, result: IngestResult): IngestResult {
    const counter = this.deps.counter;
    if (counter) {
      counter.add(kind, 'accepted', result.accepted - result.duplicates);
      counter.add(kind, 'duplicate', result.duplicates);
      counter.add(kind, 'rejected', result.rejected);
    }
    return result;
  }
}
