import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultCatalog } from '../../src/pql/check/catalog.js';
import { checkSource } from '../../src/pql/check/checker.js';
import { eligibility } from '../../src/pql/check/eligibility.js';
import type { CheckOptions, Eligibility } from '../../src/pql/check/types.js';
import { parse } from '../../src/pql/language/parser.js';
import { NOWS, PqlGenerator, profiles } from './differential-generators.js';
import { DifferentialHarness } from './differential-harness.js';

const options: CheckOptions = {
  catalog: defaultCatalog(),
  resolveAudience: (ref) => ({ vip: { id: 1, name: 'vip' }, gold: { id: 2, name: 'gold' } })[ref],
};

const of = (source: string): Eligibility => checkSource(source, options).eligibility;
const NEED = '(streaming needs a window of at most 24 hours back from now)';

describe('eligible for streaming and edge', () => {
  const eligible: [string, string][] = [
    ['only profile attributes', 'loyalty.points > 3 and person.name.firstName.startsWith("J")'],
    ['occurs today', 'xEvent[timestamp occurs today].count() > 0'],
    ['<= 24 hours before now', 'xEvent[eventType = "buy" and timestamp occurs <= 24 hours before now].count() >= 3'],
    ['< 1 days before now', 'xEvent[timestamp occurs < 1 days before now].count() > 0'],
    ['this day (the calendar day containing now)', 'xEvent[timestamp occurs this day].count() > 0'],
    ['= 0 days before today', 'xEvent[timestamp occurs = 0 days before today].count() > 0'],
    [
      'last hour, between today and now, after yesterday',
      'xEvent[timestamp occurs last hour].count() > 0 and xEvent[timestamp occurs between today and now].count() > 0 and xEvent[timestamp occurs after yesterday].count() > 0',
    ],
    [
      'events with profile attributes, ^ included',
      'xEvent[timestamp occurs today and ^.loyalty.tier = "gold"].count() > 0 and loyalty.points > 10',
    ],
    ['only inSegment terms', 'inSegment("vip") or not inSegment("gold")'],
    [
      'exists with a window on E.timestamp',
      'exists E from xEvent where E.eventType = "buy" and E.timestamp occurs <= 2 hours before now',
    ],
    ['the exists method', 'xEvent.exists(timestamp occurs <= 1 hours before now and channel = "web")'],
    [
      'an aggregate over windowed events',
      '(sum E.commerce.order.priceTotal over E from xEvent where E.timestamp occurs today) > 5',
    ],
    ['select with a window', '(select E from xEvent where E.timestamp occurs today).count() > 1'],
    [
      'stacked filters: the tighter window counts',
      'xEvent[timestamp occurs <= 7 days before now][timestamp occurs today].count() > 0',
    ],
    ['or of two short windows', 'xEvent[timestamp occurs today or timestamp occurs <= 2 hours before now].count() > 0'],
    ['a lambda windowing its named event', 'xEvent.exists(e => e.timestamp occurs today and e.eventType = "x")'],
    ['a lambda windowing a bare field of the event', 'xEvent.filter(e => timestamp occurs today).count() > 1'],
    [
      'a lambda-made value over windowed events',
      'xEvent[timestamp occurs today].map(e => e.commerce.order.priceTotal * 2).sum() > 10',
    ],
    [
      'the groups of windowed events',
      'xEvent[timestamp occurs today].groupBy(eventType).values().exists(g => g.count() > 1)',
    ],
    [
      'CHAIN whose first step is windowed (later steps follow it)',
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "view") WHEN(<= 24 hours before now), B: WHAT(eventType = "buy") WHEN(<= 1 hours after A), C: WHAT(true)])',
    ],
  ];
  it.each(eligible)('%s', (_name, source) => {
    expect(of(source)).toEqual({ batch: true, streaming: true, edge: true, reasons: [] });
  });
});

describe('batch only', () => {
  it('says an event condition without a window has none, naming its position', () => {
    expect(of('xEvent[eventType="x"].count() > 0')).toEqual({
      batch: true,
      streaming: false,
      edge: false,
      reasons: [`xEvent condition at line 1, column 1 has no time window on timestamp ${NEED}`],
    });
  });

  const batchOnly: [string, string, string][] = [
    [
      'a window over 24 hours',
      'xEvent[timestamp occurs <= 25 hours before now].count() > 0',
      `has a time window of up to 25 hours on timestamp ${NEED}`,
    ],
    [
      'a window relative to today that reaches past 24 hours',
      'xEvent[timestamp occurs <= 1 hours before today].count() > 0',
      'has a time window of up to 25 hours',
    ],
    ['yesterday', 'xEvent[timestamp occurs yesterday].count() > 0', 'has a time window of up to 2 days'],
    ['this week', 'xEvent[timestamp occurs this week].count() > 0', 'has a time window of up to 7 days'],
    [
      '= 1 days before now (the whole previous day)',
      'xEvent[timestamp occurs = 1 days before now].count() > 0',
      'has a time window of up to 2 days',
    ],
    [
      'an open-ended window (>= 1 hours before now)',
      'xEvent[timestamp occurs >= 1 hours before now].count() > 0',
      'has no time window on timestamp',
    ],
    [
      'a window on a fixed date',
      'xEvent[timestamp occurs on date(2024, 1, 1)].count() > 0',
      `has a time window on timestamp that is not relative to now ${NEED}`,
    ],
    [
      'or with an unwindowed branch',
      'xEvent[timestamp occurs today or eventType = "x"].count() > 0',
      'has no time window',
    ],
    ['a negated window', 'xEvent[not (timestamp occurs today)].count() > 0', 'has no time window'],
    [
      'a window on a profile datetime, not the event',
      'xEvent[^.createdAt occurs today].count() > 0',
      'has no time window',
    ],
    [
      'a lambda whose window is only on one branch of or',
      'xEvent.exists(e => e.timestamp occurs today or e.channel = "web")',
      'has no time window',
    ],
    [
      'a map of every event',
      'xEvent.map(e => mapEntry(e.eventType, e.timestamp)).keys().count() > 1',
      'has no time window',
    ],
    [
      'xEvent bound by let',
      'let V = (xEvent) in (V[timestamp occurs today].count() > 0)',
      'xEvent condition at line 1, column 10 has no time window',
    ],
    [
      'a second, unwindowed use of xEvent',
      'xEvent[timestamp occurs today].count() > xEvent.count()',
      'xEvent condition at line 1, column 42 has no time window',
    ],
    [
      'an unwindowed quantifier variable',
      'exists E from xEvent, F from xEvent where E.timestamp occurs today and F.eventType = "x"',
      'xEvent condition at line 1, column 30 has no time window',
    ],
    [
      'CHAIN whose first step has no WHEN',
      'CHAIN(xEvent, timestamp, [A: WHAT(true), B: WHAT(true) WHEN(today)])',
      `CHAIN at line 1, column 1 has no time window on timestamp in its first step ${NEED}`,
    ],
    [
      'forall quantifier over events',
      'forall E from xEvent : E.timestamp occurs today',
      'forall over xEvent at line 1, column 1 needs every event of the profile, so it cannot be evaluated by streaming',
    ],
    [
      'the forall method on events',
      'loyalty.points > 1 and xEvent.forall(timestamp occurs today)',
      'forall over xEvent at line 1, column 24 needs every event',
    ],
    [
      'inSegment with events',
      'inSegment("vip") and xEvent[timestamp occurs today].count() > 0',
      'inSegment is combined with xEvent conditions; streaming evaluates inSegment only on its own',
    ],
    [
      'inSegment with profile attributes',
      'inSegment("vip") and loyalty.tier = "gold"',
      'inSegment is combined with profile attributes (loyalty.tier); streaming evaluates inSegment only on its own',
    ],
  ];
  it.each(batchOnly)('%s', (_name, source, reason) => {
    const e = of(source);
    expect(e).toMatchObject({ batch: true, streaming: false, edge: false });
    expect(e.reasons).toHaveLength(1);
    expect(e.reasons[0]).toContain(reason);
  });

  it('lists every reason, in source order', () => {
    const e = of('inSegment("vip") and xEvent.count() > 0 and xEvent[timestamp occurs this month].count() > 0');
    expect(e.reasons).toEqual([
      'inSegment is combined with xEvent conditions; streaming evaluates inSegment only on its own',
      `xEvent condition at line 1, column 22 has no time window on timestamp ${NEED}`,
      `xEvent condition at line 1, column 45 has a time window of up to 31 days on timestamp ${NEED}`,
    ]);
  });
});

describe('eligibility()', () => {
  it('works from the AST and what the checker found it reads', () => {
    const ast = parse('loyalty.points > 1');
    expect(eligibility(ast, { referencedFields: ['loyalty.points'], referencedAudiences: [] }).streaming).toBe(true);
    expect(eligibility(ast, { referencedFields: ['loyalty.points'], referencedAudiences: [3] }).streaming).toBe(false);
  });
});

describe('time dependence', () => {
  const gen = new PqlGenerator();
  const dependent = (source: string) => checkSource(source, options).timeDependent;

  it('is reported for time words, calendar periods and functions that read now', () => {
    for (const source of [
      'person.birthDate < now',
      'xEvent[timestamp occurs yesterday].count() > 0',
      'xEvent[timestamp occurs this month].count() > 0',
      'age(person.birthDate) >= 18',
      'currentYear() = 2026',
      'currentMonth() = 12 and currentDayOfMonth() = 24',
      'let T = (today) in (person.birthDate occurs on T)',
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "a"), B: WHAT(eventType = "b") WHEN(last week)])',
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "a") WHEN(after today)])',
    ]) {
      expect(dependent(source), source).toBe(true);
    }
  });

  it('is not reported when windows are anchored to data or dates, nor through inSegment', () => {
    for (const source of [
      'loyalty.points > 3',
      'person.birthDate occurs on date(2000, 1, 1)',
      'xEvent[timestamp occurs 3 days after ^.person.birthDate].count() > 0',
      'xEvent[timestamp occurs between date(2024, 1, 1) and datetime("2024-06-01T00:00:00Z")].count() > 0',
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "a"), B: WHAT(eventType = "b") WHEN(<= 2 days after A)])',
      'inSegment("vip")',
    ]) {
      expect(dependent(source), source).toBe(false);
    }
  });

  it('a definition not reported as time dependent picks the same profiles at every now', () => {
    const harness = new DifferentialHarness('time-dependence');
    try {
      const cases = fc.tuple(gen.definition(3), fc.subarray(NOWS, { minLength: 2, maxLength: 2 }));
      let independent = 0;
      fc.assert(
        fc.property(cases, profiles(NOWS[0]!, 20), ([source, [a, b]], list) => {
          const checked = harness.check(source);
          if (checked.timeDependent) return;
          independent++;
          harness.load(list);
          expect(harness.jsMatches(checked, b!), source).toEqual(harness.jsMatches(checked, a!));
        }),
        { numRuns: 300, seed: 5 },
      );
      // The generator must reach the interesting side too.
      expect(independent).toBeGreaterThan(50);
    } finally {
      harness.close();
    }
  });
});
