/**
 * Ingestion as one service: the queue of ingest requests, their groups, their answers and the
 * counters — so a caller cannot forget one. Event requests are committed in groups: those that
 * arrive while a group is being written are written together next (event-ingest.ts). A writer
 * (ingest-writer.ts) does each group — storage, the streaming step in the same transaction,
 * publishing after commit — on the ingest thread for a database file (ingest-thread.ts).
 */
import { DomainError } from './errors.js';
import type { EventRequest } from './event-ingest.js';
import type { GroupReply, IngestWrite, IngestWriter } from './ingest-writer.js';
import type { EventInput, IngestResult, ProfileRecord } from './profile-ingest.js';

type IngestKind = 'profile' | 'event';
type IngestOutcome = 'accepted' | 'duplicate' | 'rejected';

/** Where ingest counts go (the server hands in its Prometheus counter). */
export interface IngestCounter {
  add(kind: IngestKind, outcome: IngestOutcome, n: number): void;
}

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

/** A waiting request as the writer takes it: its data, without its promise's callbacks. */
function asWrite(request: WaitingWrite): IngestWrite {
  return request.kind === 'event'
    ? { kind: 'event', sandboxId: request.sandboxId, events: request.events }
    : { kind: 'profile', sandboxId: request.sandboxId, records: request.records };
}

export class IngestService {
  /** Ingest requests not yet written, in arrival order (profiles and events alike). */
  private readonly waiting: WaitingWrite[] = [];

  constructor(
    private readonly deps: {
      /** Writes a group and publishes its changes: on this thread or on the ingest thread. */
      writer: IngestWriter;
      counter?: IngestCounter;
      /** Longest wait for a write lock held elsewhere before requests are refused (RATE_LIMITED). */
      writeLockWaitMs?: number;
    },
  ) {}

  /** Since when the waiting requests have found the write lock taken, and the timer of the next try. */
  private lockedSince: number | undefined;
  private retry: NodeJS.Timeout | undefined;
  /**
   * Groups handed to the writer and not yet answered, oldest first: up to its depth, so the
   * ingest thread has the next group as it finishes one instead of waiting for this thread.
   */
  private readonly inFlight: WaitingWrite[][] = [];
  /** Moves on when a group is answered busy: the replies of groups sent before then are put back, not settled. */
  private generation = 0;

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

  /** Starts the writer's background work (the streaming sweep). */
  start(): void {
    this.deps.writer.start();
  }

  /** Stops the writer (and its thread); requests still waiting are not written. */
  close(): Promise<void> {
    if (this.retry) clearTimeout(this.retry);
    return this.deps.writer.close();
  }

  private enqueue(request: WaitingWrite): void {
    this.waiting.push(request);
    // setImmediate runs after the I/O callbacks of this turn: the requests read in it join.
    if (this.waiting.length === 1) setImmediate(this.commitWaiting);
  }

  /** Hands the requests at the head of the queue to the writer as groups, while it takes more. */
  private readonly commitWaiting = () => {
    // A try after a taken write lock is pending: it takes the queue, in order.
    while (!this.retry && this.inFlight.length < this.deps.writer.depth && this.waiting.length > 0) {
      // Written on this thread (an in-memory database): the next group on a later turn, as settling schedules it.
      if (this.send(this.nextGroup())) return;
    }
  };

  /** The head of the queue as one group: a profiles request alone, consecutive event requests together up to the cap. */
  private nextGroup(): WaitingWrite[] {
    const head = this.waiting[0]!;
    let n = 1;
    if (head.kind === 'event') {
      let events = head.events.length;
      for (; n < this.waiting.length; n++) {
        const next = this.waiting[n]!;
        if (next.kind !== 'event' || events + next.events.length > this.deps.writer.groupEvents) break;
        events += next.events.length;
      }
    }
    return this.waiting.splice(0, n);
  }

  /** Hands `group` to the writer; true when it was answered at once (written on this thread). */
  private send(group: WaitingWrite[]): boolean {
    const failed = (error: unknown): GroupReply => ({ busy: false, outcomes: group.map(() => ({ ok: false, error })) });
    let reply: GroupReply | Promise<GroupReply>;
    try {
      reply = this.deps.writer.write(group.map(asWrite));
    } catch (error) {
      reply = failed(error);
    }
    this.inFlight.push(group);
    const generation = this.generation;
    if (!(reply instanceof Promise)) {
      this.answered(group, generation, reply);
      return true;
    }
    reply.then(
      (r) => this.answered(group, generation, r),
      (error: unknown) => this.answered(group, generation, failed(error)),
    );
    return false;
  }

  /** A group's reply (they come in the order sent): its requests answered, or the groups in flight put back when busy. */
  private answered(group: WaitingWrite[], generation: number, reply: GroupReply): void {
    // Put back with an earlier group that was answered busy; the writer answered it busy too.
    if (generation !== this.generation) return;
    if (reply.busy) {
      this.generation++;
      // This group and those sent after it go back to the head of the queue, in order.
      this.retryLater(this.inFlight.splice(0).flat());
      return;
    }
    this.inFlight.splice(this.inFlight.indexOf(group), 1);
    this.settle(group, reply);
  }

  /** Answers a written group's requests. */
  private settle(group: WaitingWrite[], reply: Extract<GroupReply, { busy: false }>): void {
    this.lockedSince = undefined;
    for (const [i, outcome] of reply.outcomes.entries()) {
      const request = group[i]!;
      if (outcome.ok) request.resolve(this.counted(request.kind, outcome.result));
      else request.reject(outcome.error);
    }
    if (this.waiting.length > 0) setImmediate(this.commitWaiting);
  }

  /**
   * Puts `requests` back at the head of the queue and tries again on a timer, backing off, while
   * the write lock stays taken; past the wait, every waiting request is refused as RATE_LIMITED.
   */
  private retryLater(requests: WaitingWrite[]): void {
    this.waiting.unshift(...requests);
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
