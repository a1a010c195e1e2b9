/**
 * Pothos scope-auth keeps each operation's scope checks in a WeakMap keyed by the context, and
 * the value it keeps there points back at that context. A WeakMap that has lived a while is in
 * V8's old space, and a minor GC (scavenge) treats what an old object points to as alive: it does
 * not trace ephemerons, so the value keeps the context, the context keeps the entry's key, and
 * the whole request (context, loaders, yoga's request and response, the answer) survives every
 * scavenge until the next full collection. In the `edge` bench each main-thread scavenge copied
 * and promoted ~1 MB that way (3.5–6 ms pauses, against ~1 ms with the entry gone): the
 * server's share of that bench's latency tail.
 *
 * So the entry is deleted once the operation's execution is over: at once for a single result,
 * at the end of the stream for incremental delivery, whose fields are still resolving until then.
 * Each operation gets its own context (yoga makes one per operation of a batch), so no other
 * execution is still reading the entry.
 */
import { RequestCache } from '@pothos/plugin-scope-auth';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';

export function releaseScopeCache(): Plugin {
  return {
    onExecute() {
      return {
        onExecuteDone({ args, result }) {
          const context = args.contextValue as object;
          if (!isAsyncIterable(result)) {
            RequestCache.clearForContext(context);
            return undefined;
          }
          return { onEnd: () => RequestCache.clearForContext(context) };
        },
      };
    },
  };
}
