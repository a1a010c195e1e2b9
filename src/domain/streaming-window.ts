/**
 * The streaming window kept in memory (docs/domain.md "Streaming and edge segmentation"): per
 * profile, its events of the last STREAMING_WINDOW_MS of the types the sandbox's streaming plan
 * reads, in (ts, id) order, so an ingest evaluates a profile without reading back from SQLite
 * what this process itself wrote. Windows are per connection, filled from SQLite on a miss and
 * advanced by the events each ingest reports, and only once its transaction has committed.
 *
 * A window must never be served stale, and it must not depend on every writer remembering to
 * say so:
 *
 * - writes by other connections (job workers, another process) move `data_version`: then every
 *   window of the connection is dropped;
 * - rows of `events` this connection inserts, updates or deletes are seen by temporary triggers
 *   (this connection's only), which note the profile and row; before windows are next served
 *   each noted row drops its profile's window unless the ingest being evaluated reported that
 *   very row. Stitching (events moving to another profile), profile deletion, a request undone
 *   by its savepoint, a transaction rolled back: each only costs a reload.
 */
import { cacheKey } from '../db/connection-cache.js';
import type { Connection } from '../db/index.js';
import { dataVersion } from '../db/write-stamp.js';
import type { EventRecord } from '../pql/index.js';

/** Profiles whose windows one connection keeps unless told (SEGQL_STREAMING_WINDOW_PROFILES sets it). */
const DEFAULT_WINDOW_PROFILES = 50_000;

/** A window longer than this many events is read from SQLite each time rather than held. */
const MAX_WINDOW_EVENTS = 5_000;

/** Noted rows past this many (a bulk write with no streaming) drop every window instead. */
const MAX_NOTED_ROWS = 100_000;

/** An event an ingest has just written, its payload as the JSON text it stored. */
export interface WrittenEvent {
  id: number;
  timestamp: number;
  eventType: string;
  payloadJson: string;
}

/** Per profile, the events an ingest wrote, in the order it wrote them. */
export type WrittenEvents = ReadonlyMap<number, readonly WrittenEvent[]>;

interface Window {
  sandboxId: number;
  /** The event types held (`*`: all of them), as `typesKey` makes it. */
  types: string;
  /** Events from this instant on are all held. */
  since: number;
  /** Never changed once made: a newer window replaces it. */
  events: readonly EventRecord[];
}

/** What one read of windows serves, and what it keeps once the transaction has committed. */
export interface WindowRead {
  /** The window of each asked profile (of a sandbox's existing profiles; others may be absent). */
  events: Map<number, EventRecord[]>;
  /** Call after the commit: keeps the windows read and advanced by this ingest. */
  commit(): void;
}

function typesKey(types: ReadonlySet<string> | null): string {
  return types === null ? '*' : [...types].sort().join('\u0000');
}

function inOrder(a: EventRecord, b: EventRecord): boolean {
  return a.timestamp < b.timestamp || (a.timestamp === b.timestamp && a.id < b.id);
}

/** The first index of a (ts, id)-ordered list whose event is at or after `since`. */
function firstSince(events: readonly EventRecord[], since: number): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (events[mid]!.timestamp < since) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function prepare(sqlite: Connection['sqlite']) {
  const load = `SELECT e.profile_id AS profileId,
      json_group_array(json_array(e.id, e.ts, e.event_type, json(e.payload)) ORDER BY e.ts, e.id) AS events`;
  return {
    // As profile-documents.ts loads them: one JSON array per profile, the few ids first.
    events: sqlite.prepare(
      `${load} FROM json_each(?) AS j CROSS JOIN events AS e ON e.profile_id = j.value AND e.ts >= ? GROUP BY e.profile_id`,
    ),
    eventsOfTypes: sqlite.prepare(
      `${load} FROM json_each(?) AS j CROSS JOIN json_each(?) AS t CROSS JOIN events AS e
         ON e.profile_id = j.value AND e.event_type = t.value AND e.ts >= ?
       GROUP BY e.profile_id`,
    ),
  };
}

const totals = { hit: 0, miss: 0 };

/** Windows served from memory (`hit`) and read from SQLite (`miss`) in this process (`segql_streaming_window_reads_total`). */
export function streamingWindowReadsTotal(): Readonly<{ hit: number; miss: number }> {
  return totals;
}

/** The triggers call back into the connection's current windows (conn.cache.clear() makes new ones). */
const current = new WeakMap<Connection['sqlite'], StreamingWindows>();

export class StreamingWindows {
  /** Least recently used first. */
  private readonly windows = new Map<number, Window>();
  /** Rows of `events` this connection wrote since windows were last served: profile, row (-1: any). */
  private noted: number[] = [];
  private overflowed = false;
  /** `data_version` when windows were last served. */
  private version: number | undefined;
  /** Moves whenever windows are dropped: a read's commit keeps nothing read before. */
  private generation = 0;
  private readonly statements: ReturnType<typeof prepare>;
  hits = 0;
  misses = 0;

  constructor(
    private readonly conn: Connection,
    /** Profiles whose windows are kept; 0 keeps none (every read goes to SQLite). */
    public capacity = DEFAULT_WINDOW_PROFILES,
  ) {
    this.statements = prepare(conn.sqlite);
    installTriggers(conn.sqlite);
    current.set(conn.sqlite, this);
  }

  /** Windows held now (for tests and diagnostics). */
  get size(): number {
    return this.windows.size;
  }

  /** A row of `events` written through this connection (the triggers call this). */
  note(profileId: number, rowId: number): void {
    if (this.overflowed) return;
    if (this.noted.length >= 2 * MAX_NOTED_ROWS) {
      this.overflowed = true;
      this.noted = [];
      return;
    }
    this.noted.push(profileId, rowId);
  }

  /** Drops every window. */
  clear(): void {
    this.windows.clear();
    this.noted = [];
    this.overflowed = false;
    this.generation++;
  }

  /**
   * The windows (events of `types`, `null` for all, at or after `since`) of `profileIds` of a
   * sandbox, including the events `written` by the transaction this runs in; the windows of the
   * other profiles in `written` are advanced too. Call inside the write transaction, and
   * `commit()` once it has committed.
   */
  read(
    sandboxId: number,
    profileIds: Iterable<number>,
    since: number,
    types: ReadonlySet<string> | null,
    written?: WrittenEvents,
  ): WindowRead {
    this.dropStale(written);
    const key = typesKey(types);
    const out = new Map<number, EventRecord[]>();
    const keep = new Map<number, Window>();
    const missing: number[] = [];
    const wanted = new Set(profileIds);
    const all = written ? new Set([...wanted, ...written.keys()]) : wanted;
    for (const profileId of all) {
      const held = this.windows.get(profileId);
      if (held === undefined || held.sandboxId !== sandboxId || held.types !== key || held.since > since) {
        if (held !== undefined) this.windows.delete(profileId);
        if (wanted.has(profileId)) missing.push(profileId);
        continue;
      }
      const events = advance(held.events, since, types, written?.get(profileId));
      keep.set(profileId, { sandboxId, types: key, since, events });
      if (wanted.has(profileId)) {
        out.set(profileId, events);
        this.hits++;
        totals.hit++;
      }
    }
    if (missing.length > 0) {
      this.misses += missing.length;
      totals.miss += missing.length;
      // Inside the transaction: what it wrote is read back with the rest.
      const ids = JSON.stringify(missing);
      const s = this.statements;
      const rows = (
        types === null
          ? s.events.all(ids, since)
          : types.size === 0
            ? []
            : s.eventsOfTypes.all(ids, JSON.stringify([...types]), since)
      ) as { profileId: number; events: string }[];
      for (const profileId of missing) out.set(profileId, []);
      for (const row of rows) {
        const events = out.get(row.profileId)!;
        for (const [id, timestamp, eventType, payload] of JSON.parse(row.events) as [
          number,
          number,
          string,
          Record<string, unknown>,
        ][]) {
          events.push({ id, timestamp, eventType, payload });
        }
      }
      for (const profileId of missing) {
        keep.set(profileId, { sandboxId, types: key, since, events: out.get(profileId)! });
      }
    }
    const generation = this.generation;
    return {
      events: out,
      commit: () => {
        // Dropped since the read (a write by another connection seen meanwhile): keep nothing.
        if (generation !== this.generation) return;
        for (const [profileId, window] of keep) this.keep(profileId, window);
      },
    };
  }

  private keep(profileId: number, window: Window): void {
    this.windows.delete(profileId);
    if (this.capacity === 0 || window.events.length > MAX_WINDOW_EVENTS) return;
    this.windows.set(profileId, window);
    while (this.windows.size > this.capacity) {
      this.windows.delete(this.windows.keys().next().value!);
    }
  }

  /** Drops what another connection's commit or an unreported write of this one may have changed. */
  private dropStale(written: WrittenEvents | undefined): void {
    const version = dataVersion(this.conn);
    if (this.version !== version || this.overflowed) {
      if (this.version !== undefined || this.overflowed) this.clear();
      this.version = version;
      this.noted = [];
      this.overflowed = false;
      return;
    }
    const noted = this.noted;
    if (noted.length === 0) return;
    this.noted = [];
    let reported: Set<number> | undefined;
    for (let i = 0; i < noted.length; i += 2) {
      const profileId = noted[i]!;
      const rowId = noted[i + 1]!;
      if (rowId >= 0 && written?.get(profileId)) {
        reported ??= new Set([...written.values()].flatMap((list) => list.map((e) => e.id)));
        if (reported.has(rowId)) continue;
      }
      if (this.windows.delete(profileId)) this.generation++;
    }
  }
}

/**
 * The held window moved on to `since`, with the written events of the held types that fall in
 * it, in (ts, id) order: a new list, the held one is never changed.
 */
function advance(
  held: readonly EventRecord[],
  since: number,
  types: ReadonlySet<string> | null,
  written: readonly WrittenEvent[] | undefined,
): EventRecord[] {
  const events = held.slice(firstSince(held, since));
  if (!written) return events;
  for (const w of written) {
    if (w.timestamp < since || (types !== null && !types.has(w.eventType))) continue;
    const event: EventRecord = {
      id: w.id,
      timestamp: w.timestamp,
      eventType: w.eventType,
      payload: JSON.parse(w.payloadJson) as Record<string, unknown>,
    };
    // Mostly appended: events usually arrive in time order.
    let i = events.length;
    while (i > 0 && inOrder(event, events[i - 1]!)) i--;
    events.splice(i, 0, event);
  }
  return events;
}

const WINDOWS = cacheKey<StreamingWindows>('streaming windows');

/** The connection's streaming windows, made on first use. */
export function streamingWindows(conn: Connection): StreamingWindows {
  return conn.cache.get(WINDOWS, () => new StreamingWindows(conn));
}

const installed = new WeakSet<Connection['sqlite']>();

/** Temporary triggers (this connection's writes only) noting each row of `events` written. */
function installTriggers(sqlite: Connection['sqlite']): void {
  if (installed.has(sqlite)) return;
  installed.add(sqlite);
  sqlite.function('segql_window_note', { deterministic: false }, (profileId, rowId) => {
    current.get(sqlite)?.note(Number(profileId), Number(rowId));
    return null;
  });
  sqlite.exec(`
    CREATE TEMP TRIGGER IF NOT EXISTS segql_window_insert AFTER INSERT ON main.events
      BEGIN SELECT segql_window_note(NEW.profile_id, NEW.id); END;
    CREATE TEMP TRIGGER IF NOT EXISTS segql_window_update AFTER UPDATE ON main.events
      BEGIN SELECT segql_window_note(OLD.profile_id, -1), segql_window_note(NEW.profile_id, -1); END;
    CREATE TEMP TRIGGER IF NOT EXISTS segql_window_delete AFTER DELETE ON main.events
      BEGIN SELECT segql_window_note(OLD.profile_id, -1); END;
  `);
}
