/**
 * Live search results. The search triggers bump a per-sandbox revision in the transaction of
 * every index change; while anyone watches, a timer reads the revisions (one indexed read) and
 * publishes `topics.search(sandbox)` on the bus for each that moved. Reading committed state
 * means the event always follows the commit, and no writer has to remember to announce its
 * change (a CLI import in another process is seen too). Each subscriber then re-runs its query
 * and reports the difference.
 */
import type { Connection } from '../../db/index.js';
import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { type EventBus, topics } from '../events.js';
import { type SearchHit, searchEntities } from './search.js';

const q = statements('search', {
  revisions: {
    sqlite: 'SELECT sandbox_id AS s, revision AS r FROM search_revisions',
    postgres: 'SELECT sandbox_id AS s, revision AS r FROM search_revisions',
  },
});

export class SearchWatcher {
  private readonly revisions = new Map<number, number>();
  private watchers = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly conn: Store,
    private readonly bus: EventBus,
    private readonly intervalMs = 5,
  ) {}

  /** Starts polling (if not already) until the returned release is called. */
  async acquire(): Promise<() => void> {
    this.watchers++;
    if (!this.timer) {
      await this.poll();
      // Another acquire may have started the timer while this one's first read was awaited.
      if (!this.timer) {
        this.timer = setInterval(() => void this.poll(), this.intervalMs);
        this.timer.unref();
      }
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.watchers--;
      if (this.watchers === 0) this.stop();
    };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async poll(): Promise<void> {
    if ((this.conn as Partial<Connection>).sqlite?.open === false) return;
    const read = this.conn.all<{ s: number; r: number }>(q.revisions);
    // A pool that lost its server or was closed: the next tick reads again.
    const rows = this.conn.dialect === 'postgres' ? await read.catch(() => null) : await read;
    if (!rows) return;
    for (const { s, r } of rows) {
      const before = this.revisions.get(s);
      this.revisions.set(s, r);
      // Local only: every process watching reads the revisions of the database it serves itself
      // (on PostgreSQL, the one all nodes share), so sending it through Redis too would tell each
      // subscriber once per watching node.
      if (before !== undefined && before !== r) this.bus.publishLocal(topics.search(s), r);
    }
  }
}

export const SEARCH_EVENT_TYPES = ['RESULTS', 'ADDED', 'CHANGED', 'REMOVED'] as const;
export type SearchEventType = (typeof SEARCH_EVENT_TYPES)[number];

export interface SearchEvent {
  type: SearchEventType;
  /** RESULTS: the current hits. */
  hits: SearchHit[];
  /** ADDED, CHANGED, REMOVED: the hit (as it was, for REMOVED). */
  hit: SearchHit | null;
  totalCount: number;
}

const keyOf = (h: SearchHit) => `${h.kind}:${h.entityKey}`;
const fingerprint = (h: SearchHit) => JSON.stringify([h.rank, h.snippet, h.matchedFields, h.content]);

/** The differences between two rankings: removals first, then additions and changes in rank order. */
export function diffHits(before: SearchHit[], after: SearchHit[], totalCount: number): SearchEvent[] {
  const old = new Map(before.map((h) => [keyOf(h), h]));
  const now = new Set(after.map(keyOf));
  const events: SearchEvent[] = [];
  for (const h of before) if (!now.has(keyOf(h))) events.push({ type: 'REMOVED', hits: [], hit: h, totalCount });
  for (const h of after) {
    const prev = old.get(keyOf(h));
    if (!prev) events.push({ type: 'ADDED', hits: [], hit: h, totalCount });
    else if (fingerprint(prev) !== fingerprint(h)) events.push({ type: 'CHANGED', hits: [], hit: h, totalCount });
  }
  return events;
}

export interface LiveSearchOptions {
  conn: Store;
  bus: EventBus;
  watcher: SearchWatcher;
  sandboxId: number;
  namespace: string | null;
  query: string;
  first: number;
  signal?: AbortSignal;
}

/** The current hits as one RESULTS event, then an event per hit that appears, changes or goes. */
export async function* liveSearchResults(options: LiveSearchOptions): AsyncGenerator<SearchEvent> {
  const { conn, bus, watcher, sandboxId, namespace, query, first, signal } = options;
  const run = async () => {
    const page = await searchEntities(conn, sandboxId, namespace, query, { first });
    return { hits: page.hits, totalCount: await page.totalCount() };
  };
  // Checks the query before subscribing, so a bad one fails the subscription at once.
  let current = await run();
  const changes = bus.subscribe<number>(topics.search(sandboxId), signal);
  const release = await watcher.acquire();
  try {
    yield { type: 'RESULTS', hits: current.hits, hit: null, totalCount: current.totalCount };
    for await (const _revision of changes) {
      const next = await run();
      yield* diffHits(current.hits, next.hits, next.totalCount);
      current = next;
    }
  } finally {
    release();
    changes.close();
  }
}
