/**
 * Experience events into storage: each event lands on the profile its identity names (a new
 * identity makes a new profile), idempotent by event id. Several ingest requests can be written
 * in one transaction (group commit, `ingestEventGroup`): each keeps its own answer and per-event
 * errors, a request that fails leaves nothing behind and fails no other, and the work a commit
 * does once (the streaming step) runs once for all of them.
 */
import { DEFAULT_INGEST_LIMITS, type IngestLimits } from '../config.js';
import { isBusy } from '../db/busy.js';
import type { Connection } from '../db/index.js';
import type { FieldCatalog } from '../pql/index.js';
import { instantOfMs, parseDatetime, validateDocument } from './document-validation.js';
import { badInput } from './errors.js';
import { timeOrderedId } from './event-ids.js';
import { type FoundIdentity, type IdentityCache, identityCache, identityKey } from './identity-cache.js';
import { jsonByteLength, jsonSurelyWithin } from './json-size.js';
import {
  type EventInput,
  type IngestErrorCode,
  type IngestOptions,
  type IngestResult,
  type IngestStatements,
  identityProblem,
  ingestStatements,
} from './profile-ingest.js';
import { catalogOf } from './profile-schema.js';
import type { WrittenEvent } from './streaming-window.js';

/** One caller's events for one sandbox. */
export interface EventRequest {
  sandboxId: number;
  events: EventInput[];
}

/**
 * An event as the writer stores it: checked, its id given, its data as JSON text. A writer with
 * a thread of its own is sent events prepared by the thread that sends them (ingest-thread.ts):
 * the one writer bounds how many events a second are stored, and the main thread has time.
 */
export type PreparedEvent =
  | {
      ok: true;
      namespace: string;
      value: string;
      eventType: string;
      eventId: string;
      ts: number;
      payloadJson: string;
    }
  | { ok: false; message: string; code: IngestErrorCode };

/** One caller's events, prepared; `count` is how many it sent (past the batch limit it is refused whole, `events` empty). */
export interface PreparedRequest {
  sandboxId: number;
  count: number;
  events: PreparedEvent[];
}

/**
 * Checks a request's events against its sandbox's catalogue as `conn` has it (the sender's: the
 * main thread's catalogue is the one a schema change updates first) and gives each its stored form.
 */
export function prepareEventRequest(
  conn: Connection,
  { sandboxId, events }: EventRequest,
  limits: IngestLimits,
): PreparedRequest {
  if (events.length > limits.maxBatch) return { sandboxId, count: events.length, events: [] };
  const catalog = catalogOf(conn, sandboxId);
  return {
    sandboxId,
    count: events.length,
    events: events.map((event): PreparedEvent => {
      const checked = checkEvent(event, catalog, limits);
      if (!checked.ok) return checked;
      return {
        ok: true,
        namespace: event.identity.namespace,
        value: event.identity.id,
        eventType: event.eventType,
        eventId: event.id ?? timeOrderedId(),
        ts: checked.ts,
        payloadJson: JSON.stringify(checked.data),
      };
    }),
  };
}

/** A request's answer in a group: its result, or what it threw (its writes were rolled back). */
export type EventRequestOutcome = { ok: true; result: IngestResult } | { ok: false; error: unknown };

/** What requests changed in one sandbox: what the commit's shared step works from. */
interface SandboxChanges {
  touched: Set<number>;
  /** Profiles that existed before: what they gained is only events of these types. */
  addedTypes: Map<number, Set<string>>;
  created: Set<number>;
  added: { namespace: string; value: string; profileId: number }[];
  /** The events stored, per profile: the streaming windows take them without reading them back. */
  written: Map<number, WrittenEvent[]>;
  /** Identities looked up or stored: the identity cache keeps them after the commit. */
  found: FoundIdentity[];
}

function noChanges(): SandboxChanges {
  return { touched: new Set(), addedTypes: new Map(), created: new Set(), added: [], written: new Map(), found: [] };
}

function mergeInto(into: SandboxChanges, from: SandboxChanges): void {
  for (const id of from.touched) into.touched.add(id);
  for (const id of from.created) into.created.add(id);
  for (const [id, types] of from.addedTypes) {
    const known = into.addedTypes.get(id);
    if (known) for (const t of types) known.add(t);
    else into.addedTypes.set(id, new Set(types));
  }
  into.added.push(...from.added);
  into.found.push(...from.found);
  for (const [id, events] of from.written) {
    const known = into.written.get(id);
    if (known) known.push(...events);
    else into.written.set(id, events);
  }
}

/**
 * Ingests experience events in one transaction. An event names its profile by identity; an
 * identity seen for the first time makes a new profile. An event id already stored is
 * accepted and counted as a duplicate, not stored twice (idempotent retries).
 */
export function ingestEvents(
  conn: Connection,
  sandboxId: number,
  events: EventInput[],
  options: IngestOptions = {},
): IngestResult {
  const [outcome] = ingestEventGroup(conn, [{ sandboxId, events }], options);
  if (!outcome!.ok) throw outcome!.error;
  return outcome!.result;
}

/**
 * Ingests several requests' events in one write transaction; then the hooks (streaming, pending
 * external members) run once per sandbox over what all of them changed. Should a request's
 * writes, that shared step or the commit fail, each request is tried again alone, so one cannot
 * fail the others. Outcomes are in request order.
 *
 * A profile's row is not written for its events: when it last gained one is read off the
 * events' `ingested_at` (profiles.ts), not kept on the row, whose page would be one more
 * written per event.
 */
export function ingestEventGroup(
  conn: Connection,
  requests: readonly EventRequest[],
  options: IngestOptions = {},
): EventRequestOutcome[] {
  const limits = options.limits ?? DEFAULT_INGEST_LIMITS;
  return writeEventGroup(
    conn,
    requests.map((request) => prepareEventRequest(conn, request, limits)),
    options,
  );
}

/** `ingestEventGroup` for requests already prepared (`prepareEventRequest`). */
export function writeEventGroup(
  conn: Connection,
  requests: readonly PreparedRequest[],
  options: IngestOptions = {},
): EventRequestOutcome[] {
  const limits = options.limits ?? DEFAULT_INGEST_LIMITS;
  const now = options.now ?? Date.now();
  const s = ingestStatements(conn);
  // Refused before any write: such a request gets the same answer however the group fares.
  const refused: EventRequestOutcome[] = [];
  for (const [i, { count }] of requests.entries()) {
    if (count > limits.maxBatch) {
      refused[i] = {
        ok: false,
        error: badInput(`At most ${limits.maxBatch} events per call, got ${count}`, 'events'),
      };
    }
  }
  const outcomes: (EventRequestOutcome | undefined)[] = requests.map((_, i) => refused[i]);
  const after: (() => void)[] = [];
  const identities = identityCache(conn);
  try {
    conn.sqlite
      .transaction(() => {
        const mark = identities.begin();
        const bySandbox = new Map<number, SandboxChanges>();
        for (const [i, request] of requests.entries()) {
          if (outcomes[i]) continue;
          const changes = noChanges();
          // No savepoint per request: SQLite copies every page a savepoint changes into its
          // journal, and only a storage failure can throw here (bad events are answered per
          // event). One that throws rolls the group back, and each request is written alone below.
          const result = writeEvents(s, identities, request, now, changes);
          const sandbox = bySandbox.get(request.sandboxId);
          if (sandbox) mergeInto(sandbox, changes);
          else bySandbox.set(request.sandboxId, changes);
          outcomes[i] = { ok: true, result };
        }
        const found = [...bySandbox.values()].flatMap((changes) => changes.found);
        after.push(() => identities.keep(mark, found));
        for (const [sandboxId, changes] of bySandbox) {
          // Created by one request, found by another: still a new profile, evaluated in full.
          for (const id of changes.created) changes.addedTypes.delete(id);
          const joined = options.onIdentitiesAdded?.(sandboxId, changes.added, now);
          const streamed = options.onProfilesChanged?.(
            sandboxId,
            [...changes.touched],
            now,
            changes.addedTypes,
            changes.written,
          );
          if (joined) after.push(joined);
          if (streamed) after.push(streamed);
        }
      })
      .immediate();
  } catch (error) {
    // The write lock is taken (only with no busy wait, db/busy.ts): nothing was written, and
    // alone each request would find it taken too. The caller tries the group again later.
    if (isBusy(error)) throw error;
    // A request's writes, the shared step or the commit failed, so nothing was written: each
    // request again, alone, so that one cannot fail the others.
    if (requests.length === 1) return [refused[0] ?? { ok: false, error }];
    return requests.map((request, i) => refused[i] ?? writeEventGroup(conn, [request], options)[0]!);
  }
  for (const publish of after) publish();
  return outcomes as EventRequestOutcome[];
}

/** An event as ingestion takes it (its time in epoch ms, its data checked), or why it is refused. */
export type CheckedEvent =
  | { ok: true; ts: number; data: Record<string, unknown> }
  | { ok: false; message: string; code: IngestErrorCode };

/** `"YYYY-MM-DDTHH:MM:SS.sssZ"` as JSON: how long an event's time is, however it was handed over. */
const ISO_TEXT_BYTES = 26;

/**
 * The event as JSON, in bytes (the guardrail's measure), its time counted as the instant's ISO text
 * (`toISOString`), as the API measured it before it handed times over already read.
 */
function recordBytes(event: EventInput): number {
  const size = jsonByteLength(event);
  return typeof event.timestamp === 'number' ? size - JSON.stringify(event.timestamp).length + ISO_TEXT_BYTES : size;
}

/**
 * Whether recordBytes(event) is over `limit`, serialising only an event that may be: the bound
 * counts a time handed over as a number at most ISO_TEXT_BYTES short of its text.
 */
function recordLongerThan(event: EventInput, limit: number): boolean {
  return !jsonSurelyWithin(event, limit - ISO_TEXT_BYTES) && recordBytes(event) > limit;
}

/** A refusal. At module level: under tsx a closure made per call costs a defineProperty (its name). */
function refuse(message: string, code: IngestErrorCode = 'BAD_USER_INPUT'): CheckedEvent {
  return { ok: false, message, code };
}

/**
 * The checks an event passes before anything is stored, the same whichever database stores it:
 * the size guardrail, its identity, type, timestamp and id, its data against the catalogue.
 */
export function checkEvent(event: EventInput, catalog: FieldCatalog, limits: IngestLimits): CheckedEvent {
  if (recordLongerThan(event, limits.eventRecordBytes)) {
    return refuse(`Event is larger than the ${limits.eventRecordBytes / 1024} KB guardrail`, 'GUARDRAIL');
  }
  const problem = identityProblem(event.identity);
  if (problem) return refuse(`Invalid identity: ${problem}`);
  if (typeof event.eventType !== 'string' || event.eventType === '') return refuse('eventType is empty');
  const parsedTs =
    typeof event.timestamp === 'number'
      ? instantOfMs(event.timestamp)
      : typeof event.timestamp === 'string'
        ? parseDatetime(event.timestamp)
        : undefined;
  if (!parsedTs?.ok) {
    return refuse(`timestamp must be an ISO-8601 datetime${parsedTs ? `: ${parsedTs.reason}` : ''}`);
  }
  if (event.id != null && (typeof event.id !== 'string' || event.id === '' || event.id.length > 256)) {
    return refuse('id must be a non-empty string of at most 256 characters');
  }
  const checked = validateDocument(event.data ?? {}, catalog.event);
  if (!checked.ok) return refuse(checked.message);
  if ('timestamp' in checked.value || 'eventType' in checked.value) {
    return refuse('timestamp and eventType are top-level event fields, not part of data');
  }
  return { ok: true, ts: parsedTs.ms, data: checked.value };
}

/** One request's events, written in the open transaction; what it changed goes into `changes`. */
function writeEvents(
  s: IngestStatements,
  identities: IdentityCache,
  { sandboxId, events }: PreparedRequest,
  now: number,
  changes: SandboxChanges,
): IngestResult {
  const result: IngestResult = { accepted: 0, rejected: 0, duplicates: 0, errors: [], profileIds: [] };
  const profileOf = new Map<string, number>();
  for (const [index, event] of events.entries()) {
    if (!event.ok) {
      result.rejected++;
      result.errors.push({ index, message: event.message, code: event.code });
      continue;
    }
    const { namespace, value, ts, eventType, payloadJson } = event;
    const key = identityKey(sandboxId, namespace, value);
    let profileId = profileOf.get(key);
    if (profileId === undefined) {
      profileId = identities.get(key);
      if (profileId === undefined) {
        profileId = s.findIdentity.get(sandboxId, namespace, value) as number | undefined;
        if (profileId === undefined) {
          profileId = Number(s.insertProfile.run(sandboxId, '{}', now, now).lastInsertRowid);
          changes.created.add(profileId);
          s.insertIdentity.run(sandboxId, namespace, value, profileId, now);
          changes.added.push({ namespace, value, profileId });
        }
      }
      changes.found.push({ key, profileId });
      profileOf.set(key, profileId);
    }
    const info = s.insertEvent.run(sandboxId, profileId, ts, eventType, event.eventId, payloadJson, now);
    if (info.changes === 0) result.duplicates++;
    else {
      const stored = { id: Number(info.lastInsertRowid), timestamp: ts, eventType: event.eventType, payloadJson };
      const written = changes.written.get(profileId);
      if (written) written.push(stored);
      else changes.written.set(profileId, [stored]);
      changes.touched.add(profileId);
      if (!changes.created.has(profileId)) {
        const types = changes.addedTypes.get(profileId);
        if (types) types.add(event.eventType);
        else changes.addedTypes.set(profileId, new Set([event.eventType]));
      }
    }
    result.accepted++;
    result.profileIds.push(profileId);
  }
  return result;
}
