import { describe, expect, it } from 'vitest';
import { defaultCatalog } from '../../src/pql/check/catalog.js';
import { checkSource } from '../../src/pql/check/checker.js';
import type { CheckOptions, EventRecord } from '../../src/pql/check/types.js';
import { eventReads } from '../../src/pql/index.js';
import { evaluate } from '../../src/pql/js/evaluate.js';

const options: CheckOptions = {
  catalog: defaultCatalog(),
  resolveAudience: (ref) => ({ vip: { id: 1, name: 'vip' } })[ref],
};

const typesOf = (source: string): string[] | null => {
  const types = eventReads(checkSource(source, options)).eventTypes;
  return types === null ? null : [...types].sort();
};

describe('the event types an expression reads', () => {
  const cases: [string, string[] | null][] = [
    ['loyalty.points > 3', []],
    ['inSegment("vip")', []],
    ['xEvent[eventType = "buy" and timestamp occurs <= 1 hours before now].count() >= 2', ['buy']],
    ['xEvent["buy" = eventType].count() > 0', ['buy']],
    ['xEvent[eventType in ["a", "b"]].count() > 0 and loyalty.points > 1', ['a', 'b']],
    ['xEvent[eventType = "a" or eventType = "b"].count() > 0', ['a', 'b']],
    // Two filters: both hold, so only events of both sets count.
    ['xEvent[eventType in ["a", "b"]][eventType = "b"].count() > 0', ['b']],
    ['xEvent[eventType = "a" and eventType = "b"].count() > 0', []],
    ['xEvent[eventType = "a"].count() > 0 or xEvent[eventType = "c"].count() > 1', ['a', 'c']],
    ['exists E from xEvent where E.eventType = "buy" and E.timestamp occurs <= 2 hours before now', ['buy']],
    ['(select E from xEvent where E.eventType = "x").count() > 0', ['x']],
    ['(sum E.commerce.order.priceTotal over E from xEvent where E.eventType = "buy") > 10', ['buy']],
    ['xEvent.exists(eventType = "view" and channel = "web")', ['view']],
    ['xEvent.exists(e => e.eventType = "view")', ['view']],
    ['xEvent.filter(e => eventType = "view" and e.channel = "web").count() > 1', ['view']],
    ['xEvent[eventType = "buy"].map(e => mapEntry(e.channel, e.timestamp)).keys().count() > 1', ['buy']],
    ['xEvent.map(e => mapEntry(e.channel, e.timestamp)).keys().count() > 1', null],
    ['xEvent.exists(e => e.eventType = "view" or e.channel = "web")', null],
    // Not restricted by type: any event can change these.
    ['xEvent[timestamp occurs <= 1 hours before now].count() > 0', null],
    ['xEvent[eventType = "a" or channel = "web"].count() > 0', null],
    ['xEvent[eventType != "a"].count() > 0', null],
    ['xEvent[eventType notIn ["a"]].count() > 0', null],
    ['xEvent[eventType.startsWith("a")].count() > 0', null],
    ['xEvent.count() > 0', null],
    ['xEvent[eventType = "a"].count() > 0 and xEvent.count() > 5', null],
    ['exists E from xEvent where E.channel = "web"', null],
    // forall: an event failing the condition is exactly what changes the answer.
    ['forall E from xEvent: E.eventType = "a"', null],
  ];
  for (const [source, expected] of cases) {
    it(source, () => expect(typesOf(source)).toEqual(expected));
  }

  it('never leaves out a type whose events change the value', () => {
    const NOW = Date.parse('2026-11-28T12:00:00Z');
    const event = (id: number, eventType: string, minutesAgo: number): EventRecord => ({
      id,
      eventType,
      timestamp: NOW - minutesAgo * 60_000,
      payload: { channel: 'web' },
    });
    const base = [event(1, 'a', 5), event(2, 'b', 30)];
    const others = [event(3, 'c', 10), event(4, 'other', 1), event(5, 'c', 90)];
    for (const [source, expected] of cases) {
      const checked = checkSource(source, options);
      const doc = (events: EventRecord[]) => ({
        attributes: { loyalty: { points: 5 } },
        events: [...events].sort((x, y) => x.timestamp - y.timestamp),
        memberships: new Set<number>(),
      });
      if (expected === null) continue;
      // Events of types it does not read never move it.
      const unread = others.filter((e) => !expected.includes(e.eventType));
      expect(evaluate(checked, doc([...base, ...unread]), { now: NOW }), source).toBe(
        evaluate(checked, doc(base), { now: NOW }),
      );
    }
  });
});
