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

/** The handle a unit's body works through: the connection, marked with the unit it is inside. */
export interface UnitConnection extends Connection {
  readonly unit: UnitState;
}

interface UnitState {
  /** Savepoints opened so far inside this unit (for their names). */
  savepoints: number;
  /** The connection's turns, and whether the unit has committed or rolled back (for the tests' check). */
  turns: Turns;
  ended: boolean;
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

const turnsBySqlite = new WeakMap<Connection['sqlite'], Turns>();

function turnsOf(conn: Connection): Turns {
  let turns = turnsBySqlite.get(conn.sqlite);
  if (!turns) {
    turns = { open: false, waiting: [] };
    turnsBySqlite.set(conn.sqlite, turns);
  }
  return turns;
}

function isUnit(conn: Connection): conn is UnitConnection {
  return (conn as Partial<UnitConnection>).unit !== undefined;
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
}

/**
 * Runs `body` as one write transaction and resolves with what it returns; a throw (or a
 * rejection) rolls back everything it wrote. Called with the handle of an open unit, it runs
 * as a savepoint of that unit instead.
 */
export function writeUnit<T>(
  conn: Connection,
  body: (tx: UnitConnection) => T | Promise<T>,
  options: UnitOptions = {},
): Promise<T> {
  if (isUnit(conn)) return savepoint(conn, body);
  const turns = turnsOf(conn);
  if (insideOpenUnit(turns)) {
    return Promise.reject(new Error("a unit was opened with the connection instead of the enclosing unit's handle"));
  }
  try {
    return Promise.resolve(inTurn(conn, turns, unitSection(conn, turns, body, options)));
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * For a synchronous writer that is not a unit (the ingest writer, whose statements run on the
 * ingest thread's own connection, or the in-memory database's): runs `section` under the write
 * gate once no unit is open on the connection — at once, synchronously, when none is — so that
 * its writes never land inside another request's open transaction.
 */
export function writeInTurn<T>(conn: Connection, section: () => T): T | Promise<T> {
  const turns = turnsOf(conn);
  if (isUnit(conn) || insideOpenUnit(turns)) return section();
  return inTurn(conn, turns, section);
}

/** The start, body and end of one unit: the section that runs in its turn. */
function unitSection<T>(
  conn: Connection,
  turns: Turns,
  body: (tx: UnitConnection) => T | Promise<T>,
  options: UnitOptions,
): () => T | Promise<T> {
  return () => {
    if (options.busyWait === false) withoutBusyWait(conn, () => conn.sqlite.exec('BEGIN IMMEDIATE'));
    else conn.sqlite.exec('BEGIN IMMEDIATE');
    const unit: UnitState = { savepoints: 0, turns, ended: false };
    const tx: UnitConnection = Object.assign(Object.create(conn) as Connection, { unit });
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

async function savepoint<T>(tx: UnitConnection, body: (tx: UnitConnection) => T | Promise<T>): Promise<T> {
  const name = `unit_${++tx.unit.savepoints}`;
  tx.sqlite.exec(`SAVEPOINT ${name}`);
  try {
    const value = await body(tx);
    tx.sqlite.exec(`RELEASE ${name}`);
    return value;
  } catch (err) {
    if (tx.sqlite.inTransaction) {
      tx.sqlite.exec(`ROLLBACK TO ${name}`);
      tx.sqlite.exec(`RELEASE ${name}`);
    }
    throw err;
  }
}
