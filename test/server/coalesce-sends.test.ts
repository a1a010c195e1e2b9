/**
 * graphql-ws sends through coalesceSends (src/server/graphql-ws.ts): the messages of one turn
 * leave in one corked write, each send reported done at once while little is buffered, and a
 * send waits for its write again once the socket holds too much (back-pressure kept).
 */
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { coalesceSends, createFlusher } from '../../src/server/graphql-ws.js';

function fakeSocket(flusher = createFlusher()) {
  const log: string[] = [];
  const pending: (() => void)[] = [];
  const socket = {
    bufferedAmount: 0,
    _socket: { cork: () => log.push('cork'), uncork: () => log.push('uncork') },
    ping() {
      log.push('ping');
    },
    send(data: string, cb?: (err?: Error) => void) {
      log.push(`send ${data}`);
      // The write completes only when the test says so (a slow network).
      if (cb) pending.push(() => cb());
    },
  };
  coalesceSends(socket as unknown as WebSocket, flusher);
  return {
    socket: socket as unknown as { send(d: string, cb: () => void): void; ping(): void; bufferedAmount: number },
    log,
    pending,
  };
}

const turn = () => new Promise((r) => setImmediate(r));
const sendAndWait = (s: { send(d: string, cb: () => void): void }, data: string) =>
  new Promise<void>((resolve) => s.send(data, resolve));

describe('coalesceSends', () => {
  it('corks once per turn and reports sends done before their writes while little is buffered', async () => {
    const { socket, log, pending } = fakeSocket();
    // As graphql-ws does: each send awaited before the next.
    await sendAndWait(socket, 'a');
    await sendAndWait(socket, 'b');
    await sendAndWait(socket, 'c');
    expect(log).toEqual(['cork', 'send a', 'send b', 'send c']);
    await turn();
    expect(log.at(-1)).toBe('uncork');
    // All three were reported sent while none of their writes had completed.
    expect(pending).toHaveLength(3);
  });

  it('waits for the write once the socket holds too much', async () => {
    const { socket, pending } = fakeSocket();
    socket.bufferedAmount = 1024 * 1024;
    let done = false;
    void sendAndWait(socket, 'big').then(() => {
      done = true;
    });
    await turn();
    expect(done).toBe(false);
    pending.shift()!();
    await turn();
    expect(done).toBe(true);
  });

  it('writes at most a slice of sockets per turn, the rest in the next turns, in the order they were corked', async () => {
    const flusher = createFlusher(-1);
    const sockets = [fakeSocket(flusher), fakeSocket(flusher), fakeSocket(flusher)];
    for (const [i, s] of sockets.entries()) await sendAndWait(s.socket, `m${i}`);
    const uncorked = () => sockets.map((s) => s.log.includes('uncork'));
    expect(uncorked()).toEqual([false, false, false]);
    // A slice below zero lets one socket be written per turn.
    await turn();
    expect(uncorked()).toEqual([true, false, false]);
    // A socket still corked gathers this turn's messages too, and is corked only once.
    await sendAndWait(sockets[2]!.socket, 'late');
    await turn();
    expect(uncorked()).toEqual([true, true, false]);
    await turn();
    expect(uncorked()).toEqual([true, true, true]);
    expect(sockets[2]!.log).toEqual(['cork', 'send m2', 'send late', 'uncork']);
  });

  it('corks a keepalive ping too, so it leaves in the flusher turn', async () => {
    const { socket, log } = fakeSocket();
    socket.ping();
    expect(log).toEqual(['cork', 'ping']);
    await turn();
    expect(log).toEqual(['cork', 'ping', 'uncork']);
  });
});
