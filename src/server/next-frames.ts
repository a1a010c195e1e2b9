/**
 * graphql-ws `next` messages written for a subscription's results straight to its socket, each
 * result serialised once for all the subscribers it is shared with.
 *
 * graphql-ws builds every `next` message itself: an onNext hook call, two object copies of the
 * result and a JSON.stringify of the whole message, per subscriber per event. With a thousand
 * subscribers sharing one result (shared-subscription-results.ts) that serialisation was the
 * largest allocation left in the `subs` bench. Here a result without errors is serialised once
 * (kept beside the result object) and each subscriber's message is its own id prefix, that
 * string and a brace. A result with errors is handed back to graphql-ws, which maps the errors
 * for this subscriber (onNext) as before, so every message still leaves in the stream's order.
 */
import type { ExecutionResult } from 'graphql';
import type { WebSocket } from 'ws';

/** Each result's payload as JSON, made by the first subscriber that sends it. */
const serialised = new WeakMap<ExecutionResult, string>();

function payloadJson(result: ExecutionResult): string {
  let json = serialised.get(result);
  if (json === undefined) {
    json = JSON.stringify(result);
    serialised.set(result, json);
  }
  return json;
}

/**
 * `results` as graphql-ws iterates them, except that a result without errors is sent here as
 * the `next` message of subscription `id` and not yielded; the stream yields only results with
 * errors, and ends when `results` ends. `waitForWrite` is false while a send may be left to the
 * socket (coalesceSends: little is buffered), true when it must be waited for (back-pressure).
 */
export function sendNextFrames(
  results: AsyncIterable<ExecutionResult>,
  socket: WebSocket,
  id: string,
  waitForWrite: () => boolean,
): AsyncIterableIterator<ExecutionResult> {
  const inner = results[Symbol.asyncIterator]();
  const prefix = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
  const iterator: AsyncIterableIterator<ExecutionResult> = {
    async next() {
      for (;;) {
        const step = await inner.next();
        if (step.done || step.value.errors?.length) return step;
        // A closed socket ends the subscription; until then nothing is sent on it.
        if (socket.readyState !== socket.OPEN) continue;
        const frame = `${prefix}${payloadJson(step.value)}}`;
        if (!waitForWrite()) socket.send(frame);
        else await new Promise<void>((resolve, reject) => socket.send(frame, (err) => (err ? reject(err) : resolve())));
      }
    },
    return(value?: unknown) {
      return inner.return ? inner.return(value) : Promise.resolve({ value: undefined, done: true });
    },
    throw(err?: unknown) {
      return inner.throw ? inner.throw(err) : Promise.reject(err);
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
