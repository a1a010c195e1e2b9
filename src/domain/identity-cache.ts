/**
 * Which profile an identity names, kept per connection for event ingest: every event names its
 * profile by identity, and looking each one up was one statement per event. An identity's
 * profile changes only when identity stitching moves it or its profile is deleted, so:
 *
 * - lookups and new identities are kept only once their transaction has committed (a
 *   rolled-back group or commit leaves nothing behind);
 * - any update or delete of an `identities` row through this connection (temporary triggers,
 *   whatever the code path) and any commit by another connection (`data_version`) drops them all.
 */
import { cacheKey } from '../db/connection-cache.js';
import type { Connection } from '../db/index.js';
import { dataVersion } from '../db/write-stamp.js';

/**
 * Identities kept: in two generations of half as many each, the older dropped whole when the
 * younger fills (those found since it began were moved into the younger). Nearly least recently
 * used first, for one lookup per identity found again rather than a delete and an insert each.
 */
const CAPACITY = 200_000;

/** An identity found or stored by a transaction, kept once it commits. */
export interface FoundIdentity {
  key: string;
  profileId: number;
}

export function identityKey(sandboxId: number, namespace: string, value: string): string {
  return `${sandboxId}\u0000${namespace}\u0000${value}`;
}

/** The triggers call back into the connection's current cache (conn.cache.clear() makes a new one). */
const current = new WeakMap<Connection['sqlite'], IdentityCache>();
const installed = new WeakSet<Connection['sqlite']>();

export class IdentityCache {
  private young = new Map<string, number>();
  private old = new Map<string, number>();
  private version: number | undefined;
  /** Set by the triggers: an identity moved or was deleted through this connection. */
  private changed = false;
  /** Moves whenever the cache is emptied: a transaction's finds from before are not kept. */
  private generation = 0;

  constructor(
    private readonly conn: Connection,
    /** Identities kept at most (tests make it small). */
    private readonly capacity = CAPACITY,
  ) {
    current.set(conn.sqlite, this);
    if (installed.has(conn.sqlite)) return;
    installed.add(conn.sqlite);
    conn.sqlite.function('segql_identities_changed', { deterministic: false }, () => {
      const cache = current.get(conn.sqlite);
      if (cache) cache.changed = true;
      return null;
    });
    conn.sqlite.exec(`
      CREATE TEMP TRIGGER IF NOT EXISTS segql_identity_update AFTER UPDATE ON main.identities
        BEGIN SELECT segql_identities_changed(); END;
      CREATE TEMP TRIGGER IF NOT EXISTS segql_identity_delete AFTER DELETE ON main.identities
        BEGIN SELECT segql_identities_changed(); END;
    `);
  }

  /**
   * Call at the start of a write transaction, before `get`: empties the cache if identities
   * changed since (here or elsewhere). Returns the mark `keep` checks.
   */
  begin(): number {
    const version = dataVersion(this.conn);
    if (this.changed || version !== this.version) {
      if (this.young.size > 0) this.young = new Map();
      if (this.old.size > 0) this.old = new Map();
      this.generation++;
      this.changed = false;
      this.version = version;
    }
    return this.generation;
  }

  get(key: string): number | undefined {
    return this.young.get(key) ?? this.old.get(key);
  }

  /** After the commit of the transaction `begin` marked: keeps what it found and stored. */
  keep(mark: number, found: readonly FoundIdentity[]): void {
    // Changed since the transaction began (or by it): what it found may already be wrong.
    if (mark !== this.generation || this.changed) return;
    for (const { key, profileId } of found) {
      if (this.young.get(key) === profileId) continue;
      this.young.set(key, profileId);
      if (this.young.size >= this.capacity / 2) {
        this.old = this.young;
        this.young = new Map();
      }
    }
  }

  /** Identities held (for tests). */
  get size(): number {
    let n = this.young.size;
    for (const key of this.old.keys()) if (!this.young.has(key)) n++;
    return n;
  }
}

const IDENTITY_CACHE = cacheKey<IdentityCache>('identity cache');

export function identityCache(conn: Connection): IdentityCache {
  return conn.cache.get(IDENTITY_CACHE, () => new IdentityCache(conn));
}
