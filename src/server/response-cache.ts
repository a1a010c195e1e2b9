/**
 * Answers of read-only queries kept until the database changes (docs/performance.md, `api`).
 *
 * A page of audiences costs about twice what yoga and graphql alone take to serve the same
 * response, and most of the difference is reading and shaping rows that have not changed since
 * the last request. So the answer of a query that selects only cacheable fields
 * (src/graphql/cacheable-fields.ts) is kept, and handed out again for as long as the database's
 * write stamp (src/db/write-stamp.ts) stays where it was when the answer was computed:
 *
 * - invalidation needs no writer's help: any committed change — a mutation, a job finishing on
 *   its worker thread, streaming ingest, another process on the same file — moves the stamp,
 *   and a moved stamp empties the cache before the next lookup;
 * - an answer is computed after the stamp was read, so it is never older than that stamp, and
 *   it is served only while the stamp has not moved: never stale after a write has committed;
 * - the key is the parsed document, the operation name, the variables, the sandbox and the
 *   caller's scopes: an answer never crosses sandboxes, and keys with other scopes (which
 *   scope-auth may answer differently, field by field) never share one;
 * - only answers without errors are kept; concurrent requests for the same missing answer wait
 *   for the one being computed instead of computing it fifty times after each write.
 *
 * The stamp is read once per cacheable request (one tiny statement); a hit runs no other.
 * On PostgreSQL no such stamp sees every node's commits, so the app gives none and the cache is
 * off (domain/pg-app.ts).
 */
import type { DocumentNode, ExecutionArgs, ExecutionResult, GraphQLSchema } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { isCacheableDocument } from '../graphql/cacheable-fields.js';
import type { Context } from '../graphql/context.js';

/** What a request got from the cache: `shared` waited for a concurrent request's answer. */
export type ResponseCacheOutcome = 'hit' | 'shared' | 'miss' | 'uncacheable';

/** Answers larger than this in all are evicted, oldest use first, whatever `maxEntries` allows. */
const MAX_BYTES = 64 * 1024 * 1024;

interface Entry {
  /** Set once the answer is known; `pending` until then. */
  result?: ExecutionResult;
  pending?: Promise<ExecutionResult | undefined>;
  bytes: number;
}

export interface ResponseCacheOptions {
  /**
   * The write stamp of the database every request of this server reads through (db/write-stamp.ts);
   * equal stamps mean nothing committed in between.
   */
  stamp: () => string;
  /** Answers kept at most; 0 turns the cache off. */
  maxEntries: number;
  onOutcome?: (outcome: ResponseCacheOutcome) => void;
}

function scopesKey(scopes: ReadonlySet<string>): string {
  return [...scopes].sort().join(',');
}

/** An answer that may be handed to another request: complete and without errors. */
function keepable(result: unknown): result is ExecutionResult {
  if (!result || typeof result !== 'object' || Symbol.asyncIterator in result) return false;
  const r = result as ExecutionResult;
  return r.data != null && !r.errors?.length;
}

/** The cache as a yoga plugin; put it last, so every other plugin's checks run before a hit. */
export function responseCache(options: ResponseCacheOptions): Plugin<Context> {
  const { maxEntries } = options;
  const outcome = options.onOutcome ?? (() => {});
  // Per parsed document (yoga's parser cache hands out one per query text): 0 when it is not
  // cacheable, else a number standing for the document in keys.
  const documents = new WeakMap<DocumentNode, number>();
  let documentCount = 0;
  const entries = new Map<string, Entry>();
  let stamp: string | undefined;
  let bytes = 0;

  const documentId = (schema: GraphQLSchema, document: DocumentNode): number => {
    let id = documents.get(document);
    if (id === undefined) {
      id = isCacheableDocument(schema, document) ? ++documentCount : 0;
      documents.set(document, id);
    }
    return id;
  };

  const forget = (key: string) => {
    const entry = entries.get(key);
    if (!entry) return;
    bytes -= entry.bytes;
    entries.delete(key);
  };

  const keep = (entry: Entry, result: ExecutionResult) => {
    entry.result = result;
    entry.pending = undefined;
    entry.bytes = JSON.stringify(result).length;
    bytes += entry.bytes;
    // Map order is insertion order, and a hit re-inserts its entry: the first is the least recently used.
    for (const oldest of entries.keys()) {
      if (entries.size <= maxEntries && bytes <= MAX_BYTES) break;
      forget(oldest);
    }
  };

  return {
    onExecute({ args, executeFn, setExecuteFn, setResultAndStopExecution }) {
      if (maxEntries === 0) return;
      const id = documentId(args.schema, args.document);
      if (id === 0) {
        outcome('uncacheable');
        return;
      }
      const now = options.stamp();
      if (now !== stamp) {
        entries.clear();
        bytes = 0;
        stamp = now;
      }
      const ctx = args.contextValue;
      const key = `${id}\n${args.operationName ?? ''}\n${ctx.sandbox.id}\n${scopesKey(ctx.principal.scopes)}\n${JSON.stringify(args.variableValues ?? null)}`;
      const found = entries.get(key);
      if (found?.result) {
        entries.delete(key);
        entries.set(key, found);
        outcome('hit');
        setResultAndStopExecution(found.result);
        return;
      }
      if (found?.pending !== undefined) {
        const pending = found.pending;
        outcome('shared');
        // The answer being computed was started at this same stamp; if it cannot be shared
        // (it had errors), this request runs on its own.
        setExecuteFn(async (a: ExecutionArgs) => (await pending) ?? executeFn(a));
        return;
      }
      outcome('miss');
      const entry: Entry = { bytes: 0 };
      let settle: (result: ExecutionResult | undefined) => void = () => {};
      entry.pending = new Promise((resolve) => {
        settle = resolve;
      });
      entries.set(key, entry);
      setExecuteFn(async (a: ExecutionArgs) => {
        let kept: ExecutionResult | undefined;
        try {
          const result = await executeFn(a);
          if (keepable(result)) kept = result;
          return result;
        } finally {
          // Kept only while no request has seen the stamp move since the answer started (one
          // that did has emptied the cache, this entry with it); a move nobody has seen yet
          // empties the cache at the next lookup, before this answer could be served.
          if (kept && stamp === now && entries.get(key) === entry) keep(entry, kept);
          else if (entries.get(key) === entry) forget(key);
          settle(kept);
        }
      });
    },
  };
}
