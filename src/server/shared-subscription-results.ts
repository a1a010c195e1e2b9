/**
 * Subscribers asking the same thing about the same event share one execution of it.
 *
 * A subscription's document is executed once per event per subscriber (graphql-js's
 * `subscribe`): a thousand subscribers of one topic made a thousand identical result trees,
 * loader promises and field resolutions per published event, most of the CPU and nearly all
 * the garbage of the `subs` bench (and its major collections, the event-loop stalls). Here the
 * result of an event is kept beside the event, per operation: the same document, operation
 * name and variables, in the same sandbox, for the same key and scopes. The next subscriber
 * with that operation gets the same result object; graphql-ws still frames it with its own id.
 *
 * What a result may contain is decided per field by the principal's scopes and sandbox, which
 * are part of the key, so a subscriber never sees what its own execution would not have shown
 * it; and only events resolved through their own loaders (renewLoaders) are shared, so every
 * subscriber would have read the same rows. A result with errors is not shared: each subscriber executes on its own, so errors carry
 * that subscriber's request id and are logged as its own.
 */
import {
  createSourceEventStream,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  execute,
  visit,
} from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { type Context, resolvesThroughEventLoaders } from '../graphql/context.js';

/**
 * Results of one event, by operation key: the promise while it executes, then the result
 * itself (NOT_SHARED if it had errors); gone with the event once no queue holds it.
 */
const resultsByEvent = new WeakMap<object, Map<string, ExecutionResult | Promise<ExecutionResult>>>();
const NOT_SHARED: ExecutionResult = {};
/** A small number per distinct parsed document (yoga's parser cache hands out one per text). */
const documentIds = new WeakMap<DocumentNode, number>();
let nextDocumentId = 0;

/** Executions done and results handed out shared, for tests and the bench. */
export const sharedResultStats = { executed: 0, shared: 0 };

/** @defer/@stream deliver incrementally; only yoga's own executor does that. */
function incremental(document: DocumentNode): boolean {
  let found = false;
  visit(document, {
    Directive(node) {
      if (node.name.value === 'defer' || node.name.value === 'stream') found = true;
    },
  });
  return found;
}

/** What makes two subscribers' results of one event equal; undefined when they must not share. */
export function operationKey(args: ExecutionArgs): string | undefined {
  const ctx = args.contextValue as Partial<Context> | undefined;
  const principal = ctx?.principal;
  const sandbox = ctx?.sandbox;
  if (!principal || !sandbox) return undefined;
  let documentId = documentIds.get(args.document);
  if (documentId === undefined) {
    if (incremental(args.document)) return undefined;
    documentId = nextDocumentId++;
    documentIds.set(args.document, documentId);
  }
  const sandboxIds = principal.sandboxIds === null ? '*' : [...principal.sandboxIds].sort().join(',');
  return JSON.stringify([
    documentId,
    args.operationName ?? null,
    args.variableValues ?? null,
    sandbox.id,
    principal.keyId,
    [...principal.scopes].sort(),
    sandboxIds,
  ]);
}

/** The event's result for `key`, executed by the first subscriber that asks. */
function sharedResult(
  event: unknown,
  key: string,
  args: ExecutionArgs,
  executeEvent: EventExecutor,
): ExecutionResult | Promise<ExecutionResult> {
  const run = () => executeEvent(args, event);
  // Only an event resolved through its own loaders reads the same rows for every subscriber.
  if (typeof event !== 'object' || event === null || !resolvesThroughEventLoaders(args.contextValue as Context, event))
    return run();
  let results = resultsByEvent.get(event);
  if (!results) {
    results = new Map();
    resultsByEvent.set(event, results);
  }
  const cached = results.get(key);
  if (cached === NOT_SHARED) return run();
  if (cached !== undefined) {
    sharedResultStats.shared++;
    if (!(cached instanceof Promise)) return cached;
    return cached.then((result) => (result.errors?.length ? run() : result));
  }
  sharedResultStats.executed++;
  const result = run();
  const settle = (r: ExecutionResult) => {
    results.set(key, r.errors?.length ? NOT_SHARED : r);
    return r;
  };
  if (result instanceof Promise) {
    results.set(key, result);
    return result.then(settle);
  }
  return settle(result);
}

/**
 * The source stream's events mapped to results, as graphql-js's `subscribe` does, with the
 * execution shared; `return()` reaches the source so its subscription ends at once. No async
 * function per event: one `then` per event is all a subscriber allocates here.
 */
function mapToSharedResults(
  source: AsyncIterator<unknown> & AsyncIterable<unknown>,
  key: string,
  args: ExecutionArgs,
  executeEvent: EventExecutor,
): AsyncIterableIterator<ExecutionResult> {
  const toResult = (
    step: IteratorResult<unknown>,
  ): IteratorResult<ExecutionResult> | Promise<IteratorResult<ExecutionResult>> => {
    if (step.done) return { value: undefined, done: true };
    const result = sharedResult(step.value, key, args, executeEvent);
    if (result instanceof Promise) return result.then((value) => ({ value, done: false }));
    return { value: result, done: false };
  };
  const iterator: AsyncIterableIterator<ExecutionResult> = {
    next: () => source.next().then(toResult),
    async return() {
      await source.return?.();
      return { value: undefined, done: true };
    },
    async throw(err: unknown) {
      if (source.throw) await source.throw(err);
      else await source.return?.();
      throw err;
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}

/** Runs a subscription's document for one event (its root value). */
export type EventExecutor = (args: ExecutionArgs, event: unknown) => ExecutionResult | Promise<ExecutionResult>;

/** graphql-js's execution of one event, as its `subscribe` runs it. */
export const referenceEventExecutor: EventExecutor = (args, event) => execute({ ...args, rootValue: event });

/**
 * The yoga plugin: subscriptions run through the shared execution, others are untouched.
 * `executeEvent` runs an event's execution (the server's: compiled, jit.ts); graphql-js's by default.
 */
export function sharedSubscriptionResults(executeEvent: EventExecutor = referenceEventExecutor): Plugin {
  return {
    onSubscribe({ setSubscribeFn, subscribeFn }) {
      setSubscribeFn(async (subscribeArgs) => {
        const args = subscribeArgs as ExecutionArgs;
        const key = operationKey(args);
        if (key === undefined) return subscribeFn(subscribeArgs);
        const source = await createSourceEventStream(args);
        if (!isAsyncIterable(source)) return source as ExecutionResult;
        return mapToSharedResults(source as AsyncIterableIterator<unknown>, key, args, executeEvent);
      });
    },
  };
}
