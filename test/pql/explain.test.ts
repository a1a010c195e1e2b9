/**
 * explain() on one fixed profile, with verdicts, evidence and nearest misses worked out by hand
 * for definitions covering every construct: attributes, strings, event counts in windows, sums,
 * exists/forall, select, CHAIN, inSegment, and missing data.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { ProfileDocument } from '../../src/pql/check/types.js';
import { type ExplainNode, evaluate, explain } from '../../src/pql/index.js';
import { DifferentialHarness } from './differential-harness.js';

const harness = new DifferentialHarness('explain');
afterAll(() => harness.close());

const DAY = 86_400_000;
const now = Date.parse('2026-06-15T12:00:00.000Z');
const iso = (t: number) => new Date(t).toISOString();

// Ada: US, gold tier, 120 points; two purchases (30 one day ago, 10 three days ago) and a page
// view two days ago; an old purchase 40 days ago; member of audience 1 (VIP); no lastName.
const ada: ProfileDocument = {
  attributes: {
    person: { name: { firstName: 'Ada' }, birthDate: '1990-06-20T00:00:00.000Z' },
    homeAddress: { countryCode: 'US', city: 'Boston' },
    loyalty: { tier: 'gold', points: 120, joinDate: '2026-06-03T08:00:00.000Z' },
    preferences: { categories: ['books', 'garden'] },
    _tenant: { score: 5 },
  },
  events: [
    {
      id: 4,
      timestamp: now - 40 * DAY,
      eventType: 'commerce.purchases',
      payload: { commerce: { order: { priceTotal: 500 } } },
    },
    {
      id: 3,
      timestamp: now - 3 * DAY,
      eventType: 'commerce.purchases',
      payload: { commerce: { order: { priceTotal: 10 } } },
    },
    {
      id: 2,
      timestamp: now - 2 * DAY,
      eventType: 'web.webpagedetails.pageViews',
      payload: { web: { webPageDetails: { name: 'cart' } } },
    },
    {
      id: 1,
      timestamp: now - 1 * DAY,
      eventType: 'commerce.purchases',
      payload: { commerce: { order: { priceTotal: 30 } } },
    },
  ],
  memberships: new Set([1]),
};

interface Case {
  source: string;
  qualifies: boolean;
  /** The text of nearestMiss (for a "no"). */
  miss?: string;
  check?: (root: ExplainNode) => void;
}

function find(node: ExplainNode, text: string): ExplainNode {
  if (node.text === text) return node;
  for (const c of node.children) {
    const hit = findOrNull(c, text);
    if (hit) return hit;
  }
  throw new Error(`no node "${text}" under ${node.text}`);
}
function findOrNull(node: ExplainNode, text: string): ExplainNode | null {
  if (node.text === text) return node;
  for (const c of node.children) {
    const hit = findOrNull(c, text);
    if (hit) return hit;
  }
  return null;
}

const purchases7d = 'xEvent[eventType = "commerce.purchases" and timestamp occurs < 7 days before now]';

const CASES: Case[] = [
  {
    source: 'homeAddress.countryCode = "US"',
    qualifies: true,
    check: (root) => expect(root.evidence).toEqual({ op: '=', left: 'US', right: 'US' }),
  },
  {
    source: 'homeAddress.countryCode = "US" and loyalty.points > 200',
    qualifies: false,
    miss: 'loyalty.points > 200',
    check: (root) => {
      const points = find(root, 'loyalty.points');
      expect(points.evidence).toEqual({ field: 'loyalty.points', value: 120, missing: false });
      expect(points.children).toEqual([]);
    },
  },
  {
    source: 'loyalty.tier = "silver" or loyalty.points < 100',
    qualifies: false,
    miss: 'loyalty.tier = "silver" or loyalty.points < 100',
    check: (root) => expect(root.children.map((c) => c.passed)).toEqual([false, false]),
  },
  {
    // The left operand fails first; the evaluator skips the right, explain still evaluates it.
    source: 'loyalty.tier = "silver" and (homeAddress.city = "Paris" or loyalty.points > 1000)',
    qualifies: false,
    miss: 'loyalty.tier = "silver"',
    check: (root) => {
      const right = root.children[1]!;
      expect(right.passed).toBe(false);
      expect(right.evidence).toMatchObject({ shortCircuited: true });
    },
  },
  { source: 'person.name.firstName.startsWith("A")', qualifies: true },
  { source: 'person.name.firstName.equals("ada", false)', qualifies: true },
  {
    source: 'homeAddress.city like "Bos%"',
    qualifies: true,
    check: (root) => expect(root.evidence).toEqual({ pattern: 'Bos%', value: 'Boston' }),
  },
  {
    source: 'person.name.lastName = "Lovelace"',
    qualifies: false,
    miss: 'person.name.lastName = "Lovelace"',
    check: (root) => {
      expect(root.evidence).toEqual({ op: '=', left: null, right: 'Lovelace', missing: ['person.name.lastName'] });
      expect(find(root, 'person.name.lastName').evidence).toEqual({
        field: 'person.name.lastName',
        value: null,
        missing: true,
      });
    },
  },
  { source: 'loyalty.tier in ["gold", "platinum"]', qualifies: true },
  { source: 'not (loyalty.tier = "gold")', qualifies: false, miss: 'not loyalty.tier = "gold"' },
  {
    source: `${purchases7d}.count() >= 2`,
    qualifies: true,
    check: (root) => {
      const filter = find(root, purchases7d);
      expect(filter.evidence).toMatchObject({
        matched: 2,
        items: [
          { timestamp: iso(now - 3 * DAY), eventType: 'commerce.purchases' },
          { timestamp: iso(now - DAY), eventType: 'commerce.purchases' },
        ],
        windows: [
          {
            test: 'timestamp occurs < 7 days before now',
            from: iso(now - 7 * DAY),
            to: iso(now),
          },
        ],
      });
    },
  },
  {
    source: `${purchases7d}.count() >= 3`,
    qualifies: false,
    miss: `${purchases7d}.count() >= 3`,
    check: (root) => expect(root.evidence).toEqual({ op: '>=', left: 2, right: 3 }),
  },
  {
    source: `${purchases7d}.sum(commerce.order.priceTotal) > 35`,
    qualifies: true,
    check: (root) => {
      expect(root.evidence).toEqual({ op: '>', left: 40, right: 35 });
      expect(find(root, purchases7d).evidence).toMatchObject({
        items: [{ 'commerce.order.priceTotal': 10 }, { 'commerce.order.priceTotal': 30 }],
      });
    },
  },
  {
    source: 'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 1000',
    qualifies: false,
    miss: 'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 1000',
    check: (root) => expect(root.evidence).toEqual({ op: '>', left: 540, right: 1000 }),
  },
  {
    source: 'exists E from xEvent where E.commerce.order.priceTotal > 100',
    qualifies: true,
    check: (root) =>
      expect(root.evidence).toEqual({
        witness: { timestamp: iso(now - 40 * DAY), eventType: 'commerce.purchases', 'commerce.order.priceTotal': 500 },
      }),
  },
  {
    source: 'forall E from xEvent where E.eventType = "commerce.purchases"',
    qualifies: false,
    miss: 'forall E from xEvent where E.eventType = "commerce.purchases"',
    check: (root) =>
      expect(root.evidence).toEqual({
        counterexample: { timestamp: iso(now - 2 * DAY), eventType: 'web.webpagedetails.pageViews' },
      }),
  },
  {
    source: '(select S from xEvent where S.eventType = "web.webpagedetails.pageViews").count() = 1',
    qualifies: true,
    check: (root) =>
      expect(find(root, 'select S from xEvent where S.eventType = "web.webpagedetails.pageViews"').evidence).toEqual({
        matched: 1,
        items: [{ timestamp: iso(now - 2 * DAY), eventType: 'web.webpagedetails.pageViews' }],
      }),
  },
  {
    source: 'preferences.categories.count() = 2 and "garden" in preferences.categories',
    qualifies: true,
  },
  {
    source:
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "web.webpagedetails.pageViews"), B: WHAT(eventType = "commerce.purchases")])',
    qualifies: true,
    check: (root) =>
      expect(root.evidence).toEqual({
        steps: [
          {
            label: 'A',
            matched: 1,
            events: [{ timestamp: iso(now - 2 * DAY), eventType: 'web.webpagedetails.pageViews' }],
          },
          {
            label: 'B',
            matched: 3,
            events: [
              { timestamp: iso(now - 40 * DAY), eventType: 'commerce.purchases' },
              { timestamp: iso(now - 3 * DAY), eventType: 'commerce.purchases' },
              { timestamp: iso(now - DAY), eventType: 'commerce.purchases' },
            ],
          },
        ],
        chosen: [
          { label: 'A', event: { timestamp: iso(now - 2 * DAY), eventType: 'web.webpagedetails.pageViews' } },
          { label: 'B', event: { timestamp: iso(now - DAY), eventType: 'commerce.purchases' } },
        ],
      }),
  },
  {
    source:
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "commerce.purchases"), B: WHAT(eventType = "web.webpagedetails.pageViews") WHEN(< 12 hours after A)])',
    qualifies: false,
    check: (root) =>
      expect(root.evidence).toMatchObject({
        steps: [
          { label: 'A', matched: 3 },
          { label: 'B', matched: 1 },
        ],
        chosen: null,
      }),
  },
  {
    source: 'inSegment("VIP")',
    qualifies: true,
    check: (root) =>
      expect(root.evidence).toEqual({ audience: 'VIP', audienceId: 1, member: true, storedStatus: 'EXISTING' }),
  },
  {
    source: 'inSegment("VIP") and inSegment("Churn risk")',
    qualifies: false,
    miss: 'inSegment("Churn risk")',
    check: (root) =>
      expect(find(root, 'inSegment("Churn risk")').evidence).toEqual({
        audience: 'Churn risk',
        audienceId: 2,
        member: false,
        storedStatus: null,
      }),
  },
  {
    source: 'loyalty.joinDate occurs this month',
    qualifies: true,
    check: (root) =>
      expect(root.evidence).toEqual({
        instant: '2026-06-03T08:00:00.000Z',
        now: iso(now),
        window: {
          from: '2026-06-01T00:00:00.000Z',
          fromInclusive: true,
          to: '2026-07-01T00:00:00.000Z',
          toInclusive: false,
          outside: false,
        },
      }),
  },
  {
    source: '_tenant.score > 3 and (loyalty.tier = "bronze" and loyalty.points > 1000 and homeAddress.city = "Rome")',
    qualifies: false,
    // All three clauses on the right fail; the smallest failing subtree is followed down:
    // `(tier and points) and city` parses left-first, so the lone `city` clause is the smallest.
    miss: 'homeAddress.city = "Rome"',
  },
];

describe('explain', () => {
  it(`covers at least 20 definitions (${CASES.length})`, () => {
    expect(CASES.length).toBeGreaterThanOrEqual(20);
  });

  for (const c of CASES) {
    it(`${c.qualifies ? 'yes' : 'no'}: ${c.source}`, () => {
      const checked = harness.check(c.source);
      const e = explain(checked, ada, { now, membershipStatus: (id) => (id === 1 ? 'EXISTING' : undefined) });
      expect(e.qualifies).toBe(c.qualifies);
      expect(evaluate(checked, ada, { now })).toBe(c.qualifies);
      expect(e.root.passed).toBe(c.qualifies);
      expect(e.root.line).toBe(1);
      expect(e.root.column).toBe(1);
      if (c.qualifies) expect(e.nearestMiss).toBeNull();
      else if (c.miss !== undefined) expect(e.nearestMiss?.text).toBe(c.miss);
      else expect(e.nearestMiss?.passed).toBe(false);
      c.check?.(e.root);
    });
  }
});
