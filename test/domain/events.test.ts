import { describe, expect, it } from 'vitest';
import { EventBus } from '../../src/domain/events.js';

describe('EventBus', () => {
  it('delivers every payload in order to a subscriber that keeps up', async () => {
    const bus = new EventBus({ queueSize: 3 });
    const sub = bus.subscribe<number>('t');
    const got: number[] = [];
    for (let i = 1; i <= 10; i++) {
      bus.publish('t', i);
      const { value } = await sub.next();
      expect(value!.lagged).toBe(0);
      got.push(value!.payload);
    }
    expect(got).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('keeps the newest payloads of a subscriber that fell behind and reports the count lost', async () => {
    let dropped = 0;
    const bus = new EventBus({ queueSize: 3, onDropped: (n) => (dropped += n) });
    const slow = bus.subscribe<number>('t');
    const fast = bus.subscribe<number>('t');
    for (let i = 1; i <= 10; i++) bus.publish('t', i);
    const read = async (n: number) => {
      const out: { payload: number; lagged: number }[] = [];
      for (let i = 0; i < n; i++) out.push((await slow.next()).value!);
      return out;
    };
    expect(await read(3)).toEqual([
      { payload: 8, lagged: 7 },
      { payload: 9, lagged: 0 },
      { payload: 10, lagged: 0 },
    ]);
    // Both subscribers fell behind alike: 7 dropped each.
    expect(dropped).toBe(14);
    expect((await fast.next()).value).toEqual({ payload: 8, lagged: 7 });
    bus.publish('t', 11);
    expect(await read(1)).toEqual([{ payload: 11, lagged: 0 }]);
    slow.close();
    fast.close();
    expect(bus.subscriptionCount).toBe(0);
  });

  it('delivers a commit published at once as if published one by one, gaps and order included', async () => {
    let dropped = 0;
    const bus = new EventBus({ queueSize: 3, onDropped: (n) => (dropped += n) });
    const sub = bus.subscribe<number>('t');
    const other = bus.subscribe<number>('u');
    bus.publishAll('t', [1, 2, 3, 4, 5]);
    bus.publishAll('t', []);
    bus.publishAll('t', [6]);
    const out: { payload: number; lagged: number }[] = [];
    for (let i = 0; i < 3; i++) out.push((await sub.next()).value!);
    expect(out).toEqual([
      { payload: 4, lagged: 3 },
      { payload: 5, lagged: 0 },
      { payload: 6, lagged: 0 },
    ]);
    expect(dropped).toBe(3);
    // Another topic's subscriber got nothing.
    other.close();
    expect((await other.next()).done).toBe(true);
    sub.close();
  });

  it('delivers each commit whole to a commit subscriber, the published array itself', async () => {
    const bus = new EventBus({ queueSize: 10 });
    const commits = bus.subscribeCommits<number>('t');
    const single = bus.subscribe<number>('t');
    const first = [1, 2, 3];
    bus.publishAll('t', first);
    bus.publish('t', 4);
    const a = (await commits.next()).value!;
    expect(a.payload).toBe(first);
    expect(a.lagged).toBe(0);
    expect((await commits.next()).value).toEqual({ payload: [4], lagged: 0 });
    // The subscriber of single payloads still gets them one by one from the same commits.
    const got: number[] = [];
    for (let i = 0; i < 4; i++) got.push((await single.next()).value!.payload);
    expect(got).toEqual([1, 2, 3, 4]);
    commits.close();
    single.close();
    expect(bus.subscriptionCount).toBe(0);
  });

  it('bounds a commit subscriber in payloads: the oldest are dropped, even part of a commit, and counted', async () => {
    let dropped = 0;
    const bus = new EventBus({ queueSize: 5, onDropped: (n) => (dropped += n) });
    const commits = bus.subscribeCommits<number>('t');
    bus.publishAll('t', [1, 2, 3]);
    bus.publishAll('t', [4, 5]);
    bus.publishAll('t', [6, 7, 8]);
    // 8 payloads for 5 places: 1, 2 and 3 went.
    expect((await commits.next()).value).toEqual({ payload: [4, 5], lagged: 3 });
    expect((await commits.next()).value).toEqual({ payload: [6, 7, 8], lagged: 0 });
    bus.publishAll('t', [9, 10, 11]);
    bus.publishAll('t', [12, 13, 14, 15, 16, 17, 18]);
    // The newest commit is larger than the queue: it stays whole, and what waited before it goes.
    expect((await commits.next()).value).toEqual({ payload: [12, 13, 14, 15, 16, 17, 18], lagged: 3 });
    bus.publishAll('t', [19, 20, 21, 22]);
    bus.publishAll('t', [23, 24]);
    expect((await commits.next()).value).toEqual({ payload: [20, 21, 22], lagged: 1 });
    expect((await commits.next()).value).toEqual({ payload: [23, 24], lagged: 0 });
    expect(dropped).toBe(7);
    commits.close();
    expect((await commits.next()).done).toBe(true);
  });

  it('gives a subscriber that keeps up a commit larger than the queue whole, to both kinds of subscriber', async () => {
    const bus = new EventBus({ queueSize: 3 });
    const commits = bus.subscribeCommits<number>('t');
    const single = bus.subscribe<number>('t');
    const big = Array.from({ length: 10 }, (_, i) => i);
    bus.publishAll('t', big);
    expect((await commits.next()).value).toEqual({ payload: big, lagged: 0 });
    const one: number[] = [];
    for (let i = 0; i < 10; i++) {
      const { payload, lagged } = (await single.next()).value!;
      expect(lagged).toBe(0);
      one.push(payload);
    }
    expect(one).toEqual(big);
    commits.close();
    single.close();
  });

  it('carries a gap to the next payload when the queue holds one', async () => {
    const bus = new EventBus({ queueSize: 1 });
    const sub = bus.subscribe<string>('t');
    for (const p of ['a', 'b', 'c']) bus.publish('t', p);
    expect((await sub.next()).value).toEqual({ payload: 'c', lagged: 2 });
  });

  it('gives every one of many subscribers reading at once every payload, in order', async () => {
    const bus = new EventBus({ queueSize: 1_000 });
    const subs = Array.from({ length: 200 }, () => bus.subscribe<number>('t'));
    for (let i = 0; i < 300; i++) bus.publish('t', i);
    const read = async (sub: (typeof subs)[number]) => {
      const got: number[] = [];
      for (let i = 0; i < 300; i++) got.push((await sub.next()).value!.payload);
      return got;
    };
    const all = await Promise.all(subs.map(read));
    for (const got of all) expect(got).toEqual(Array.from({ length: 300 }, (_, i) => i));
    for (const sub of subs) sub.close();
    expect(bus.subscriptionCount).toBe(0);
  });

  it("delivers in a turn of its own, never in the publisher's turn", async () => {
    const bus = new EventBus({ queueSize: 10 });
    const sub = bus.subscribe<number>('t');
    const got: number[] = [];
    const reading = (async () => {
      for (let i = 0; i < 2; i++) got.push((await sub.next()).value!.payload);
    })();
    await new Promise((r) => setImmediate(r));
    bus.publish('t', 1);
    // The rest of the publisher's turn: its microtasks run, the delivery does not.
    for (let i = 0; i < 50; i++) await Promise.resolve();
    expect(got).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual([1]);
    bus.publish('t', 2);
    await reading;
    expect(got).toEqual([1, 2]);
    sub.close();
  });

  it('spreads a burst that outlasts a slice over several turns, each subscriber in order', async () => {
    const bus = new EventBus({ queueSize: 1_000, sliceMs: 4 });
    const subs = Array.from({ length: 4 }, () => bus.subscribe<number>('t'));
    // One count per event-loop turn, to see in which turn each delivery ran.
    let turn = 0;
    let ticking = true;
    const tick = () => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    tick();
    const turns: number[] = [];
    const read = async (sub: (typeof subs)[number]) => {
      const got: number[] = [];
      for (let i = 0; i < 25; i++) {
        got.push((await sub.next()).value!.payload);
        turns.push(turn);
        // A delivery that costs 1 ms (a subscriber's execution and write).
        const until = performance.now() + 1;
        while (performance.now() < until);
      }
      return got;
    };
    const reading = Promise.all(subs.map(read));
    for (let i = 0; i < 25; i++) bus.publish('t', i);
    const all = await reading;
    ticking = false;
    for (const got of all) expect(got).toEqual(Array.from({ length: 25 }, (_, i) => i));
    const perTurn = new Map<number, number>();
    for (const t of turns) perTurn.set(t, (perTurn.get(t) ?? 0) + 1);
    // 100 deliveries of 1 ms in slices of 4 ms: at most 5 (the one that crosses the line) a turn.
    expect(Math.max(...perTurn.values())).toBeLessThanOrEqual(5);
    expect(perTurn.size).toBeGreaterThanOrEqual(20);
    for (const sub of subs) sub.close();
  });

  it('ends a closed subscription at once, dropping what it had waiting', async () => {
    const bus = new EventBus({ queueSize: 10 });
    const sub = bus.subscribe<number>('t');
    bus.publish('t', 1);
    bus.publish('t', 2);
    sub.close();
    expect(await sub.next()).toEqual({ value: undefined, done: true });
    bus.publish('t', 3);
    expect(await sub.next()).toEqual({ value: undefined, done: true });
  });

  it('keeps a local publish from the transport, and sends a plain one to both', async () => {
    const sent: [string, readonly unknown[]][] = [];
    const transport = {
      publish: (topic: string, payloads: readonly unknown[]) => void sent.push([topic, payloads]),
      listen: () => () => {},
      ping: async () => {},
      close: async () => {},
    };
    const bus = new EventBus({ queueSize: 10, transport });
    const sub = bus.subscribe<number>('t');
    bus.publishLocal('t', 1);
    bus.publish('t', 2);
    expect((await sub.next()).value!.payload).toBe(1);
    expect((await sub.next()).value!.payload).toBe(2);
    expect(sent).toEqual([['t', [2]]]);
    sub.close();
  });
});
