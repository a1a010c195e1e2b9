/**
 * The worker-thread side of ad-hoc evaluation (profilesMatching, evaluateProfile): a
 * long-lived thread that runs one query at a time, so a heavy expression never holds the main
 * thread. On SQLite it has its own read-only connection; on PostgreSQL (a postgres:// URL) a pool
 * of one client of its own, each query one read-only transaction (pg-evaluation.ts). Each query
 * carries a deadline: on SQLite the profile scan and the JS evaluation check it; on PostgreSQL
 * `statement_timeout` bounds the statements by what is left of it and the JS evaluation checks
 * it; past it the query stops with `QueryTimedOut`.
 */

import { parentPort, workerData } from 'node:worker_threads';
import pg from 'pg';
import { ConnectionCache } from '../../db/connection-cache.js';
import { openDatabase } from '../../db/index.js';
import { isPostgresUrl, pgPoolConfig } from '../../db/pg/index.js';
import { preparedOn } from '../../db/statement.js';
import { type IdCondition, type Location, PqlError, type PqlErrorCode } from '../../pql/index.js';
import { DomainError, type ErrorCode } from '../errors.js';
import { countMatching, evaluateProfile, matchingProfileIds } from '../evaluation.js';
import type { ExpressionInput } from '../expressions.js';
import type { PageArgs } from '../paging.js';
import type { IdentityInput } from '../profile-ingest.js';
import { forgetCatalogs } from '../profile-schema.js';
import {
  countMatchingPg,
  evaluateProfilePg,
  matchingProfileIdsPg,
  WARM_UP,
  withPgReadSession,
} from './pg-evaluation.js';
import { QueryTimedOut } from './query-deadline.js';

export interface QueryArgs {
  matchingProfileIds: { sandboxId: number; input: ExpressionInput; at: number; page: PageArgs };
  countMatching: { sandboxId: number; input: ExpressionInput; at: number };
  evaluateProfile: {
    sandboxId: number;
    identity: IdentityInput;
    expression: ExpressionInput | null;
    audienceIds: number[] | null;
    at: number;
  };
}

export type QueryName = keyof QueryArgs;

export interface QueryMessage<Q extends QueryName = QueryName> {
  id: number;
  query: Q;
  args: QueryArgs[Q];
  /** Epoch ms after which the query stops itself. */
  deadline: number;
}

/** A failure as it crosses the thread boundary: the class and its fields, rebuilt on the other side. */
export type WireError =
  | { kind: 'domain'; code: ErrorCode; message: string; extensions: Record<string, unknown> }
  | { kind: 'pql'; code: PqlErrorCode; message: string; source: string; loc: Location; expected: string[] }
  | { kind: 'timeout' }
  | { kind: 'internal'; message: string; stack?: string; code?: string };

export type QueryReply =
  | { type: 'ready' }
  | { id: number; type: 'done'; result: unknown }
  | { id: number; type: 'error'; error: WireError };

function toWire(err: unknown): WireError {
  if (err instanceof QueryTimedOut) return { kind: 'timeout' };
  if (err instanceof DomainError) {
    return { kind: 'domain', code: err.code, message: err.message, extensions: err.extensions };
  }
  if (err instanceof PqlError) {
    const { code, message, source, loc, expected } = err;
    return { kind: 'pql', code, message, source, loc, expected };
  }
  // SQLite's code (SQLITE_CORRUPT…) crosses too: the server tells a damaged file by it.
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return {
      kind: 'internal',
      message: err.message,
      stack: err.stack,
      code: typeof code === 'string' ? code : undefined,
    };
  }
  return { kind: 'internal', message: String(err) };
}

/** A warm-up query: what a first run costs (the catalogue read, statements prepared, the engine's code still cold). */
const WARM_UP_EXPRESSION: ExpressionInput = {
  format: 'PQL_TEXT',
  value: 'xEvent.count() >= 0 and loyalty.tier = "gold"',
};

if (parentPort) {
  const port = parentPort;
  const { database } = workerData as { database: string };
  if (isPostgresUrl(database)) void servePostgres(port, database);
  else serveSqlite(port, database);
}

function serveSqlite(port: NonNullable<typeof parentPort>, dbFile: string): void {
  const conn = openDatabase(dbFile, { readonly: true });
  let deadline = Number.POSITIVE_INFINITY;
  const checkpoint = () => {
    if (Date.now() > deadline) throw new QueryTimedOut();
  };
  conn.sqlite.function('segql_query_tick', { deterministic: false }, (_id: unknown) => {
    checkpoint();
    return 1;
  });
  // Every 64th profile of a scan calls back into JS, where the deadline is checked (a thrown error
  // aborts the statement); between two checks lie at most 63 profiles' worth of work.
  const guard: IdCondition[] = [{ sql: '(p.id & 63) != 0 OR segql_query_tick(p.id)', params: [] }];
  let dataVersion = -1;

  const run = (message: QueryMessage): unknown => {
    // Another connection's commit (a schema change among them) shows as a new data_version.
    const version = conn.sqlite.pragma('data_version', { simple: true }) as number;
    if (version !== dataVersion) forgetCatalogs(conn);
    dataVersion = version;
    switch (message.query) {
      case 'matchingProfileIds': {
        const a = message.args as QueryArgs['matchingProfileIds'];
        return matchingProfileIds(conn, a.sandboxId, a.input, a.at, a.page, guard);
      }
      case 'countMatching': {
        const a = message.args as QueryArgs['countMatching'];
        return countMatching(conn, a.sandboxId, a.input, a.at, guard);
      }
      case 'evaluateProfile': {
        const a = message.args as QueryArgs['evaluateProfile'];
        return evaluateProfile(conn, a.sandboxId, a.identity, {
          expression: a.expression,
          audienceIds: a.audienceIds,
          at: a.at,
          checkpoint,
        });
      }
    }
  };

  port.on('message', (message: QueryMessage) => {
    deadline = message.deadline;
    try {
      const result = run(message);
      port.postMessage({ id: message.id, type: 'done', result } satisfies QueryReply);
    } catch (err) {
      port.postMessage({ id: message.id, type: 'error', error: toWire(err) } satisfies QueryReply);
    } finally {
      deadline = Number.POSITIVE_INFINITY;
    }
  });
  warmUp();
  port.postMessage({ type: 'ready' } satisfies QueryReply);

  /**
   * One evaluation before the thread says it is ready: a new thread's first query would
   * otherwise pay, inside its budget, for what only a first run costs — the catalog read,
   * statements prepared, the engine's code still cold (a replacement thread's first light query
   * took over 50 ms on a loaded machine). Any stored profile serves; an empty store warms nothing.
   */
  function warmUp(): void {
    const any = preparedOn(conn.sqlite, WARM_UP.anyIdentity).get() as
      | { sandboxId: number; namespace: string; id: string }
      | undefined;
    if (!any) return;
    try {
      evaluateProfile(
        conn,
        any.sandboxId,
        { namespace: any.namespace, id: any.id },
        { expression: WARM_UP_EXPRESSION, at: Date.now() },
      );
    } catch {
      // A store whose schema lacks the fields still warmed what it reached.
    }
    // What it read stays valid until another connection commits.
    dataVersion = conn.sqlite.pragma('data_version', { simple: true }) as number;
  }
}

/**
 * The PostgreSQL side: one client of its own (one query at a time), each query one read-only
 * transaction bounded by the deadline. The JS evaluation of a profile runs here, off the main
 * thread, as on SQLite (100 definitions over a profile of 1,000 events take several ms of CPU).
 */
async function servePostgres(port: NonNullable<typeof parentPort>, url: string): Promise<void> {
  // db/pg/index.ts, imported above, has this thread's `pg` read int8 (ids, counts) as numbers.
  const pool = new pg.Pool(pgPoolConfig(url, 1));
  // An idle client losing its server (a restart) must not end the thread; the next query reconnects.
  pool.on('error', () => {});
  const cache = new ConnectionCache();

  const run = (message: QueryMessage): Promise<unknown> =>
    withPgReadSession<unknown>(pool, cache, message.deadline, (session) => {
      switch (message.query) {
        case 'matchingProfileIds': {
          const a = message.args as QueryArgs['matchingProfileIds'];
          return matchingProfileIdsPg(session, a.sandboxId, a.input, a.at, a.page);
        }
        case 'countMatching': {
          const a = message.args as QueryArgs['countMatching'];
          return countMatchingPg(session, a.sandboxId, a.input, a.at);
        }
        case 'evaluateProfile': {
          const a = message.args as QueryArgs['evaluateProfile'];
          return evaluateProfilePg(session, a.sandboxId, a.identity, {
            expression: a.expression,
            audienceIds: a.audienceIds,
            at: a.at,
          });
        }
      }
    });

  port.on('message', (message: QueryMessage) => {
    run(message).then(
      (result) => port.postMessage({ id: message.id, type: 'done', result } satisfies QueryReply),
      (err: unknown) => port.postMessage({ id: message.id, type: 'error', error: toWire(err) } satisfies QueryReply),
    );
  });
  // As on SQLite: one evaluation before the thread says it is ready (here also the connection made).
  try {
    await withPgReadSession(pool, cache, Date.now() + 30_000, async (session) => {
      const any = await session.runner.get<{ sandboxId: number; namespace: string; id: string }>(WARM_UP.anyIdentity);
      if (!any) return;
      await evaluateProfilePg(
        session,
        any.sandboxId,
        { namespace: any.namespace, id: any.id },
        { expression: WARM_UP_EXPRESSION, at: Date.now() },
      );
    });
  } catch {
    // A store whose schema lacks the fields, or a server not there yet: the queries will say.
  }
  port.postMessage({ type: 'ready' } satisfies QueryReply);
}
