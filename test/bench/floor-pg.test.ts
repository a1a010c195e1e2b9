import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { floorContext, runPass } from '../../bench/batch-postgres.js';
import { FLOORS_PG } from '../../bench/floor.pg.sql.js';
import { type Dataset, loadDefinitions, prepareDataset } from '../../bench/lib.js';
import { preparePgDataset } from '../../bench/pg-dataset.js';
import {
  compileForPostgres,
  type PgReferenceSegments,
  storeReferenceSegments,
} from '../../bench/pg-reference-segments.js';
import { latestWithAge } from '../../src/pql/sql/time.js';
import { freshPgDatabase, type PgTestDatabase, pgAdminUrl } from '../db/pg-test-database.js';

// The PostgreSQL floors (bench/floor.pg.sql.ts) must select what the PQL selects on any data the
// schema admits, not only on the seeded data: here on a tiny data set whose first profiles are
// rewritten into the awkward cases each floor's argument is about (JSON nulls, bounds of windows
// and ages, case folding, overflow, and sums whose exact decimal total and PQL's compensated
// double total fall on either side of a bound). The compiled PQL, which the differential tests
// hold to the JS evaluator, is the reference.

const DAY = 86_400_000;
const dataDir = mkdtempSync(join(tmpdir(), 'segql-floor-pg-'));
const iso = (ms: number) => new Date(ms).toISOString();

interface Edge {
  attributes: Record<string, unknown>;
  events?: { type: string; at: number; payload: Record<string, unknown> }[];
  /** Reference definitions this profile must (true) or must not (false) be selected by. */
  expect: Record<string, boolean>;
}

const purchase = (at: number, priceTotal: unknown, extra: Record<string, unknown> = {}) => ({
  type: 'commerce.purchases',
  at,
  payload: { commerce: { order: { priceTotal } }, ...extra },
});

function edges(now: number): Edge[] {
  const age30 = latestWithAge(now, 30);
  const age45 = latestWithAge(now, 45);
  return [
    {
      attributes: {
        loyalty: { tier: 'gold', points: null },
        homeAddress: { countryCode: null, city: null },
        consents: { marketing: { email: null } },
        preferences: { categories: [null, 'outdoor'] },
        person: { name: { firstName: 'SOFIA', lastName: 'ſon' }, birthDate: null },
      },
      expect: { 'gold-mid-points': false, 'so-son-names': true, nordics: false, 'outdoor-optin': false },
    },
    {
      // 1e308 × 2 overflows: missing in PQL, so not >= 1000.
      attributes: { loyalty: { tier: 'gold', points: 1e308 }, person: { name: { lastName: 'JOHNSON' } } },
      expect: { 'tier-weighted-points': false, 'gold-mid-points': false, 'so-son-names': true },
    },
    {
      // Also the store's one certain Nordic buyer (whether the seeded profiles hold another
      // depends on the day the data is seeded), so that nordic-buyers' set is never empty.
      attributes: { loyalty: { tier: 'platinum', points: 500 }, homeAddress: { countryCode: 'NO' } },
      events: [purchase(now - 5 * DAY, 10)],
      expect: { 'tier-weighted-points': true, nordics: true },
    },
    {
      attributes: { loyalty: { tier: 'silver', points: 999.9999999999999 } },
      expect: { 'tier-weighted-points': false },
    },
    {
      attributes: {
        loyalty: { tier: 'gold', points: 200 },
        homeAddress: { city: 'Oslo', countryCode: 'SE' },
        personalEmail: { address: 'x7@example.com\n' },
        consents: { marketing: { email: true } },
        preferences: { categories: ['outdoor'] },
      },
      expect: { 'gold-mid-points': true, 'o-city-sevens': false, 'outdoor-optin': true, nordics: true },
    },
    {
      attributes: {
        loyalty: { tier: 'gold', points: 5000 },
        homeAddress: { city: 'Rome' },
        personalEmail: { address: 'Y7@example.com' },
      },
      expect: { 'gold-mid-points': false, 'o-city-sevens': true, 'outdoor-optin': false },
    },
    {
      attributes: { personalEmail: { address: 'x7@exampleXcom' }, homeAddress: { city: 'Oslo' } },
      expect: { 'o-city-sevens': false },
    },
    { attributes: { person: { birthDate: iso(age30) } }, expect: { 'age-30-44': true } },
    { attributes: { person: { birthDate: iso(age30 + 1) } }, expect: { 'age-30-44': false } },
    { attributes: { person: { birthDate: iso(age45) } }, expect: { 'age-30-44': false } },
    { attributes: { person: { birthDate: iso(age45 + 1) } }, expect: { 'age-30-44': true } },
    {
      // Decimal total exactly 100; PQL's double total 100.00000000000091.
      attributes: {},
      events: [purchase(now - 10 * DAY, 3793.96), purchase(now - 9 * DAY, 14551.54), purchase(now - 8 * DAY, -18245.5)],
      expect: { 'big-spenders': true, 'big-spenders-lambda': true, 'mid-spend': true, 'buyers-30d': true },
    },
    {
      // Decimal total exactly 500; PQL's 499.9999999999999.
      attributes: {},
      events: [
        purchase(now - 100 * DAY, 329.89),
        purchase(now - 99 * DAY, 1334.77),
        purchase(now - 98 * DAY, -1164.66),
      ],
      expect: { 'mid-spend': true, 'big-spenders': true },
    },
    {
      // Decimal total exactly 50; PQL's 50.00000000000091.
      attributes: {},
      events: [
        purchase(now - 100 * DAY, 3793.96),
        purchase(now - 99 * DAY, 14551.54),
        purchase(now - 98 * DAY, -18295.5),
      ],
      expect: { 'mid-spend': true, 'big-spenders': false },
    },
    {
      // Decimal average exactly 50; PQL's 49.999999999999396.
      attributes: {},
      events: [
        purchase(now - 30 * DAY, 14214.22),
        purchase(now - 20 * DAY, 11599.89),
        purchase(now - 10 * DAY, -25664.11),
      ],
      expect: { 'high-basket-60d': false },
    },
    {
      // A missing total is skipped by the average, not counted as 0; a missing channel is no channel.
      attributes: {},
      events: [
        purchase(now - 30 * DAY, null, { channel: 'web' }),
        purchase(now - 20 * DAY, 60, { channel: null }),
        purchase(now - 70 * DAY, 1, { productListItems: [{ category: 'electronics', priceTotal: 30 }] }),
        purchase(now - 71 * DAY, 1, { productListItems: [{ category: 'electronics', priceTotal: null }] }),
      ],
      expect: {
        'high-basket-60d': true,
        'multi-channel-buyers': false,
        'electronics-buyers': false,
        'buyers-30d': true,
      },
    },
    {
      attributes: {},
      events: [
        purchase(now - 40 * DAY, 1, {
          channel: 'web',
          productListItems: [null, { category: 'electronics', priceTotal: 30.000000000000004 }],
        }),
        purchase(now - 41 * DAY, 1, { channel: 'mobile' }),
        { type: 'commerce.productListAdds', at: now - 50 * DAY, payload: { productListItems: null } },
        {
          type: 'commerce.productListAdds',
          at: now - 51 * DAY,
          payload: { productListItems: [null, { category: 'shoes' }] },
        },
      ],
      expect: {
        'multi-channel-buyers': true,
        'electronics-buyers': true,
        'electronics-item-bindings': true,
        'shoes-in-cart': true,
        'shoes-added-nonempty': true,
      },
    },
    {
      // The chain's steps at the very ends of their windows: view at now - 90 d, add 14 d later, buy 14 d later.
      attributes: {},
      events: [
        { type: 'commerce.productViews', at: now - 90 * DAY, payload: {} },
        { type: 'commerce.productListAdds', at: now - 76 * DAY, payload: { channel: 'web' } },
        purchase(now - 62 * DAY, 1),
        { type: 'commerce.productListAdds', at: now - 20 * DAY, payload: { channel: 'web' } },
        purchase(now - 13 * DAY, 1),
      ],
      expect: { 'view-add-buy': true, 'web-add-then-buy': true, 'buyers-30d': false },
    },
    {
      // One millisecond outside each window; a purchase at the same instant as the add is not after it.
      attributes: {},
      events: [
        { type: 'commerce.productViews', at: now - 90 * DAY - 1, payload: {} },
        { type: 'commerce.productListAdds', at: now - 80 * DAY, payload: { channel: 'web' } },
        purchase(now - 80 * DAY, 1),
        purchase(now - 73 * DAY + 1, 1),
        purchase(now - 30 * DAY - 1, 1),
        purchase(now + 1, 1),
      ],
      expect: { 'view-add-buy': false, 'web-add-then-buy': false, 'buyers-30d': false },
    },
    {
      attributes: {},
      events: [
        {
          type: 'web.webpagedetails.pageViews',
          at: now - 7 * DAY,
          payload: { channel: 'mobile', marketing: { campaignId: 'CMP-2' } },
        },
        { type: 'web.webpagedetails.pageViews', at: now - 7 * DAY + 1, payload: {} },
        { type: 'web.webpagedetails.pageViews', at: now, payload: {} },
        { type: 'commerce.checkouts', at: now - DAY, payload: { channel: null, marketing: { campaignId: 'CMP-1' } } },
      ],
      expect: { 'browsers-7d': true, 'mobile-checkout-or-campaign': true },
    },
    {
      attributes: {},
      events: [
        { type: 'commerce.checkouts', at: now - DAY, payload: { channel: null, marketing: { campaignId: 'CMP-1' } } },
      ],
      expect: { 'mobile-checkout-or-campaign': false },
    },
  ];
}

/** Rewrites profiles 1…n into the edge cases: their documents replaced, their events replaced. */
async function rewrite(client: pg.Client, list: Edge[]): Promise<void> {
  for (const [i, edge] of list.entries()) {
    const id = i + 1;
    await client.query('UPDATE profiles SET attributes = $2::jsonb WHERE id = $1', [
      id,
      JSON.stringify(edge.attributes),
    ]);
    await client.query('DELETE FROM events WHERE profile_id = $1', [id]);
    for (const [k, e] of (edge.events ?? []).entries()) {
      await client.query(
        `INSERT INTO events (sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at)
         SELECT sandbox_id, id, $2, $3, $4, $5::jsonb, 0 FROM profiles WHERE id = $1`,
        [id, e.at, e.type, `edge-${id}-${k}`, JSON.stringify(e.payload)],
      );
    }
  }
  await client.query('ANALYZE');
}

async function selects(client: pg.Client, q: { sql: string; params: unknown[] }, id: number): Promise<boolean> {
  const n = q.params.length;
  const found = await client.query(`SELECT 1 FROM (${q.sql}) AS f WHERE id = $${n + 1}`, [...q.params, id]);
  return (found.rowCount ?? 0) > 0;
}

describe.skipIf(!pgAdminUrl)('the PostgreSQL floors select what the compiled PQL selects', () => {
  let db: PgTestDatabase;
  let client: pg.Client;
  let dataset: Dataset;
  let segments: PgReferenceSegments;
  let list: Edge[];

  beforeAll(async () => {
    dataset = await prepareDataset({ profiles: 80, eventsPerProfile: 4, seed: 42, dataDir }, () => {});
    db = await freshPgDatabase('floor_pg');
    await preparePgDataset(dataset, { url: db.url, log: () => {} });
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
    list = edges(dataset.now);
    await rewrite(client, list);
    segments = await storeReferenceSegments(client, dataset, loadDefinitions());
  }, 60_000);

  afterAll(async () => {
    segments?.close();
    await client?.end();
    await db?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('each awkward profile is selected, or not, as the PQL says, by the compiled SQL and by the floor', async () => {
    const ctx = floorContext(segments);
    for (const [i, edge] of list.entries()) {
      for (const [name, member] of Object.entries(edge.expect)) {
        const def = segments.stored.find((d) => d.name === name)!;
        const compiled = await selects(client, compileForPostgres(segments, def.expressionText), i + 1);
        const floor = await selects(client, FLOORS_PG[name]!(ctx), i + 1);
        expect({ compiled, floor }, `profile ${i + 1} in ${name}`).toEqual({ compiled: member, floor: member });
      }
    }
  });

  it('every floor selects the same set as its compiled definition over the whole store', async () => {
    const floor = await runPass(client, segments, 'floor', true);
    const compiled = await runPass(client, segments, 'compiled', true);
    for (const def of segments.stored) {
      expect(floor.sets!.get(def.audienceId), def.name).toEqual(compiled.sets!.get(def.audienceId));
    }
    // The sets are not all empty: the inSegment floors read the sets made earlier in the pass.
    const size = (name: string) => floor.sets!.get(segments.stored.find((d) => d.name === name)!.audienceId)!.n;
    for (const name of ['nordics', 'nordic-buyers', 'vip-mix', 'big-spenders', 'view-add-buy']) {
      expect(size(name), name).toBeGreaterThan(0);
    }
  });
});
