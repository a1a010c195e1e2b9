/**
 * The handle domain code runs on when it does not need SQLite itself (docs/scale-out.md, "The
 * storage boundary"): statements by name, the per-handle cache, and units of work (unit.ts).
 * The SQLite `Connection` (index.ts) is one; PostgreSQL's pool (pg/index.ts) is the other, and
 * gives each of its units a client of its own through `units`.
 */
import type { ConnectionCache } from './connection-cache.js';
import type { StatementRunner } from './statement.js';

export interface Store extends StatementRunner {
  readonly dialect: 'sqlite' | 'postgres';
  /** What domain code keeps per handle (statements, catalogues, plans); see connection-cache.ts. */
  readonly cache: ConnectionCache;
  /** Present on a database whose units each run on a client of their own (PostgreSQL). */
  readonly units?: UnitHost;
}

/** How a pooled database opens a unit: a client of its own, in a transaction. */
export interface UnitHost {
  /**
   * A client, its transaction begun and holding a lock of the cluster: the units' one, or
   * `lock` (a unit that needs to be serialised only with its own kind, e.g. one sandbox's ingests).
   */
  begin(lock?: UnitLock): Promise<UnitClient>;
}

/** A lock of the cluster as two 32-bit numbers: what kind of work, and for which (a sandbox id). */
export type UnitLock = readonly [kind: number, key: number];

export interface UnitClient extends StatementRunner {
  /** A statement with no parameters and no rows: COMMIT, ROLLBACK, savepoints. */
  exec(sql: string): Promise<void>;
  /** Back to the pool; `broken` when its transaction could not be ended cleanly. */
  release(broken?: boolean): void;
}
