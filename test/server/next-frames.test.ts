/**
 * sendNextFrames (src/server/next-frames.ts): results without errors leave as graphql-ws `next`
 * messages written here, one serialisation per result object; results with errors go back to
 * graphql-ws in order; a send waits for its write when the socket says so.
 */
import { type ExecutionResult, GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { sendNextFrames } from '../../src/server/next-frames.js';

function fakeSocket() {
  const sent: string[] = [];
  const pending: (() => void)[] = [];
  const socket = {
    OPEN: 1,
    readyState: 1,
    send(data: string, cb?: (err?: Error) => void) {
      sent.push(data);
      if (cb) pending.push(() => cb());
    },
  };
  return { socket, sent, pending };
}

async function* stream<T>(...items: T[]) {
  yield* items;
}

describe('sendNextFrames', () => {
  it('writes each result as a next message with its id, and yields only results with errors', async () => {
    const { socket, sent } = fakeSocket();
    const shared = { data: { n: 1 } };
    const failed: ExecutionResult = { data: null, errors: [new GraphQLError('no')] };
    const frames = sendNextFrames(
      stream<ExecutionResult>(shared, { data: { n: 2 } }, failed, shared),
      socket as unknown as WebSocket,
      'sub"1',
      () => false,
    );
    expect(await frames.next()).toEqual({ value: failed, done: false });
    // The two results before the failed one left before it was yielded, in order.
    expect(sent.map((f) => JSON.parse(f))).toEqual([
      { id: 'sub"1', type: 'next', payload: { data: { n: 1 } } },
      { id: 'sub"1', type: 'next', payload: { data: { n: 2 } } },
    ]);
    expect((await frames.next()).done).toBe(true);
    expect(JSON.parse(sent[2]!)).toEqual({ id: 'sub"1', type: 'next', payload: { data: { n: 1 } } });
  });

  it('serialises a result shared by many subscribers once', async () => {
    const shared = { data: { n: 1 } };
    let reads = 0;
    Object.defineProperty(shared, 'data', {
      enumerable: true,
      get: () => {
        reads++;
        return { n: 1 };
      },
    });
    for (const id of ['a', 'b', 'c']) {
      const { socket, sent } = fakeSocket();
      const frames = sendNextFrames(stream(shared), socket as unknown as WebSocket, id, () => false);
      expect((await frames.next()).done).toBe(true);
      expect(JSON.parse(sent[0]!).id).toBe(id);
    }
    expect(reads).toBe(1);
  });

  it('waits for the write when the socket holds too much, and sends nothing on a closed socket', async () => {
    const { socket, sent, pending } = fakeSocket();
    const frames = sendNextFrames(
      stream({ data: { n: 1 } }, { data: { n: 2 } }),
      socket as unknown as WebSocket,
      'x',
      () => true,
    );
    let finished = false;
    const done = frames.next().then((r) => {
      finished = r.done === true;
    });
    await new Promise((r) => setImmediate(r));
    expect(sent).toHaveLength(1);
    expect(finished).toBe(false);
    socket.readyState = 3;
    pending.shift()!();
    await done;
    expect(finished).toBe(true);
    expect(sent).toHaveLength(1);
  });
});
