/**
 * Two EventBuses on one Redis, as two nodes: what one publishes reaches the other's
 * subscribers, once, in order, with the same bounded queue and `lagged` count as in process.
 * Skipped (visibly) without SEGQL_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus } from '../../src/domain/events.js';
import { redisTransport } from '../../src/domain/redis-events.js';

const url = process.env.SEGQL_TEST_REDIS_URL;

describe.skipIf(!url)('EventBus over Redis (SEGQL_TEST_REDIS_URL)', () => {
  // A prefix of its own: test files running at once on the same Redis never see each other.
  const prefix = `segql-test-${randomBytes(4).toString('hex')}:`;
  const log = pino({ level: 'silent' });
  let probe: Redis;
  const buses: EventBus[] = [];
  const node = () => {
    const bus = new EventBus({ queueSize: 100, transport: redisTransport({ url: url!, prefix, log }) });
    buses.push(bus);
    return bus;
  };
  /** Until Redis counts `n` subscribed connections on the topic's channel. */
  const subscribers = async (topic: string, n: number) => {
    for (let i = 0; i < 200; i++) {
      const [, count] = (await probe.pubsub('NUMSUB', prefix + topic)) as [string, number];
      if (count === n) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`${prefix + topic} never had ${n} subscribers`);
  };

  beforeAll(() => {
    probe = new Redis(url!);
  });
  afterAll(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await probe.quit();
  });

  it("delivers one node's payloads to the other's subscribers, in order, and to its own once", async () => {
    const a = node();
    const b = node();
    const onA = a.subscribe<{ n: number }>('job:1');
    const onB = b.subscribe<{ n: number }>('job:1');
    await subscribers('job:1', 2);
    for (let n = 1; n <= 5; n++) a.publish('job:1', { n });
    const read = async (sub: typeof onA, count: number) => {
      const out: unknown[] = [];
      for (let i = 0; i < count; i++) out.push((await sub.next()).value);
      return out;
    };
    const expected = [1, 2, 3, 4, 5].map((n) => ({ payload: { n }, lagged: 0 }));
    expect(await read(onB, 5)).toEqual(expected);
    expect(await read(onA, 5)).toEqual(expected);
    // Node A got its own payloads in process only: nothing more arrives through Redis.
    b.publish('job:1', { n: 6 });
    expect(await read(onA, 1)).toEqual([{ payload: { n: 6 }, lagged: 0 }]);
    expect(await read(onB, 1)).toEqual([{ payload: { n: 6 }, lagged: 0 }]);
    onA.close();
    onB.close();
    // The last local subscriber gone, the node leaves the channel.
    await subscribers('job:1', 0);
  });

  it("hands another node's commit to its subscribers as one commit, as in process", async () => {
    const a = node();
    const b = node();
    const commits = b.subscribeCommits<number>('memberships:2');
    await subscribers('memberships:2', 1);
    a.publishAll('memberships:2', [1, 2, 3]);
    a.publishAll('memberships:2', [4]);
    expect((await commits.next()).value).toEqual({ payload: [1, 2, 3], lagged: 0 });
    expect((await commits.next()).value).toEqual({ payload: [4], lagged: 0 });
    commits.close();
  });

  it('keeps the newest remote payloads for a subscriber that fell behind and counts the rest', async () => {
    const a = node();
    let dropped = 0;
    const slow = new EventBus({
      queueSize: 3,
      onDropped: (n) => (dropped += n),
      transport: redisTransport({ url: url!, prefix, log }),
    });
    buses.push(slow);
    const sub = slow.subscribe<number>('memberships:1');
    await subscribers('memberships:1', 1);
    for (let i = 1; i <= 11; i++) a.publish('memberships:1', i);
    // All eleven have arrived once eight were dropped from a queue of three.
    for (let i = 0; i < 200 && dropped < 8; i++) await new Promise((r) => setTimeout(r, 10));
    expect(dropped).toBe(8);
    const got = [];
    for (let i = 0; i < 3; i++) got.push((await sub.next()).value);
    expect(got).toEqual([
      { payload: 9, lagged: 8 },
      { payload: 10, lagged: 0 },
      { payload: 11, lagged: 0 },
    ]);
    sub.close();
  });

  it('answers a ping, and a transport whose Redis is unreachable rejects one', async () => {
    const a = node();
    await expect(a.transport!.ping()).resolves.toBeUndefined();
    const down = redisTransport({ url: 'redis://127.0.0.1:1', prefix, log });
    try {
      await expect(down.ping()).rejects.toThrow();
    } finally {
      await down.close();
    }
  });
});

describe.skipIf(url)('EventBus over Redis', () => {
  it.skip('needs SEGQL_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379', () => {});
});
