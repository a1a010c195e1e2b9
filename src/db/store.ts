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
  /**
   * Has the database plan, without running it, a statement built at run time (a compiled
   * definition: compiler-made text, bound parameters only), and throws its refusal. Each
   * database is given its own text, built only when asked for (one database's compiler may not
   * express what the other's does).
   */
  plan(texts: PlanTexts): Promise<void>;
}

/** A statement built at run time, per database: its text and parameters. */
export interface PlanTexts {
  sqlite: () => { sql: string; params: readonly unknown[] };
  postgres: () => { sql: string; params: readonly unknown[] };
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
