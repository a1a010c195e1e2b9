/**
 * The streaming window kept in memory (docs/domain.md "Streaming and edge segmentation"): per
 * profile, its events of the last STREAMING_WINDOW_MS of the types the sandbox's streaming plan
 * reads, in (ts, id) order, with its attributes and memberships, so an ingest evaluates a profile
 * without reading back from SQLite what this process itself wrote. Windows are per connection,
 * filled from SQLite on a miss and advanced by the events each ingest reports and the
 * memberships its evaluation writes, and only once its transaction has committed.
 *
 * A window must never be served stale, and it must not depend on every writer remembering to
 * say so:
 *
 * - writes by other connections (job workers, another process) move `data_version`: then every
 *   window of the connection is dropped;
 * - events this connection inserts are found by their ids: `events.id` is AUTOINCREMENT, so
 *   every row inserted since windows were last served has an id above the highest then, kept in
 *   a temporary table so that a rolled-back transaction's rows (whose ids are used again) are
 *   looked at again. When the new ids are exactly the events the ingest being evaluated reported
 *   writing, nothing is read; otherwise the new rows' profiles are read and noted. (An insert
 *   naming an id below the mark would go unseen: no code does one.)
 * - rows of `events` this connection updates or deletes, rows of `memberships` it writes, and
 *   profiles whose attributes it changes or which it deletes, are seen by temporary triggers
 *   (this connection's only), which note the profile;
 * - before windows are next served each noted row drops its profile's window, unless it is an
 *   event the ingest being evaluated reported writing or a membership its evaluation wrote.
 *   Stitching (events moving to another profile), attribute updates, profile deletion, a job's
 *   or list's membership writes on this connection, a transaction rolled back: each only costs a reload.
 *
 * Events were noted by a trigger too, until that trigger, run for each inserted event, was found
 * to cost about an eighth of the ingest thread's CPU per event (bench/RESULTS.md, session 13).
 */
import type Database from 'better-sqlite3';
import { cacheKey } from '../db/connection-cache.js';
import type { Connection } from '../db/index.js';
import { dataVersion } from '../db/write-stamp.js';
import { type EventRecord, eventBefore, eventRecord, eventsInOrder } from '../pql/index.js';
import { loadProfileDocuments, type StoredProfileDocument } from './profile-documents.js';

/** Profiles whose windows one connection keeps unless told (SEGQL_STREAMING_WINDOW_PROFILES sets it). */
const DEFAULT_WINDOW_PROFILES = 50_000;

/** A window longer than this many events is read from SQLite each time rather than held. */
const MAX_WINDOW_EVENTS = 5_000;

/** A noted write that changed a profile other than by an event inserted. */
const CHANGED = -1;

/** Noted rows past this many (a bulk write with no streaming) drop every window instead. */
const MAX_NOTED_ROWS = 100_000;

/** The statements that find the events this connection inserted (see the top of this file). */
interface EventIdStatements {
  /** The highest id accounted for, and the highest now. */
  range: Database.Statement;
  setMark: Database.Statement;
  /** `[id, profile_id]` of the events in an id range. */
  inserted: Database.Statement;
}

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
  /** Attributes and memberships as the last evaluation left them; `events` is the window's. */
  doc: StoredProfileDocument;
  /** The event types held (`*`: all of them), as `typesKey` makes it. */
  types: string;
  /** Events from this instant on are all held. */
  since: number;
  /** Never changed once made: a newer window replaces it. */
  events: readonly EventRecord[];
}

/** What one read of windows serves, and what it keeps once the transaction has committed. */
export interface WindowRead {
  docs: Map<number, StoredProfileDocument>;
  /** Call after the commit: keeps the windows read and advanced by this ingest. */
  commit(): void;
}

function typesKey(types: ReadonlySet<string> | null): string {
  return types === null ? '*' : [...types].sort().join('\u0000');
}

/** The first index of a (ts, id)-ordered list whose event is at or after `since`. */
function firstSince(events: readonly EventRecord[], since: number): number {
  // Mostly none has left the window: one event read, not a search's several (each a cache miss).
  if (events.length === 0 || events[0]!.timestamp >= since) return 0;
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (events[mid]!.timestamp < since) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const totals = { hit: 0, miss: 0 };

/** Windows served from memory (`hit`) and read from SQLite (`miss`) in this process (`segql_streaming_window_reads_total`). */
export function streamingWindowReadsTotal(): Readonly<{ hit: number; miss: number }> {
  return totals;
}

/** Adds window reads made on the ingest thread, which counts its own (ingest-thread.ts). */
export function countStreamingWindowReads(hit: number, miss: number): void {
  totals.hit += hit;
  totals.miss += miss;
}

/** The triggers call back into the connection's current windows (conn.cache.clear() makes new ones). */
const current = new WeakMap<Connection['sqlite'], StreamingWindows>();

export class StreamingWindows {
  /** Least recently used first. */
  private readonly windows = new Map<number, Window>();
  /**
   * Rows this connection wrote since windows were last served, as pairs: the profile, and the
   * event row inserted, or CHANGED (events moved or deleted, attributes, memberships).
   */
  private noted: number[] = [];
  /** The evaluation is writing its own membership changes (`evaluating`). */
  private evaluatingNow = false;
  /** Counts the writes noted: one after a read and before its commit makes the commit keep nothing. */
  private writes = 0;
  private overflowed = false;
  /** `data_version` when windows were last served. */
  private version: number | undefined;
  /** Moves whenever windows are dropped: a read's commit keeps nothing read before. */
  private generation = 0;
  /**
   * The triggers and the events' mark are made inside the transaction of the first read, which
   * may roll back: they are made again (if absent) until a read's transaction has committed.
   */
  private installCommitted = false;
  private readonly ids: EventIdStatements;
  hits = 0;
  misses = 0;

  constructor(
    private readonly conn: Connection,
    /** Profiles whose windows are kept; 0 keeps none (every read goes to SQLite). */
    public capacity = DEFAULT_WINDOW_PROFILES,
  ) {
    const { sqlite } = conn;
    installTriggers(sqlite);
    this.ids = {
      range: sqlite.prepare(
        'SELECT m.events AS mark, coalesce((SELECT max(id) FROM main.events), 0) AS top FROM temp.segql_window_mark AS m',
      ),
      setMark: sqlite.prepare('UPDATE temp.segql_window_mark SET events = ?'),
      inserted: sqlite.prepare('SELECT id, profile_id FROM main.events WHERE id > ? AND id <= ?').raw(),
    };
    current.set(sqlite, this);
  }

  /** Windows held now (for tests and diagnostics). */
  get size(): number {
    return this.windows.size;
  }

  /** A row written through this connection (the triggers call this); `membership`: a memberships row. */
  note(profileId: number, rowId: number, membership = false): void {
    if (membership && this.evaluatingNow) return;
    this.writes++;
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
   * The documents of `profileIds` of a sandbox for streaming: attributes, memberships, and the
   * window (events of `types`, `null` for all, at or after `since`) including the events
   * `written` by the transaction this runs in; the windows of the other profiles in `written`
   * are advanced too. Profiles the sandbox does not have are left out. Call inside the write
   * transaction; membership writes of the evaluation go through `evaluating`, and `commit()` once
   * the transaction has committed keeps the documents as the evaluation left them.
   */
  read(
    sandboxId: number,
    profileIds: Iterable<number>,
    since: number,
    types: ReadonlySet<string> | null,
    written?: WrittenEvents,
  ): WindowRead {
    if (!this.installCommitted) createWatches(this.conn.sqlite);
    this.dropStale(sandboxId, written);
    const key = typesKey(types);
    const docs = new Map<number, StoredProfileDocument>();
    const keep = new Map<number, Window>();
    const missing: number[] = [];
    const wanted = new Set(profileIds);
    const serve = (profileId: number, isWanted: boolean) => {
      const held = this.windows.get(profileId);
      if (held === undefined || held.sandboxId !== sandboxId || held.types !== key || held.since > since) {
        if (held !== undefined) this.windows.delete(profileId);
        if (isWanted) missing.push(profileId);
        return;
      }
      const events = advance(held.events, since, types, written?.get(profileId));
      // Its memberships are the held ones until the evaluation changes one (`changing`). Spelt
      // out rather than spread: one shape for every window and document, on the ingest's path.
      const { attributes, memberships, statuses, payloads } = held.doc;
      const doc: StoredProfileDocument = isWanted ? { attributes, events, memberships, statuses, payloads } : held.doc;
      keep.set(profileId, { sandboxId, doc, types: key, since, events });
      if (isWanted) {
        docs.set(profileId, doc);
        this.hits++;
        totals.hit++;
      }
    };
    for (const profileId of wanted) serve(profileId, true);
    if (written) for (const profileId of written.keys()) if (!wanted.has(profileId)) serve(profileId, false);
    if (missing.length > 0) {
      this.misses += missing.length;
      totals.miss += missing.length;
      // Inside the transaction: what it wrote is read back with the rest.
      const loaded = loadProfileDocuments(this.conn, sandboxId, missing, since, types);
      for (const [profileId, doc] of loaded) {
        docs.set(profileId, doc);
        // The evaluation works on `doc` itself: kept after the commit, never changed after.
        keep.set(profileId, { sandboxId, types: key, since, events: doc.events, doc });
      }
    }
    const generation = this.generation;
    const writes = this.writes;
    return {
      docs,
      commit: () => {
        this.installCommitted = true;
        // Written to since the read, or windows dropped (another read of the transaction found
        // them stale): trust none of these, whose memberships the evaluation changed unnoted.
        // (An event inserted since has an id above the mark: the next read drops its window.)
        if (generation !== this.generation || writes !== this.writes) {
          for (const profileId of keep.keys()) this.windows.delete(profileId);
          return;
        }
        for (const [profileId, window] of keep) this.keep(profileId, window);
      },
    };
  }

  /**
   * Makes `doc`'s memberships its own before the evaluation changes them: the held ones move
   * only at the commit.
   */
  static changing(doc: StoredProfileDocument): void {
    doc.memberships = new Set(doc.memberships);
    doc.statuses = new Map(doc.statuses);
  }

  /**
   * Runs the evaluation's own membership writes: the documents it keeps at the commit say what
   * they wrote, so they drop no window (any other membership write does).
   */
  evaluating<T>(write: () => T): T {
    this.evaluatingNow = true;
    try {
      return write();
    } finally {
      this.evaluatingNow = false;
    }
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
  private dropStale(sandboxId: number, written: WrittenEvents | undefined): void {
    const { mark, top } = this.ids.range.get() as { mark: number; top: number };
    if (top !== mark) this.ids.setMark.run(top);
    const version = dataVersion(this.conn);
    if (this.version !== version || this.overflowed) {
      if (this.version !== undefined || this.overflowed) this.clear();
      this.version = version;
      this.noted = [];
      this.overflowed = false;
      return;
    }
    if (top > mark) this.noteInserted(mark, top, written);
    const noted = this.noted;
    if (noted.length === 0) return;
    this.noted = [];
    let reported: Set<number> | undefined;
    for (let i = 0; i < noted.length; i += 2) {
      const profileId = noted[i]!;
      const rowId = noted[i + 1]!;
      const held = this.windows.get(profileId);
      if (held === undefined) continue;
      // Another sandbox's profile: its own read (with its own written events) decides.
      if (held.sandboxId !== sandboxId) {
        this.noted.push(profileId, rowId);
        continue;
      }
      if (rowId !== CHANGED && written?.get(profileId)) {
        reported ??= reportedIds(written);
        if (reported.has(rowId)) continue;
      }
      this.windows.delete(profileId);
      this.generation++;
    }
  }

  /**
   * Notes the events inserted with ids in (`mark`, `top`], unless they are exactly the ones
   * `written` reports: ids are unique, so as many reported in the range as the range holds is
   * all of them, and nothing is read.
   */
  private noteInserted(mark: number, top: number, written: WrittenEvents | undefined): void {
    let inRange = 0;
    if (written) {
      for (const list of written.values()) for (const e of list) if (e.id > mark && e.id <= top) inRange++;
    }
    if (inRange === top - mark) return;
    if (top - mark > MAX_NOTED_ROWS) {
      this.writes++;
      this.clear();
      return;
    }
    for (const [id, profileId] of this.ids.inserted.iterate(mark, top) as Iterable<[number, number]>) {
      this.note(profileId, id);
    }
  }
}

function reportedIds(written: WrittenEvents): Set<number> {
  return new Set([...written.values()].flatMap((list) => list.map((e) => e.id)));
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
  if (!written) return eventsInOrder(events);
  for (const w of written) {
    if (w.timestamp < since || (types !== null && !types.has(w.eventType))) continue;
    const event = eventRecord(w.id, w.timestamp, w.eventType, w.payloadJson);
    // Mostly appended: events usually arrive in time order.
    let i = events.length;
    while (i > 0 && eventBefore(event, events[i - 1]!)) i--;
    events.splice(i, 0, event);
  }
  return eventsInOrder(events);
}

const WINDOWS = cacheKey<StreamingWindows>('streaming windows');

/** The connection's streaming windows, made on first use. */
export function streamingWindows(conn: Connection): StreamingWindows {
  return conn.cache.get(WINDOWS, () => new StreamingWindows(conn, capacities.get(conn.sqlite)));
}

const capacities = new WeakMap<Connection['sqlite'], number>();

/**
 * Sets how many profiles' windows `conn` keeps, without making its windows: they (and the
 * watches that keep them fresh: the events' mark, and triggers costing a few µs on every row of
 * memberships and every event updated or deleted) come with the first streaming evaluation, so
 * a store without streaming definitions never pays for them.
 */
export function configureStreamingWindows(conn: Connection, capacity: number): void {
  capacities.set(conn.sqlite, capacity);
  const made = current.get(conn.sqlite);
  if (made) made.capacity = capacity;
}

const installed = new WeakSet<Connection['sqlite']>();

/** The functions the triggers call, registered once per connection; then the triggers and the mark. */
function installTriggers(sqlite: Connection['sqlite']): void {
  if (installed.has(sqlite)) return;
  installed.add(sqlite);
  sqlite.function('segql_window_note', { deterministic: false }, (profileId, rowId) => {
    current.get(sqlite)?.note(Number(profileId), Number(rowId));
    return null;
  });
  sqlite.function('segql_window_membership', { deterministic: false }, (profileId) => {
    current.get(sqlite)?.note(Number(profileId), CHANGED, true);
    return null;
  });
  createWatches(sqlite);
}

/**
 * Temporary triggers (this connection's writes only) noting rows of `events`, `memberships` and
 * `profiles` written, and the mark of the highest event id accounted for; what exists is kept.
 */
function createWatches(sqlite: Connection['sqlite']): void {
  // Only a change of a profile's attributes is noted (its updated_at moves with a profile
  // record, not with its events). Inserted events are found by id (the mark), not by a trigger.
  sqlite.exec(`
    CREATE TEMP TABLE IF NOT EXISTS segql_window_mark (one INTEGER PRIMARY KEY CHECK (one = 1), events INTEGER NOT NULL);
    INSERT INTO temp.segql_window_mark (one, events) SELECT 1, coalesce(max(id), 0) FROM main.events WHERE true
      ON CONFLICT DO NOTHING;
    CREATE TEMP TRIGGER IF NOT EXISTS segql_window_update AFTER UPDATE ON main.events
      BEGIN SELECT segql_window_note(OLD.profile_id, ${CHANGED}), segql_window_note(NEW.profile_id, ${CHANGED}); END;
    CREATE TEMP TRIGGER IF NOT EXISTS segql_window_delete AFTER DELETE ON main.events
      BEGIN SELECT segql_window_note(OLD.profile_id, ${CHANGED}); END;
    CREATE TEMP TRIGGER IF NOT EXISTS segql_window_attributes AFTER UPDATE OF attributes ON main.profiles
      BEGIN SELECT segql_window_note(NEW.id, ${CHANGED}); END;
    CREATE TEMP TRIGGER IF NOT EXISTS segql_window_profile_delete AFTER DELETE ON main.profiles
      BEGIN SELECT segql_window_note(OLD.id, ${CHANGED}); END;
    CREATE TEMP TRIGGER IF NOT EXISTS segql_window_member_insert AFTER INSERT ON main.memberships
      BEGIN SELECT segql_window_membership(NEW.profile_id); END;
    CREATE TEMP TRIGGER IF NOT EXISTS segql_window_member_update AFTER UPDATE ON main.memberships
      BEGIN SELECT segql_window_membership(OLD.profile_id), segql_window_membership(NEW.profile_id); END;
    CREATE TEMP TRIGGER IF NOT EXISTS segql_window_member_delete AFTER DELETE ON main.memberships
      BEGIN SELECT segql_window_membership(OLD.profile_id); END;
  `);
}
