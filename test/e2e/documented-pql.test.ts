import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, startTestServer, type TestServer } from './harness.js';

/**
 * Definitions written word for word as the commercial service's public PQL documentation writes
 * them (Adobe Experience League, "Profile Query Language"; sources in the GitHub repository
 * AdobeDocs/experience-platform.en under help/segmentation/), run on a fixed store through every
 * tool: validatePql, convertPql both ways, profilesMatching (SQL) and evaluateProfile (JS). The
 * expected members are worked out by hand from the store below.
 */
const PAGES = {
  streaming:
    'https://experienceleague.adobe.com/en/docs/experience-platform/segmentation/methods/streaming-segmentation',
  quantifiers: 'https://experienceleague.adobe.com/en/docs/experience-platform/segmentation/pql/logical-quantifiers',
  arrays: 'https://experienceleague.adobe.com/en/docs/experience-platform/segmentation/pql/array-functions',
  aggregation: 'https://experienceleague.adobe.com/en/docs/experience-platform/segmentation/pql/aggregation-functions',
  overview: 'https://experienceleague.adobe.com/en/docs/experience-platform/segmentation/pql/overview',
  definitionsApi: 'https://experienceleague.adobe.com/en/docs/experience-platform/segmentation/api/segment-definitions',
  conversions: 'https://experienceleague.adobe.com/en/docs/experience-platform/segmentation/api/pql-conversions',
  sourceFilters: 'https://experienceleague.adobe.com/en/docs/experience-platform/sources/api-tutorials/filter',
  maps: 'https://experienceleague.adobe.com/en/docs/experience-platform/segmentation/pql/map-functions',
};

let server: TestServer;
const AT = '2026-11-28T12:00:00.000Z';

beforeAll(async () => {
  server = await startTestServer();
  // Paths beside the built-in ones, as the documentation's examples name them (not under _tenant).
  ok(
    await server.gql(`mutation { updateProfileSchema(input: { fields: [
      { class: EVENT, path: "commerce.item.price", type: "number" },
      { class: PROFILE, path: "person.favoriteColors", type: "array<string>" },
      { class: PROFILE, path: "orders", type: "array<object>" },
      { class: PROFILE, path: "orders.order.price", type: "number" },
      { class: PROFILE, path: "person.orders", type: "array<object>" },
      { class: PROFILE, path: "person.orders.storeId", type: "string" },
      { class: PROFILE, path: "orders.storeId", type: "string" },
      { class: PROFILE, path: "person1.favoriteColors", type: "array<string>" },
      { class: PROFILE, path: "person2.favoriteColors", type: "array<string>" },
      { class: PROFILE, path: "numbers", type: "array<object>" },
      { class: PROFILE, path: "numbers.square", type: "number" }
    ] }) { name } }`),
  );
  const records = [
    {
      identities: [{ namespace: 'email', id: 'ann@x.us' }],
      attributes: {
        homeAddress: { country: 'US', stateProvince: 'CA' },
        workAddress: { country: 'US', stateProvince: 'CA' },
        person: { favoriteColors: ['red'], orders: [{ storeId: 'S1' }, { storeId: 'S2' }, { storeId: 'S1' }] },
        orders: [
          { order: { price: 10 }, storeId: 'S1' },
          { order: { price: 15.5 }, storeId: 'S2' },
        ],
        person1: { favoriteColors: ['blue', 'red', 'green', 'red'] },
        person2: { favoriteColors: ['green', 'red', 'blue', 'black'] },
        numbers: [{ square: 4 }, { square: 9 }],
      },
    },
    {
      identities: [{ namespace: 'email', id: 'bo@x.se' }],
      attributes: {
        homeAddress: { country: 'SE', stateProvince: 'Skane' },
        workAddress: { country: 'us', stateProvince: 'NY' },
        person: { favoriteColors: ['black'], orders: [{ storeId: 'S1' }, {}, { storeId: 'S1' }] },
        orders: [],
        person1: { favoriteColors: ['red', 'blue'] },
        person2: { favoriteColors: ['red', 'blue', 'green'] },
        numbers: [{ square: 1 }, {}],
      },
    },
    {
      identities: [{ namespace: 'email', id: 'cy@x.us' }],
      attributes: { homeAddress: { country: 'us' }, workAddress: { stateProvince: 'CA' } },
    },
  ];
  const r = ok(
    await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted errors { message } } }', {
      r: records,
    }),
  ).ingestProfiles;
  expect(r.errors).toEqual([]);
  const events = [
    {
      id: 'ann-1',
      identity: { namespace: 'email', id: 'ann@x.us' },
      timestamp: '2026-11-28T10:00:00Z',
      eventType: 'commerce.checkouts',
      data: {
        commerce: { item: { price: 60 }, checkouts: { value: 1 }, order: { purchaseID: 'A-1' } },
        productListItems: [{ SKU: 'PS' }],
      },
    },
    {
      id: 'bo-1',
      identity: { namespace: 'email', id: 'bo@x.se' },
      timestamp: '2026-11-20T10:00:00Z',
      eventType: 'commerce.purchases',
      data: {
        commerce: { item: { price: 70 }, order: { purchaseID: 'B-1' } },
        productListItems: [{ SKU: 'XB' }],
        metrics: { commerce: { abandons: { value: 1 } } },
      },
    },
    {
      id: 'bo-2',
      identity: { namespace: 'email', id: 'bo@x.se' },
      timestamp: '2026-11-21T10:00:00Z',
      eventType: 'commerce.purchases',
      // The same order as bo-1, a day later.
      data: {
        commerce: { item: { price: 10 }, order: { purchaseID: 'B-1' } },
        productListItems: [{ SKU: 'PS' }, { SKU: 'XB' }],
      },
    },
  ];
  const e = ok(
    await server.gql('mutation($e: [EventInput!]!) { ingestEvents(events: $e) { accepted errors { message } } }', {
      e: events,
    }),
  ).ingestEvents;
  expect(e.errors).toEqual([]);
});
afterAll(() => server.stop());

const PEOPLE = ['ann@x.us', 'bo@x.se', 'cy@x.us'];

/** Runs one documented definition through every tool and returns who qualifies, by each engine. */
async function runEverywhere(expression: string): Promise<{ normalized: string; sql: string[]; js: string[] }> {
  const v = ok(
    await server.gql(
      'query($x: String!) { validatePql(expression: $x) { valid errors { message } normalized json } }',
      {
        x: expression,
      },
    ),
  ).validatePql;
  expect(v.errors).toEqual([]);
  expect(v.valid).toBe(true);
  const convert =
    'query($x: String!, $from: PqlFormat!, $to: PqlFormat!) { convertPql(expression: $x, from: $from, to: $to) }';
  const json = ok(await server.gql(convert, { x: expression, from: 'PQL_TEXT', to: 'PQL_JSON' })).convertPql;
  expect(JSON.parse(json)).toEqual(v.json);
  const back = ok(await server.gql(convert, { x: json, from: 'PQL_JSON', to: 'PQL_TEXT' })).convertPql;
  expect(back).toBe(v.normalized);
  const matching = ok(
    await server.gql(
      'query($x: String!, $at: DateTime) { profilesMatching(expression: $x, at: $at, first: 50) { edges { node { identities { value } } } } }',
      { x: expression, at: AT },
    ),
  ).profilesMatching;
  const sql = matching.edges.map((edge: any) => edge.node.identities[0].value).sort();
  const js: string[] = [];
  for (const id of PEOPLE) {
    const answer = ok(
      await server.gql(
        'query($id: String!, $x: String!, $at: DateTime) { evaluateProfile(identity: { namespace: "email", id: $id }, expression: $x, at: $at) { qualifies } }',
        { id, x: expression, at: AT },
      ),
    ).evaluateProfile;
    if (answer.qualifies) js.push(id);
  }
  return { normalized: v.normalized, sql, js: js.sort() };
}

describe('field paths as the documentation writes them', () => {
  it(`runs a built-in XDM path on a fresh sandbox (${PAGES.streaming})`, async () => {
    // Profile only: home country US, compared case-insensitively: ann (US) and cy (us).
    const r = await runEverywhere('homeAddress.country.equals("US", false)');
    expect(r.sql).toEqual(['ann@x.us', 'cy@x.us']);
    expect(r.js).toEqual(r.sql);
  });

  it(`runs a profile attribute with a streaming CHAIN on built-in paths (${PAGES.streaming})`, async () => {
    // Work country US: ann and bo; a checkout today (28 Nov): only ann.
    const r = await runEverywhere(
      'workAddress.country.equals("US", false) and CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", false)) WHEN(today)])',
    );
    expect(r.sql).toEqual(['ann@x.us']);
    expect(r.js).toEqual(r.sql);
  });

  it(`reads a field declared below a built-in object, not under _tenant (${PAGES.arrays})`, async () => {
    // Favourite colours: ann [red], bo [black], cy none.
    const r = await runEverywhere('person.favoriteColors.intersects(["red", "blue", "green"])');
    expect(r.sql).toEqual(['ann@x.us']);
    expect(r.js).toEqual(r.sql);
  });

  it('refuses a declaration that conflicts with a built-in field, naming it', async () => {
    const retype = await server.gql(
      'mutation { updateProfileSchema(input: { fields: [{ class: PROFILE, path: "homeAddress.country", type: "number" }] }) { name } }',
    );
    expect(retype.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(retype.errors?.[0]?.message).toContain('"homeAddress.country" is the built-in profile field of type string');
    const below = await server.gql(
      'mutation { updateProfileSchema(input: { fields: [{ class: PROFILE, path: "person.gender.code", type: "string" }] }) { name } }',
    );
    expect(below.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(below.errors?.[0]?.message).toContain('"person.gender" is string, not an object');
    const short = ok(
      await server.gql(
        'mutation { updateProfileSchema(input: { fields: [{ class: PROFILE, path: "orders", type: "array<object>" }, { class: PROFILE, path: "orders.storeId", type: "string" }] }) { profileFields { path type } } }',
      ),
    ).updateProfileSchema.profileFields;
    expect(short).toContainEqual({ path: 'orders.storeId', type: 'string' });
    expect(short).toContainEqual({ path: 'workAddress.country', type: 'string' });
  });
});

describe('quantifiers with several bindings and their conditions', () => {
  it(`exists E from xEvent where (…), I from E.productListItems where … (${PAGES.quantifiers})`, async () => {
    // An event over 50 with an item PS: ann's (60, PS). bo's 70 has only XB; his PS event is 10.
    const r = await runEverywhere(
      'exists E from xEvent where (E.commerce.item.price > 50), I from E.productListItems where I.SKU = "PS"',
    );
    expect(r.normalized).toBe(
      'exists E from xEvent where (E.commerce.item.price > 50), I from E.productListItems where I.SKU = "PS"',
    );
    expect(r.sql).toEqual(['ann@x.us']);
    expect(r.js).toEqual(r.sql);
  });

  it(`forall E from xEvent where (…), I from E.productListItems where … (${PAGES.quantifiers})`, async () => {
    // Every event over 50 has only PS items: ann (one such event, PS); bo's 70 event has XB;
    // cy has no event over 50, so it holds for him as forall does over nothing.
    const r = await runEverywhere(
      'forall E from xEvent where (E.commerce.item.price > 50), I from E.productListItems where I.SKU = "PS"',
    );
    expect(r.sql).toEqual(['ann@x.us', 'cy@x.us']);
    expect(r.js).toEqual(r.sql);
  });
});

describe('arrays where a condition is expected mean non-empty', () => {
  it(`xEvent[productListItems[SKU = "PS"]] (${PAGES.overview})`, async () => {
    // An event with a PS item: ann's, and bo's second.
    const r = await runEverywhere('xEvent[productListItems[SKU = "PS"]]');
    expect(r.sql).toEqual(['ann@x.us', 'bo@x.se']);
    expect(r.js).toEqual(r.sql);
  });

  it(`a parent reference inside nested filters: ^^.workAddress (${PAGES.overview})`, async () => {
    // A PS item on an event of someone whose work state is CA: ann (bo works in NY).
    const r = await runEverywhere('xEvent[productListItems[SKU = "PS" and ^^.workAddress.stateProvince = "CA"]]');
    expect(r.sql).toEqual(['ann@x.us']);
    expect(r.js).toEqual(r.sql);
  });

  it(`select var1 from xEvent where var1.… is a whole definition (${PAGES.streaming})`, async () => {
    // A checkout count above zero: ann's event only.
    const r = await runEverywhere('select var1 from xEvent where var1.commerce.checkouts.value > 0');
    expect(r.sql).toEqual(['ann@x.us']);
    expect(r.js).toEqual(r.sql);
  });
});

describe('collection functions', () => {
  it(`a.filter(cond) is a[cond] (${PAGES.arrays})`, async () => {
    // Orders over 12: ann's 15.5 only.
    const r = await runEverywhere('orders.filter(order.price > 12).count() > 0');
    expect(r.normalized).toBe('orders.filter(order.price > 12).count() > 0');
    expect(r.sql).toEqual(['ann@x.us']);
    expect(r.js).toEqual(r.sql);
  });
});

describe('map, groupBy and array equality', () => {
  const VALUE = `query($id: String!, $x: String!) {
    evaluateProfile(identity: { namespace: "email", id: $id }, expression: $x) { qualifies value } }`;
  const valuesOf = async (expression: string) => {
    const out: unknown[] = [];
    for (const id of PEOPLE) out.push(ok(await server.gql(VALUE, { id, x: expression })).evaluateProfile.value);
    return out;
  };
  const typeOf = async (expression: string) =>
    ok(
      await server.gql('query($x: String!) { validatePql(expression: $x) { valid type errors { message } } }', {
        x: expression,
      }),
    ).validatePql;

  it(`person1.favoriteColors.intersection(person2.favoriteColors) = ["red", "blue", "green"] (${PAGES.arrays})`, async () => {
    // Equal as sets: ann's common colours are blue, red, green (in her order); bo's only red, blue.
    const r = await runEverywhere(
      'person1.favoriteColors.intersection(person2.favoriteColors) = ["red", "blue", "green"]',
    );
    expect(r.normalized).toBe('person1.favoriteColors.intersection(person2.favoriteColors) = ["red", "blue", "green"]');
    expect(r.sql).toEqual(['ann@x.us']);
    expect(r.js).toEqual(r.sql);
    // != needs both arrays: bo's differ; cy has neither, so neither = nor != holds for him.
    const differ = await runEverywhere(
      'person1.favoriteColors.intersection(person2.favoriteColors) != ["red", "blue", "green"]',
    );
    expect(differ.sql).toEqual(['bo@x.se']);
    expect(differ.js).toEqual(differ.sql);
  });

  it(`orders.groupBy(storeId) (${PAGES.arrays})`, async () => {
    expect(await typeOf('orders.groupBy(storeId)')).toEqual({ valid: true, type: 'map<array<object>>', errors: [] });
    // ann's two orders are at S1 and S2; bo has none (an empty map); cy no orders field.
    expect(await valuesOf('orders.groupBy(storeId)')).toEqual([
      { S1: [{ order: { price: 10 }, storeId: 'S1' }], S2: [{ order: { price: 15.5 }, storeId: 'S2' }] },
      {},
      null,
    ]);
    // As conditions, read through keys() and get(…), in both engines.
    const stores = await runEverywhere('orders.groupBy(storeId).keys().count() > 1');
    expect(stores.sql).toEqual(['ann@x.us']);
    expect(stores.js).toEqual(stores.sql);
    const s2 = await runEverywhere('orders.groupBy(storeId).get("S2").sum(order.price) > 15');
    expect(s2.sql).toEqual(['ann@x.us']);
    expect(s2.js).toEqual(s2.sql);
    expect(await valuesOf('orders.groupBy(storeId).keys()')).toEqual([['S1', 'S2'], [], null]);
    const bare = await typeOf('orders.groupBy(storeId).count() > 0');
    expect(bare.valid).toBe(false);
    expect(bare.errors[0].message).toContain('read a groupBy with .keys(), .get("key") or .values()');
  });

  it(`numbers.map(square) (${PAGES.arrays})`, async () => {
    expect(await typeOf('numbers.map(square)')).toEqual({ valid: true, type: 'array<number>', errors: [] });
    // The present values, in order: bo's second number has no square.
    expect(await valuesOf('numbers.map(square)')).toEqual([[4, 9], [1], null]);
    const r = await runEverywhere('numbers.map(square).sum() > 10');
    expect(r.normalized).toBe('numbers.map(square).sum() > 10');
    expect(r.sql).toEqual(['ann@x.us']);
    expect(r.js).toEqual(r.sql);
    const equal = await runEverywhere('numbers.map(square) = [9, 4]');
    expect(equal.sql).toEqual(['ann@x.us']);
    expect(equal.js).toEqual(equal.sql);
  });
});

describe('lambdas, mapEntry and the groups of a groupBy', () => {
  const VALUE = `query($id: String!, $x: String!, $at: DateTime) {
    evaluateProfile(identity: { namespace: "email", id: $id }, expression: $x, at: $at) { value } }`;
  const valuesOf = async (expression: string) => {
    const out: unknown[] = [];
    for (const id of PEOPLE) out.push(ok(await server.gql(VALUE, { id, x: expression, at: AT })).evaluateProfile.value);
    return out;
  };
  const check = async (expression: string) =>
    ok(
      await server.gql('query($x: String!) { validatePql(expression: $x) { valid type errors { message } } }', {
        x: expression,
      }),
    ).validatePql;

  it(`map with a value expression of each item (${PAGES.arrays})`, async () => {
    // ann's orders cost 10 and 15.5; bo has none; cy no orders field.
    expect(await check('orders.map(o => o.order.price * 2)')).toEqual({
      valid: true,
      type: 'array<number>',
      errors: [],
    });
    expect(await valuesOf('orders.map(o => o.order.price * 2)')).toEqual([[20, 31], [], null]);
    expect(await valuesOf('person.favoriteColors.map(c => c.upper())')).toEqual([['RED'], ['BLACK'], null]);
    // Event prices doubled: ann 60·2 = 120, bo (70 + 10)·2 = 160.
    const r = await runEverywhere('xEvent.map(e => e.commerce.item.price * 2).sum() > 130');
    expect(r.normalized).toBe('xEvent.map(e => e.commerce.item.price * 2).sum() > 130');
    expect(r.sql).toEqual(['bo@x.se']);
    expect(r.js).toEqual(r.sql);
    const red = await runEverywhere('"RED" in person.favoriteColors.map(c => c.upper())');
    expect(red.sql).toEqual(['ann@x.us']);
    expect(red.js).toEqual(red.sql);
    // The filter of the documentation written with a lambda: orders over 12, ann's 15.5.
    const filtered = await runEverywhere('orders.filter(o => o.order.price > 12).count() > 0');
    expect(filtered.sql).toEqual(['ann@x.us']);
    expect(filtered.js).toEqual(filtered.sql);
  });

  it(`mapEntry builds a map, read with get/keys/values (${PAGES.maps}; mapEntry itself has no public definition: docs/pql.md §5)`, async () => {
    const lastByOrder = 'xEvent.map(e => mapEntry(e.commerce.order.purchaseID, e.timestamp))';
    expect(await check(lastByOrder)).toEqual({ valid: true, type: 'map<datetime>', errors: [] });
    // bo's order B-1 has two events (20 and 21 Nov): the later one wins.
    expect(await valuesOf(lastByOrder)).toEqual([
      { 'A-1': '2026-11-28T10:00:00.000Z' },
      { 'B-1': '2026-11-21T10:00:00.000Z' },
      {},
    ]);
    const later = await runEverywhere(`${lastByOrder}.get("B-1") occurs on date("2026-11-21")`);
    expect(later.normalized).toBe(`${lastByOrder}.get("B-1") occurs on date("2026-11-21")`);
    expect(later.sql).toEqual(['bo@x.se']);
    expect(later.js).toEqual(later.sql);
    const one = await runEverywhere(`${lastByOrder}.keys().count() = 1`);
    expect(one.sql).toEqual(['ann@x.us', 'bo@x.se']);
    expect(one.js).toEqual(one.sql);
    // Prices by order: ann's A-1 60; bo's B-1 10 (the later event's).
    const prices = 'xEvent.map(e => mapEntry(e.commerce.order.purchaseID, e.commerce.item.price)).values()';
    expect(await valuesOf(prices)).toEqual([[60], [10], []]);
    const cheap = await runEverywhere(`${prices}.sum() < 50`);
    expect(cheap.sql).toEqual(['bo@x.se', 'cy@x.us']);
    expect(cheap.js).toEqual(cheap.sql);
    // Anywhere but the body of a map lambda it is an error saying where it goes.
    const misplaced = await check('mapEntry("a", 1).get("a") = 1');
    expect(misplaced.valid).toBe(false);
    expect(misplaced.errors[0].message).toContain('it can only be the body of a map lambda');
  });

  it(`groupBy(…).values(): the groups (${PAGES.arrays})`, async () => {
    // ann ordered at S1, S2, S1; bo at S1 twice (and once without a store); cy never.
    expect(await check('person.orders.groupBy(storeId).values()')).toEqual({
      valid: true,
      type: 'array<array<object>>',
      errors: [],
    });
    expect(await valuesOf('person.orders.groupBy(storeId).values()')).toEqual([
      [[{ storeId: 'S1' }, { storeId: 'S1' }], [{ storeId: 'S2' }]],
      [[{ storeId: 'S1' }, { storeId: 'S1' }]],
      null,
    ]);
    expect(await valuesOf('person.orders.groupBy(storeId).values().map(g => g.count())')).toEqual([[2, 1], [2], null]);
    const stores = await runEverywhere('person.orders.groupBy(storeId).values().count() > 1');
    expect(stores.sql).toEqual(['ann@x.us']);
    expect(stores.js).toEqual(stores.sql);
    const repeat = await runEverywhere('person.orders.groupBy(storeId).values().exists(g => g.count() >= 2)');
    expect(repeat.normalized).toBe('person.orders.groupBy(storeId).values().exists(g => g.count() >= 2)');
    expect(repeat.sql).toEqual(['ann@x.us', 'bo@x.se']);
    expect(repeat.js).toEqual(repeat.sql);
    const single = await runEverywhere('person.orders.groupBy(storeId).values().forall(g => g.count() = 1)');
    // cy has no orders: forall holds over no groups.
    expect(single.sql).toEqual(['cy@x.us']);
    expect(single.js).toEqual(single.sql);
  });
});

describe('distinct on a projected path', () => {
  it(`person.orders.storeId.distinct().count() > 1 (${PAGES.arrays})`, async () => {
    // Stores ordered from: ann S1, S2 (two); bo S1 only (one order has no store); cy no orders.
    const r = await runEverywhere('person.orders.storeId.distinct().count() > 1');
    expect(r.sql).toEqual(['ann@x.us']);
    expect(r.js).toEqual(r.sql);
    const v = ok(
      await server.gql('query($x: String!) { validatePql(expression: $x) { type } }', {
        x: 'person.orders.storeId.distinct()',
      }),
    ).validatePql;
    expect(v.type).toBe('array<string>');
    const values: unknown[] = [];
    for (const id of PEOPLE) {
      values.push(
        ok(
          await server.gql(
            'query($id: String!, $x: String!) { evaluateProfile(identity: { namespace: "email", id: $id }, expression: $x) { value } }',
            { id, x: 'person.orders.storeId.distinct()' },
          ),
        ).evaluateProfile.value,
      );
    }
    expect(values).toEqual([['S1', 'S2'], ['S1'], null]);
  });
});

describe('CHAIN steps with COUNT and WHERE', () => {
  it(`COUNT(n): the step matches n events in the window (${PAGES.streaming})`, async () => {
    // bo made two purchases (20 and 21 Nov), within 30 days of 28 Nov; nobody made three.
    const two = await runEverywhere(
      'CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.purchases", false)) COUNT(2) WHEN(<= 30 days before now)])',
    );
    expect(two.normalized).toBe(
      'CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.purchases", false)) COUNT(2) WHEN(<= 30 days before now)])',
    );
    expect(two.sql).toEqual(['bo@x.se']);
    expect(two.js).toEqual(two.sql);
    const three = await runEverywhere(
      'CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.purchases", false)) COUNT(3) WHEN(<= 30 days before now)])',
    );
    expect(three.sql).toEqual([]);
    expect(three.js).toEqual([]);
  });

  it(`WHERE(…): a condition on the step's event beyond WHAT, with WHEN (${PAGES.streaming})`, async () => {
    // bo's purchase of 70 (20 Nov) is followed a day later by another purchase; ann bought nothing.
    const r = await runEverywhere(
      'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "commerce.purchases") WHERE(commerce.item.price > 50), C1: WHAT(eventType = "commerce.purchases") WHEN(<= 2 days after C0)])',
    );
    expect(r.sql).toEqual(['bo@x.se']);
    expect(r.js).toEqual(r.sql);
    // The second purchase is of 10, so asking the WHERE of it finds nobody.
    const none = await runEverywhere(
      'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "commerce.purchases"), C1: WHAT(eventType = "commerce.purchases") WHERE(commerce.item.price > 50) WHEN(<= 2 days after C0)])',
    );
    expect(none.sql).toEqual([]);
    expect(none.js).toEqual([]);
  });
});

describe('a path through an array', () => {
  it(`xEvent.metrics.commerce.abandons.value > 0 means some event's value (${PAGES.definitionsApi})`, async () => {
    // Only bo's first event abandoned a cart.
    const r = await runEverywhere('xEvent.metrics.commerce.abandons.value > 0');
    expect(r.normalized).toBe('xEvent.metrics.commerce.abandons.value > 0');
    expect(r.sql).toEqual(['bo@x.se']);
    expect(r.js).toEqual(r.sql);
  });

  it(`occurs and in on a path through an array (${PAGES.definitionsApi})`, async () => {
    // Only ann has an event today (28 Nov, 10:00), her checkout.
    const today = await runEverywhere('xEvent.timestamp occurs today');
    expect(today.sql).toEqual(['ann@x.us']);
    expect(today.js).toEqual(today.sql);
    const types = await runEverywhere('xEvent.eventType in ["commerce.checkouts", "web.pageview"]');
    expect(types.sql).toEqual(['ann@x.us']);
    expect(types.js).toEqual(types.sql);
  });

  it(`a projected path compared with a string (${PAGES.definitionsApi})`, async () => {
    // ann's only event is a checkout; bo's two are purchases; cy has none.
    const r = await runEverywhere('xEvent.eventType = "commerce.purchases"');
    expect(r.sql).toEqual(['bo@x.se']);
    expect(r.js).toEqual(r.sql);
  });
});

describe('the lambda whole-definition form', () => {
  it(`(Profile) => Profile.homeAddress.stateProvince = Profile.workAddress.stateProvince (${PAGES.overview})`, async () => {
    // Same home and work state: ann (CA, CA); bo Skane vs NY; cy has no home state.
    const r = await runEverywhere('(Profile) => Profile.homeAddress.stateProvince = Profile.workAddress.stateProvince');
    expect(r.normalized).toBe(
      'let Profile = ($1) in (Profile.homeAddress.stateProvince = Profile.workAddress.stateProvince)',
    );
    expect(r.sql).toEqual(['ann@x.us']);
    expect(r.js).toEqual(r.sql);
  });
});

describe('value expressions', () => {
  const VALUE = `query($id: String!, $x: String!, $at: DateTime) {
    evaluateProfile(identity: { namespace: "email", id: $id }, expression: $x, at: $at) { qualifies value } }`;
  const valuesOf = async (expression: string) => {
    const out: unknown[] = [];
    for (const id of PEOPLE) {
      const r = ok(await server.gql(VALUE, { id, x: expression, at: AT })).evaluateProfile;
      expect(r.qualifies).toBeNull();
      out.push(r.value);
    }
    return out;
  };
  const typeOf = async (expression: string) =>
    ok(await server.gql('query($x: String!) { validatePql(expression: $x) { valid type } }', { x: expression }))
      .validatePql;

  it(`orders.count(), orders.sum(order.price), orders.max(order.price) (${PAGES.aggregation})`, async () => {
    // ann has orders of 10 and 15.5, bo none ([]), cy no orders field.
    expect(await typeOf('orders.count()')).toEqual({ valid: true, type: 'number' });
    expect(await valuesOf('orders.count()')).toEqual([2, 0, 0]);
    expect(await valuesOf('orders.sum(order.price)')).toEqual([25.5, 0, 0]);
    expect(await valuesOf('orders.max(order.price)')).toEqual([15.5, null, null]);
    // As a definition it must be a comparison; the comparison runs in both engines.
    const r = await runEverywhere('orders.count() > 1');
    expect(r.sql).toEqual(['ann@x.us']);
    expect(r.js).toEqual(r.sql);
    const notDefinition = await server.gql('query($x: String!) { profilesMatching(expression: $x) { totalCount } }', {
      x: 'orders.count()',
    });
    expect(notDefinition.errors?.[0]?.extensions?.code).toBe('PQL_TYPE_ERROR');
  });

  it(`if(…) with a string value, and a datetime value as ISO text (${PAGES.overview})`, async () => {
    expect(await typeOf('if(homeAddress.country = "US", "domestic", "abroad")')).toEqual({
      valid: true,
      type: 'string',
    });
    // cy's country is "us", which = compares case-sensitively.
    expect(await valuesOf('if(homeAddress.country = "US", "domestic", "abroad")')).toEqual([
      'domestic',
      'abroad',
      'abroad',
    ]);
    expect(await valuesOf('xEvent.head().timestamp')).toEqual([
      '2026-11-28T10:00:00.000Z',
      '2026-11-20T10:00:00.000Z',
      null,
    ]);
  });
});

describe('the documented JSON form', () => {
  const CONVERT =
    'query($x: String!, $from: PqlFormat!, $to: PqlFormat!) { convertPql(expression: $x, from: $from, to: $to) }';

  it(`convertPql writes the conversion example's tree byte for byte (${PAGES.conversions})`, async () => {
    const documented =
      '{"nodeType":"fnApply","fnName":"=","params":[{"nodeType":"fieldLookup","fieldName":"country","object":{"nodeType":"fieldLookup","fieldName":"workAddress","object":{"nodeType":"parameterReference","position":1}}},{"nodeType":"literal","literalType":"String","value":"US"}]}';
    const json = ok(
      await server.gql(CONVERT, { x: 'workAddress.country = "US"', from: 'PQL_TEXT', to: 'PQL_JSON' }),
    ).convertPql;
    expect(json).toBe(documented);
    const text = ok(await server.gql(CONVERT, { x: documented, from: 'PQL_JSON', to: 'PQL_TEXT' })).convertPql;
    expect(text).toBe('workAddress.country = "US"');
    // And it runs, read from the documented tree: work country exactly "US" is ann only (bo's is "us").
    const matching = ok(
      await server.gql(
        'query($x: String!, $f: PqlFormat) { profilesMatching(expression: $x, format: $f, first: 10) { edges { node { identities { value } } } } }',
        { x: documented, f: 'PQL_JSON' },
      ),
    );
    expect(matching.profilesMatching.edges.map((e: any) => e.node.identities[0].value)).toEqual(['ann@x.us']);
  });

  it(`reads a source-filter tree (no object, untyped literals, NOT, isNull) (${PAGES.sourceFilters})`, async () => {
    const documented = {
      nodeType: 'fnApply',
      fnName: 'NOT',
      params: [
        { nodeType: 'fnApply', fnName: 'isNull', params: [{ nodeType: 'fieldLookup', fieldName: 'complaint_type' }] },
      ],
    };
    const text = ok(
      await server.gql(CONVERT, { x: JSON.stringify(documented), from: 'PQL_JSON', to: 'PQL_TEXT' }),
    ).convertPql;
    expect(text).toBe('not complaint_type.isNull()');
    const json = ok(await server.gql(CONVERT, { x: text, from: 'PQL_TEXT', to: 'PQL_JSON' })).convertPql;
    expect(JSON.parse(json)).toEqual({
      nodeType: 'fnApply',
      fnName: 'not',
      params: [
        {
          nodeType: 'fnApply',
          fnName: '.isNull',
          params: [
            {
              nodeType: 'fieldLookup',
              fieldName: 'complaint_type',
              object: { nodeType: 'parameterReference', position: 1 },
            },
          ],
        },
      ],
    });
  });
});
