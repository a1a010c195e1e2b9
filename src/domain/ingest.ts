/**
 * Ingestion as one service: validation and storage (profile-ingest.ts, event-ingest.ts), the
 * streaming step in the same transaction, publishing after commit, and the counters — so a
 * caller cannot forget one. Event requests are committed in groups: those that arrive while the
 * process is busy are written together when it next turns to them (event-ingest.ts).
 */
import type { IngestLimits } from '../config.js';
import { isBusy, withoutBusyWait } from '../db/busy.js';
import type { Connection } from '../db/index.js';
import { DomainError } from './errors.js';
import { type EventRequest, type EventRequestOutcome, ingestEventGroup } from './event-ingest.js';
import { resolvePendingMembers } from './external-audiences/pending-members.js';
import { type EventInput, type IngestResult, ingestProfiles, type ProfileRecord } from './profile-ingest.js';
import type { StreamingSegmentation } from './streaming.js';

type IngestKind = 'profile' | 'event';
type IngestOutcome = 'accepted' | 'duplicate' | 'rejected';

/** Where ingest counts go (the server hands in its Prometheus counter). */
export interface IngestCounter {
  add(kind: IngestKind, outcome: IngestOutcome, n: number): void;
}

/**
 * Events one commit takes at most; the waiting requests past it go to the next commit. A commit
 * holds the event loop (~8 ms per 100 events with 50 streaming definitions), and a change's
 * subscribers hear of it only once its commit is over, so the cap bounds both the longest stall
 * and the ingest-to-subscriber latency. Measured with 8 producers (bench `stream`, session 9):
 * 500 gave p99 108–130 ms for no less CPU per event than 200, which gave p99 74 ms; the
 * commit's fixed cost is already shared by then.
 */
const GROUP_COMMIT_MAX_EVENTS = 200;

/**
 * How waiting ingest requests are tried again while another connection (a job's worker writing
 * its results) holds the write lock, before they are told to come back later. The tries
 * are on a timer, so the wait holds no request or subscriber of the process.
 */
const WRITE_LOCK_RETRY_MS = { first: 2, max: 50 };
export const DEFAULT_WRITE_LOCK_WAIT_MS = 60_000;

interface Waiting<T> {
  resolve(result: IngestResult): void;
  reject(error: unknown): void;
  kind: T;
}
type WaitingEvents = EventRequest & Waiting<'event'>;
type WaitingProfiles = { sandboxId: number; records: ProfileRecord[] } & Waiting<'profile'>;
type WaitingWrite = WaitingEvents | WaitingProfiles;

export class IngestService {
  /** Ingest requests not yet written, in arrival order (profiles and events alike). */
  private readonly waiting: WaitingWrite[] = [];

  constructor(
    private readonly deps: {
      conn: Connection;
      limits: IngestLimits;
      streaming: StreamingSegmentation;
      counter?: IngestCounter;
      /** Longest wait for a write lock held elsewhere before requests are refused (RATE_LIMITED). */
      writeLockWaitMs?: number;
    },
  ) {}

  /** Since when the waiting requests have found the write lock taken, and the timer of the next try. */
  private lockedSince: number | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** Whether the queue waits for the write gate. */
  private gated = false;

  /**
   * Stores the profile records in a transaction of their own, after every ingest request that
   * arrived before them; resolves with the result.
   */
  profiles(sandboxId: number, records: ProfileRecord[]): Promise<IngestResult> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'profile', sandboxId, records, resolve, reject }));
  }

  /**
   * Stores the events with the other requests that arrive before this process next turns to
   * them (one transaction for all: group commit); resolves with this request's own result.
   */
  events(sandboxId: number, events: EventInput[]): Promise<IngestResult> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'event', sandboxId, events, resolve, reject }));
  }

  private enqueue(request: WaitingWrite): void {
    this.waiting.push(request);
    // setImmediate runs after the I/O callbacks of this turn: the requests read in it join.
    if (this.waiting.length === 1) setImmediate(this.commitWaiting);
  }

  private readonly commitWaiting = () => {
    // A try after a taken write lock is pending, or a wait for the write gate: it takes the queue, in order.
    if (this.retry || this.gated) return;
    // While a job's worker writes its results the gate makes this wait without blocking (db/write-gate.ts).
    const committed = this.deps.conn.writeGate.run(this.commitHead);
    if (committed instanceof Promise) {
      this.gated = true;
      void committed.finally(() => {
        this.gated = false;
      });
    }
  };

  /** Writes the requests at the head of the queue in one transaction (the write gate held). */
  private readonly commitHead = () => {
    const head = this.waiting[0];
    if (!head) return;
    // A profiles request is written alone; consecutive event requests together, up to the cap.
    let n = 1;
    if (head.kind === 'event') {
      let events = head.events.length;
      for (; n < this.waiting.length; n++) {
        const next = this.waiting[n]!;
        if (next.kind !== 'event' || events + next.events.length > GROUP_COMMIT_MAX_EVENTS) break;
        events += next.events.length;
      }
    }
    const group = this.waiting.splice(0, n);
    if (this.waiting.length > 0) setImmediate(this.commitWaiting);
    const { conn, limits, streaming } = this.deps;
    const hooks = { limits, onProfilesChanged: streaming.onProfilesChanged, onIdentitiesAdded: this.onIdentitiesAdded };
    let outcomes: EventRequestOutcome[];
    try {
      outcomes = withoutBusyWait(conn, () =>
        head.kind === 'profile'
          ? [{ ok: true, result: ingestProfiles(conn, head.sandboxId, head.records, hooks) }]
          : ingestEventGroup(conn, group as WaitingEvents[], hooks),
      );
    } catch (error) {
      if (isBusy(error)) return this.retryLater(group);
      for (const request of group) request.reject(error);
      return;
    }
    this.lockedSince = undefined;
    for (const [i, outcome] of outcomes.entries()) {
      const request = group[i]!;
      if (outcome.ok) request.resolve(this.counted(request.kind, outcome.result));
      else request.reject(outcome.error);
    }
  };

  /**
   * Puts `group` back at the head of the queue and tries again on a timer, backing off, while
   * the write lock stays taken; past the wait, every waiting request is refused as RATE_LIMITED.
   */
  private retryLater(group: WaitingWrite[]): void {
    this.waiting.unshift(...group);
    const now = Date.now();
    this.lockedSince ??= now;
    const waited = now - this.lockedSince;
    if (waited >= (this.deps.writeLockWaitMs ?? DEFAULT_WRITE_LOCK_WAIT_MS)) {
      this.lockedSince = undefined;
      const error = new DomainError(
        'RATE_LIMITED',
        `The store has been busy with another write for ${Math.round(waited / 1000)} s (a job writing its results); nothing of this request was written, send it again`,
        { retryAfterSeconds: 1 },
      );
      for (const request of this.waiting.splice(0)) request.reject(error);
      return;
    }
    const delay = Math.min(WRITE_LOCK_RETRY_MS.max, Math.max(WRITE_LOCK_RETRY_MS.first, waited / 4));
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.commitWaiting();
    }, delay);
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
