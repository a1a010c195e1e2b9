/**
 * Units of work: the statements of one business operation, committed together or not at all,
 * as an asynchronous call. A PostgreSQL driver answers asynchronously, so a transaction there
 * is `await`ed statement by statement; the domain opens its transactions through this module so
 * that the same code can run on either database (docs/scale-out.md, "The storage boundary").
 *
 * On SQLite every unit runs on the process's one writer connection. `writeUnit` hands its body
 * a handle (`tx`) for that connection, marked as being inside the unit:
 *
 * - A body that finishes synchronously (the common case) runs between `BEGIN IMMEDIATE` and
 *   `COMMIT` in one synchronous section, exactly as `sqlite.transaction(fn).immediate()` did:
 *   nothing else can run in between.
 * - A body that awaits keeps the transaction open across its awaits. Other units wait their
 *   turn (first come, first served) instead of joining it, which is what one connection would
 *   otherwise do; a unit opened with `tx` inside the body is a savepoint of it.
 *
 * The write gate (write-gate.ts) is taken for the synchronous start of a unit only: once
 * `BEGIN IMMEDIATE` has succeeded the unit holds SQLite's write lock, and a job worker that
 * wants it waits on its own thread (busy timeout), never the event loop.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { withoutBusyWait } from './busy.js';
import type { Connection } from './index.js';
import type { Store, UnitHost, UnitLock } from './store.js';

export type { Store } from './store.js';

/** The handle a unit's body works through: the store, marked with the unit it is inside. */
export type UnitOf<S extends Store> = S & { readonly unit: UnitState };

/** A unit's handle on SQLite. */
export type UnitConnection = UnitOf<Connection>;

interface UnitState {
  /** Savepoints opened so far inside this unit (for their names). */
  savepoints: number;
  /** The store's turns, and whether the unit has committed or rolled back (for the tests' check). */
  turns: Turns;
  ended: boolean;
  /** Runs a savepoint statement on the unit's transaction. */
  exec(sql: string): void | Promise<void>;
}

/** Per SQLite connection: whether a unit with awaits is open, and who waits for it. */
interface Turns {
  open: boolean;
  waiting: Array<() => void>;
}

/**
 * Under the tests only (AsyncLocalStorage slows every promise of the process on Node 20): the
 * unit the running code is inside, to catch a body that opens a unit with the outer connection
 * instead of its `tx` — it would wait for the very unit it is part of, for ever.
 */
const inside = process.env.VITEST ? new AsyncLocalStorage<UnitState>() : undefined;

/** Under the tests: whether the running code is inside a unit of `turns`' connection still open. */
function insideOpenUnit(turns: Turns): boolean {
  const unit = inside?.getStore();
  // Work a body started and did not wait for carries its unit along after the unit has ended.
  return unit !== undefined && unit.turns === turns && !unit.ended;
}

const turnsByHandle = new WeakMap<object, Turns>();

/** Per SQLite file handle (its connection objects share it), or per pooled store. */
function turnsOf(conn: Store): Turns {
  const key = isSqlite(conn) ? conn.sqlite : conn;
  let turns = turnsByHandle.get(key);
  if (!turns) {
    turns = { open: false, waiting: [] };
    turnsByHandle.set(key, turns);
  }
  return turns;
}

function isSqlite(conn: Store): conn is Connection {
  return conn.units === undefined;
}

function isUnit<S extends Store>(conn: S): conn is UnitOf<S> {
  return (conn as Partial<UnitOf<Store>>).unit !== undefined;
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

export interface UnitOptions {
  /**
   * false: fail at once with SQLITE_BUSY when another process holds the write lock, rather than
   * wait for it in SQLite's busy wait, which on the main thread holds the event loop (db/busy.ts).
   * For background writers that can drop or retry their work (a schedule's tick, a sweep).
   * Only the start waits for the lock: once begun, the unit holds it.
   */
  busyWait?: boolean;
  /**
   * On a pooled database, the lock the unit takes instead of the units' one, so that it is
   * serialised only with units taking the same (the ingests of one sandbox, say) and runs beside
   * the others. On SQLite every unit takes its turn on the one connection anyway.
   */
  lock?: UnitLock;
}

/**
 * Runs `body` as one write transaction and resolves with what it returns; a throw (or a
 * rejection) rolls back everything it wrote. Called with the handle of an open unit, it runs
 * as a savepoint of that unit instead.
 */
export function writeUnit<S extends Store, T>(
  conn: S,
  body: (tx: UnitOf<S>) => T | Promise<T>,
  options: UnitOptions = {},
): Promise<T> {
  if (isUnit(conn)) return savepoint(conn, body);
  const turns = turnsOf(conn);
  if (insideOpenUnit(turns)) {
    return Promise.reject(new Error("a unit was opened with the connection instead of the enclosing unit's handle"));
  }
  if (!isSqlite(conn)) return pooledUnit(conn, conn.units!, turns, body, options.lock);
  try {
    return Promise.resolve(inTurn(conn, turns, unitSection(conn, turns, body, options)));
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Under the tests, on a pooled store: a statement run with the store itself while a unit of it
 * is open in the same flow of calls. It would run on another client, outside the unit's
 * transaction — a read that misses the unit's writes, a write that survives its rollback — where
 * on SQLite's one connection it would have landed inside; so it fails here, on either database's
 * run of the suite, rather than in production on PostgreSQL only.
 */
export function refuseInsideOpenUnit(store: Store): void {
  if (inside && insideOpenUnit(turnsOf(store))) {
    throw new Error("a statement ran on the store instead of the enclosing unit's handle");
  }
}

/**
 * For a synchronous writer that is not a unit (the ingest writer, whose statements run on the
 * ingest thread's own connection, or the in-memory database's): runs `section` under the write
 * gate once no unit is open on the connection — at once, synchronously, when none is — so that
 * its writes never land inside another request's open transaction.
 */
export function writeInTurn<T>(conn: Store, section: () => T): T | Promise<T> {
  // On a pooled database every unit has a client of its own: there are no turns to wait for.
  if (!isSqlite(conn)) return section();
  const turns = turnsOf(conn);
  if (isUnit(conn) || insideOpenUnit(turns)) return section();
  return inTurn(conn, turns, section);
}

/** The start, body and end of one unit: the section that runs in its turn. */
function unitSection<S extends Store, T>(
  conn: S & Connection,
  turns: Turns,
  body: (tx: UnitOf<S>) => T | Promise<T>,
  options: UnitOptions,
): () => T | Promise<T> {
  return () => {
    if (options.busyWait === false) withoutBusyWait(conn, () => conn.sqlite.exec('BEGIN IMMEDIATE'));
    else conn.sqlite.exec('BEGIN IMMEDIATE');
    const unit: UnitState = {
      savepoints: 0,
      turns,
      ended: false,
      exec: (sql) => {
        conn.sqlite.exec(sql);
      },
    };
    const tx = Object.assign(Object.create(conn) as S, { unit });
    let result: T | Promise<T>;
    try {
      result = inside ? inside.run(unit, body, tx) : body(tx);
    } catch (err) {
      unit.ended = true;
      rollback(conn);
      throw err;
    }
    if (!isPromise(result)) {
      unit.ended = true;
      commit(conn);
      return result;
    }
    turns.open = true;
    if (inside) {
      // Under the tests: on SQLite a unit's awaits must all be settled within the microtasks of
      // the turn that opened it. One left open past that turn (a timer, I/O, a worker's answer)
      // would let any other request's reads see its writes before they commit, and a plain
      // write land inside it.
      setImmediate(() => {
        if (!unit.ended) throw new Error('a unit of work stayed open past the turn of the event loop that opened it');
      });
    }
    return result
      .then(
        (value) => {
          commit(conn);
          return value;
        },
        (err: unknown) => {
          rollback(conn);
          throw err;
        },
      )
      .finally(() => {
        unit.ended = true;
        turns.open = false;
      });
  };
}

/** Runs `section` now when no unit is open or waiting, otherwise after the ones before it. */
function inTurn<T>(conn: Connection, turns: Turns, section: () => T | Promise<T>): T | Promise<T> {
  if (turns.open || turns.waiting.length > 0) return waitTurn(conn, turns, section, false);
  return runTurn(conn, turns, section);
}

function waitTurn<T>(conn: Connection, turns: Turns, section: () => T | Promise<T>, first: boolean): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const go = () => {
      try {
        resolve(runTurn(conn, turns, section));
      } catch (err) {
        reject(err);
      }
    };
    if (first) turns.waiting.unshift(go);
    else turns.waiting.push(go);
  });
}

/**
 * Runs `section` under the write gate, then lets the next waiting section go. Only a section
 * that runs with no unit open may start: the check is made inside the gate, since a unit can
 * open while a section waits for a worker to free it.
 */
function runTurn<T>(conn: Connection, turns: Turns, section: () => T | Promise<T>): T | Promise<T> {
  let outcome: T | Promise<T>;
  try {
    outcome = conn.writeGate.run(() => (turns.open ? waitTurn(conn, turns, section, true) : section())) as
      | T
      | Promise<T>;
  } catch (err) {
    next(turns);
    throw err;
  }
  if (!isPromise(outcome)) {
    next(turns);
    return outcome;
  }
  return outcome.finally(() => next(turns));
}

/**
 * Starts the next waiting section, unless a unit is open (its end calls this again). A section
 * started twice over is harmless: each checks for an open unit inside the gate.
 */
function next(turns: Turns): void {
  if (turns.open) return;
  turns.waiting.shift()?.();
}

function commit(conn: Connection): void {
  try {
    conn.sqlite.exec('COMMIT');
  } catch (err) {
    // A failed COMMIT (a deferred constraint, a full disk) leaves the transaction open.
    rollback(conn);
    throw err;
  }
}

function rollback(conn: Connection): void {
  if (conn.sqlite.inTransaction) conn.sqlite.exec('ROLLBACK');
}

async function savepoint<S extends Store, T>(tx: UnitOf<S>, body: (tx: UnitOf<S>) => T | Promise<T>): Promise<T> {
  const name = `unit_${++tx.unit.savepoints}`;
  const { exec } = tx.unit;
  await exec(`SAVEPOINT ${name}`);
  try {
    const value = await body(tx);
    await exec(`RELEASE ${name}`);
    return value;
  } catch (err) {
    if (!isSqlite(tx) || tx.sqlite.inTransaction) {
      await exec(`ROLLBACK TO ${name}`);
      await exec(`RELEASE ${name}`);
    }
    throw err;
  }
}

/**
 * A unit on a pooled database (PostgreSQL): its own client, so other units and plain reads run
 * beside it on other clients and never see its writes before COMMIT — what the turns and the
 * tests' one-turn check give on SQLite's one connection. The host begins each transaction with
 * a lock of the cluster (the units' one unless the unit names its own), so units that check and
 * then write (a free name, a folder's parent) are serialised across every node as on SQLite.
 */
async function pooledUnit<S extends Store, T>(
  store: S,
  host: UnitHost,
  turns: Turns,
  body: (tx: UnitOf<S>) => T | Promise<T>,
  lock: UnitLock | undefined,
): Promise<T> {
  const client = await host.begin(lock);
  const unit: UnitState = { savepoints: 0, turns, ended: false, exec: (sql) => client.exec(sql) };
  const tx = Object.assign(Object.create(store) as S, {
    unit,
    all: client.all,
    get: client.get,
    run: client.run,
  }) as UnitOf<S>;
  let value: T;
  try {
    value = await (inside ? inside.run(unit, body, tx) : body(tx));
  } catch (err) {
    unit.ended = true;
    try {
      await client.exec('ROLLBACK');
      client.release();
    } catch {
      client.release(true);
    }
    throw err;
  }
  unit.ended = true;
  try {
    await client.exec('COMMIT');
  } catch (err) {
    client.release(true);
    throw err;
  }
  client.release();
  return value;
}
