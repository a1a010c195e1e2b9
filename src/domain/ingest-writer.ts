/**
 * The writing half of ingestion: a group of waiting ingest requests written in one transaction,
 * the streaming step inside it, and the changes published once it has committed. IngestService
 * (ingest.ts) decides what goes in a group and answers the requests; a writer does the group. The
 * same writer runs on the main thread (an in-memory database, tests) or on the ingest thread
 * (ingest-thread.ts), where a file database's ingests are written while the main thread goes on
 * answering requests and feeding subscribers.
 */
import type { IngestLimits } from '../config.js';
import { isBusy, withoutBusyWait } from '../db/busy.js';
import type { Connection } from '../db/index.js';
import { writeInTurn } from '../db/unit.js';
import { dataVersion } from '../db/write-stamp.js';
import { DomainError, type ErrorCode } from './errors.js';
import {
  type EventRequestOutcome,
  type PreparedRequest,
  prepareEventRequest,
  writeEventGroup,
} from './event-ingest.js';
import { resolvePendingMembers } from './external-audiences/pending-members.js';
import { type EventInput, ingestProfiles, type ProfileRecord } from './profile-ingest.js';
import { forgetCatalogs } from './profile-schema.js';
import type { StreamingSegmentation } from './streaming.js';

/** One ingest request as data: what a group is made of, and what crosses to the ingest thread. */
export type IngestWrite =
  | { kind: 'event'; sandboxId: number; events: EventInput[] }
  | { kind: 'profile'; sandboxId: number; records: ProfileRecord[] };

/**
 * A group's answer: each request's outcome in order, or `busy` when another connection (another
 * process) held the write lock, so nothing was written and the group may be tried again.
 */
export type GroupReply = { busy: true } | { busy: false; outcomes: EventRequestOutcome[] };

export interface IngestWriter {
  /**
   * Writes the group in one transaction (a profiles request alone: the caller forms groups) and
   * publishes its membership changes once it has committed, before the reply.
   */
  write(group: IngestWrite[]): GroupReply | Promise<GroupReply>;
  /**
   * Groups it takes before the first is answered (1: one at a time). A writer taking more writes
   * and answers them in the order given, and answers `busy`, unwritten, every group sent before
   * it answered one `busy`: so the groups are written in the order they were sent, whatever the
   * write lock does.
   */
  readonly depth: number;
  /**
   * Events one group takes at most; the waiting requests past it go to the next group (a request
   * is never split). A change reaches subscribers only once its group has committed, so the cap
   * bounds the ingest-to-subscriber latency as well as how long a group holds its writer.
   */
  readonly groupEvents: number;
  /** Starts the streaming sweep of expired members. */
  start(): void;
  /** Stops the sweep (and the thread, for a writer that has one). */
  close(): Promise<void>;
}

/**
 * A writer's side of taking more than one group at a time: once a group is answered busy, every
 * group sent before the sender heard of it (an epoch not past the busy one's) is answered busy
 * unwritten, so none is written ahead of the one the sender will send again.
 */
export class GroupsInOrder {
  private refusedEpoch = -1;

  write(epoch: number, write: () => GroupReply): GroupReply {
    if (epoch <= this.refusedEpoch) return { busy: true };
    const reply = write();
    if (reply.busy) this.refusedEpoch = epoch;
    return reply;
  }
}

/** A group as it is written: its events prepared (event-ingest.ts, `prepareEventRequest`). */
export type PreparedWrite = ({ kind: 'event' } & PreparedRequest) | Extract<IngestWrite, { kind: 'profile' }>;

/** `group` with its events prepared against `conn`'s catalogues. */
export function prepareGroup(conn: Connection, group: readonly IngestWrite[], limits: IngestLimits): PreparedWrite[] {
  return group.map((w) => (w.kind === 'event' ? { kind: 'event', ...prepareEventRequest(conn, w, limits) } : w));
}

/** Writes groups on the connection it is given, on the calling thread. */
export class LocalIngestWriter implements IngestWriter {
  readonly depth = 1;
  /**
   * On the main thread (an in-memory database) a group holds the event loop, ~8 ms per 100 events
   * with 50 streaming definitions. With 8 producers (bench `stream`, session 9) 500 gave p99
   * 108–130 ms for no less CPU per event than 200, which gave 74.
   */
  readonly groupEvents = 200;

  constructor(private readonly deps: { conn: Connection; limits: IngestLimits; streaming: StreamingSegmentation }) {}

  write(group: IngestWrite[]): GroupReply | Promise<GroupReply> {
    // While a job's worker writes its results the gate makes this wait without blocking
    // (db/write-gate.ts); on the main thread (an in-memory database) it also waits for a unit of
    // work another request has open, rather than writing inside its transaction (db/unit.ts).
    return writeInTurn(this.deps.conn, () =>
      this.writeNow(() => prepareGroup(this.deps.conn, group, this.deps.limits)),
    );
  }

  /** `write` for a group whose events the sending thread prepared (the ingest thread's way in). */
  writePrepared(group: PreparedWrite[]): GroupReply | Promise<GroupReply> {
    return writeInTurn(this.deps.conn, () => this.writeNow(() => group));
  }

  /** `data_version` when the last group was written. */
  private seenVersion = -1;

  /** `prepared` is called once the catalogues are known to be current. */
  private writeNow(prepared: () => PreparedWrite[]): GroupReply {
    const { conn, limits, streaming } = this.deps;
    // Another connection's commit (the main thread's, on the ingest thread: a schema change
    // among them) shows as a new data_version; the catalogues are read again. Windows and
    // identities watch it themselves.
    const version = dataVersion(conn);
    if (version !== this.seenVersion) forgetCatalogs(conn);
    this.seenVersion = version;
    const hooks = { limits, onProfilesChanged: streaming.onProfilesChanged, onIdentitiesAdded: this.onIdentitiesAdded };
    const group = prepared();
    const head = group[0];
    if (!head) return { busy: false, outcomes: [] };
    try {
      const outcomes = withoutBusyWait(conn, () =>
        head.kind === 'profile'
          ? [{ ok: true as const, result: ingestProfiles(conn, head.sandboxId, head.records, hooks) }]
          : writeEventGroup(conn, group as Extract<PreparedWrite, { kind: 'event' }>[], hooks),
      );
      return { busy: false, outcomes };
    } catch (error) {
      if (isBusy(error)) return { busy: true };
      return { busy: false, outcomes: group.map(() => ({ ok: false, error })) };
    }
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

  start(): void {
    this.deps.streaming.start();
  }

  async close(): Promise<void> {
    this.deps.streaming.stop();
  }
}

/**
 * An outcome's error as data, to cross a thread: a DomainError keeps its code and extensions,
 * any other its message and its `code` (SQLite's error codes, which tell damage: db/integrity.ts).
 */
export type SentError =
  | { domain: true; code: ErrorCode; message: string; extensions: Record<string, unknown> }
  | { domain: false; message: string; code?: string };

export type SentReply =
  | { busy: true }
  | { busy: false; outcomes: ({ ok: true; result: unknown } | { ok: false; error: SentError })[] };

function sendError(e: unknown): SentError {
  if (e instanceof DomainError) return { domain: true, code: e.code, message: e.message, extensions: e.extensions };
  const code = (e as { code?: unknown } | undefined)?.code;
  return {
    domain: false,
    message: e instanceof Error ? e.message : String(e),
    ...(typeof code === 'string' ? { code } : {}),
  };
}

function receiveError(e: SentError): Error {
  if (e.domain) return new DomainError(e.code, e.message, e.extensions);
  return Object.assign(new Error(e.message), e.code === undefined ? {} : { code: e.code });
}

export function sendReply(reply: GroupReply): SentReply {
  if (reply.busy) return reply;
  return {
    busy: false,
    outcomes: reply.outcomes.map((o) => (o.ok ? o : { ok: false, error: sendError(o.error) })),
  };
}

export function receiveReply(sent: SentReply): GroupReply {
  if (sent.busy) return sent;
  return {
    busy: false,
    outcomes: sent.outcomes.map((o) =>
      o.ok ? (o as EventRequestOutcome) : { ok: false, error: receiveError(o.error) },
    ),
  };
}
