/**
 * Revoking an API key ends the subscriptions it opened, on every transport, within the key
 * ring's polling interval: a graphql-ws socket is closed with 4403 (as a socket refused at
 * connection), an SSE stream gets one UNAUTHENTICATED error and ends.
 */
import { type ExecutionResult, GraphQLError } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { KeyRing } from '../domain/api-keys.js';
import type { Context } from './context.js';

const REVOKED_MESSAGE = 'The API key of this subscription was revoked';

interface Open {
  end(): void;
}

/** An iterator that passes `source` through until `ended` settles, then yields its result once and stops. */
function untilEnded(
  source: AsyncIterable<ExecutionResult>,
  ended: Promise<ExecutionResult>,
  cleanup: () => void,
): AsyncIterableIterator<ExecutionResult> {
  const it = source[Symbol.asyncIterator]();
  let done = false;
  const finish = async (): Promise<IteratorResult<ExecutionResult>> => {
    done = true;
    cleanup();
    await it.return?.();
    return { done: true, value: undefined };
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (done) return { done: true, value: undefined };
      const winner = await Promise.race([
        it.next().then((r) => ({ kind: 'source' as const, r })),
        ended.then((value) => ({ kind: 'ended' as const, value })),
      ]);
      if (winner.kind === 'source') {
        if (winner.r.done) {
          done = true;
          cleanup();
        }
        return winner.r;
      }
      done = true;
      cleanup();
      void it.return?.();
      return { done: false, value: winner.value };
    },
    return: finish,
    async throw(err) {
      await finish();
      throw err;
    },
  };
}

export function endRevokedSubscriptions(keys: KeyRing): Plugin & { stop(): void } {
  const open = new Map<number, Set<Open>>();
  const stop = keys.onRevoked((keyIds) => {
    for (const keyId of keyIds) {
      for (const o of open.get(keyId) ?? []) o.end();
      open.delete(keyId);
    }
  });
  return {
    stop,
    onSubscribe({ args }) {
      const ctx = args.contextValue as unknown as Context & { socket?: { close(code: number, reason: string): void } };
      const keyId = ctx.principal?.keyId;
      if (keyId === null || keyId === undefined) return undefined;
      return {
        onSubscribeResult({ result, setResult }) {
          if (!isAsyncIterable(result)) return;
          let resolveEnded!: (r: ExecutionResult) => void;
          const ended = new Promise<ExecutionResult>((r) => {
            resolveEnded = r;
          });
          const entry: Open = {
            end() {
              if (ctx.socket) ctx.socket.close(4403, REVOKED_MESSAGE);
              resolveEnded({
                errors: [new GraphQLError(REVOKED_MESSAGE, { extensions: { code: 'UNAUTHENTICATED' } })],
              });
            },
          };
          const set = open.get(keyId) ?? new Set<Open>();
          open.set(keyId, set);
          set.add(entry);
          setResult(
            untilEnded(result as AsyncIterable<ExecutionResult>, ended, () => {
              open.get(keyId)?.delete(entry);
            }),
          );
        },
      };
    },
  };
}
