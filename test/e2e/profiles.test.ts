import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

const INGEST_PROFILES = `mutation($records: [ProfileInput!]!) {
  ingestProfiles(records: $records) { accepted rejected errors { index message code } profileIds }
}`;
const INGEST_EVENTS = `mutation($events: [EventInput!]!) {
  ingestEvents(events: $events) { accepted rejected duplicates errors { index message code } profileIds }
}`;
const PROFILE_BY_IDENTITY = `query($ns: String!, $id: String!) {
  profile(identity: { namespace: $ns, id: $id }) {
    id identities { namespace value } attributes
    events(first: 10) { totalCount edges { node { eventId eventType timestamp data } } }
  }
}`;

describe('profile store', () => {
  it('ingests 1,000 profiles and 5,000 events in one call each and reads them back by identity', async () => {
    const records = Array.from({ length: 1000 }, (_, i) => ({
      identities: [
        { namespace: 'email', id: `p${i}@example.com` },
        { namespace: 'crmId', id: `C-${i}` },
      ],
      attributes: {
        person: { name: { firstName: `First${i}` } },
        loyalty: { points: i, tier: i % 2 ? 'gold' : 'silver' },
      },
    }));
    const r1 = ok(await server.gql(INGEST_PROFILES, { records }));
    expect(r1.ingestProfiles).toMatchObject({ accepted: 1000, rejected: 0, errors: [] });
    expect(new Set(r1.ingestProfiles.profileIds).size).toBe(1000);

    const events = Array.from({ length: 5000 }, (_, k) => ({
      id: `e-${k}`,
      identity: { namespace: 'crmId', id: `C-${k % 1000}` },
      timestamp: new Date(Date.UTC(2026, 10, 1) + k * 60_000).toISOString(),
      eventType: k % 5 === 0 ? 'commerce.purchases' : 'web.webpagedetails.pageViews',
      data: k % 5 === 0 ? { commerce: { order: { priceTotal: k / 10, currencyCode: 'EUR' } } } : { channel: 'web' },
    }));
    const r2 = ok(await server.gql(INGEST_EVENTS, { events }));
    expect(r2.ingestEvents).toMatchObject({ accepted: 5000, rejected: 0, duplicates: 0 });

    const p = ok(await server.gql(PROFILE_BY_IDENTITY, { ns: 'email', id: 'p7@example.com' })).profile;
    expect(p.attributes).toEqual({ person: { name: { firstName: 'First7' } }, loyalty: { points: 7, tier: 'gold' } });
    expect(p.identities).toEqual([
      { namespace: 'crmId', value: 'C-7' },
      { namespace: 'email', value: 'p7@example.com' },
    ]);
    expect(p.events.totalCount).toBe(5);
    // Newest first: events 4007, 3007, 2007, 1007, 7.
    expect(p.events.edges.map((e: any) => e.node.eventId)).toEqual(['e-4007', 'e-3007', 'e-2007', 'e-1007', 'e-7']);
    expect(p.events.edges[4].node.data).toEqual({ channel: 'web' });

    const byId = ok(
      await server.gql('query($id: ID!) { node(id: $id) { ... on Profile { identities { value } } } }', { id: p.id }),
    );
    expect(byId.node.identities).toHaveLength(2);
  });

  it('merges a record into the profile its identity names, later values winning and arrays replaced', async () => {
    const records = [
      {
        identities: [{ namespace: 'email', id: 'm@x.io' }],
        attributes: { loyalty: { tier: 'silver', points: 10 }, preferences: { categories: ['a', 'b'] } },
      },
    ];
    ok(await server.gql(INGEST_PROFILES, { records }));
    ok(
      await server.gql(INGEST_PROFILES, {
        records: [
          {
            identities: [{ namespace: 'email', id: 'm@x.io' }],
            attributes: { loyalty: { tier: 'gold' }, preferences: { categories: ['c'] } },
          },
        ],
      }),
    );
    const p = ok(await server.gql(PROFILE_BY_IDENTITY, { ns: 'email', id: 'm@x.io' })).profile;
    expect(p.attributes).toEqual({ loyalty: { tier: 'gold', points: 10 }, preferences: { categories: ['c'] } });
  });

  it('joins two profiles into one when a record names identities of both (identity stitching)', async () => {
    const r = ok(
      await server.gql(INGEST_PROFILES, {
        records: [
          {
            identities: [{ namespace: 'email', id: 'ann@example.se' }],
            attributes: { homeAddress: { city: 'Malmö' } },
          },
          { identities: [{ namespace: 'crmId', id: 'C-ANN' }], attributes: { loyalty: { tier: 'gold' } } },
        ],
      }),
    ).ingestProfiles;
    expect(r.profileIds[0]).not.toBe(r.profileIds[1]);
    ok(
      await server.gql(INGEST_EVENTS, {
        events: [
          {
            id: 'ann-1',
            identity: { namespace: 'email', id: 'ann@example.se' },
            timestamp: '2026-11-01T10:00:00Z',
            eventType: 'a',
          },
          {
            id: 'ann-2',
            identity: { namespace: 'crmId', id: 'C-ANN' },
            timestamp: '2026-11-02T10:00:00Z',
            eventType: 'b',
          },
        ],
      }),
    );
    const joined = ok(
      await server.gql(INGEST_PROFILES, {
        records: [
          {
            identities: [
              { namespace: 'email', id: 'ann@example.se' },
              { namespace: 'crmId', id: 'C-ANN' },
              { namespace: 'phone', id: '+46700000' },
            ],
            attributes: { person: { name: { firstName: 'Ann' } } },
          },
        ],
      }),
    ).ingestProfiles;
    expect(joined.profileIds[0]).toBe(r.profileIds[0]);
    const p = ok(await server.gql(PROFILE_BY_IDENTITY, { ns: 'crmId', id: 'C-ANN' })).profile;
    expect(p.id).toBe(r.profileIds[0]);
    expect(p.identities.map((i: any) => i.namespace).sort()).toEqual(['crmId', 'email', 'phone']);
    expect(p.attributes).toEqual({
      homeAddress: { city: 'Malmö' },
      loyalty: { tier: 'gold' },
      person: { name: { firstName: 'Ann' } },
    });
    expect(p.events.edges.map((e: any) => e.node.eventId)).toEqual(['ann-2', 'ann-1']);
    const gone = ok(await server.gql('query($id: ID!) { node(id: $id) { id } }', { id: r.profileIds[1] }));
    expect(gone.node).toBeNull();
  });

  it('stores an event id seen twice once', async () => {
    const event = {
      id: 'dup-1',
      identity: { namespace: 'email', id: 'dup@x.io' },
      timestamp: '2026-11-03T08:00:00.000Z',
      eventType: 'x',
    };
    const first = ok(await server.gql(INGEST_EVENTS, { events: [event] })).ingestEvents;
    const second = ok(await server.gql(INGEST_EVENTS, { events: [event, event] })).ingestEvents;
    expect(first).toMatchObject({ accepted: 1, duplicates: 0 });
    expect(second).toMatchObject({ accepted: 2, duplicates: 2 });
    const p = ok(await server.gql(PROFILE_BY_IDENTITY, { ns: 'email', id: 'dup@x.io' })).profile;
    expect(p.events.totalCount).toBe(1);
  });

  it('reports a record with a wrong type by index while the rest land', async () => {
    const r = ok(
      await server.gql(INGEST_PROFILES, {
        records: [
          { identities: [{ namespace: 'email', id: 'ok1@x.io' }], attributes: { loyalty: { points: 5 } } },
          { identities: [{ namespace: 'email', id: 'bad@x.io' }], attributes: { loyalty: { points: 'many' } } },
          { identities: [{ namespace: 'email', id: 'ok2@x.io' }], attributes: { person: { birthDate: '1990-02-03' } } },
          { identities: [{ namespace: 'email', id: 'bad2@x.io' }], attributes: { shoeSize: 42 } },
          { identities: [{ namespace: '', id: 'x' }], attributes: {} },
        ],
      }),
    ).ingestProfiles;
    expect(r.accepted).toBe(2);
    expect(r.rejected).toBe(3);
    expect(r.errors).toEqual([
      { index: 1, code: 'BAD_USER_INPUT', message: 'Field "loyalty.points" must be a number, got the string "many"' },
      {
        index: 3,
        code: 'BAD_USER_INPUT',
        message: expect.stringContaining('Unknown field "shoeSize"'),
      },
      { index: 4, code: 'BAD_USER_INPUT', message: 'Invalid identity: identity namespace is empty' },
    ]);
    expect(r.errors[1].message).toContain('updateProfileSchema');
    const p = ok(await server.gql(PROFILE_BY_IDENTITY, { ns: 'email', id: 'ok2@x.io' })).profile;
    expect(p.attributes.person.birthDate).toBe('1990-02-03T00:00:00.000Z');
    expect(ok(await server.gql(PROFILE_BY_IDENTITY, { ns: 'email', id: 'bad@x.io' })).profile).toBeNull();
  });

  it('accepts a _tenant field after updateProfileSchema adds it', async () => {
    const record = {
      identities: [{ namespace: 'email', id: 'tenant@x.io' }],
      attributes: { _tenant: { shoeSize: 42 } },
    };
    const before = ok(await server.gql(INGEST_PROFILES, { records: [record] })).ingestProfiles;
    expect(before.rejected).toBe(1);
    const schema = ok(
      await server.gql(`mutation { updateProfileSchema(input: { fields: [{ class: PROFILE, path: "_tenant.shoeSize", type: "number" }] }) {
        profileFields { path type } } }`),
    ).updateProfileSchema;
    expect(schema.profileFields).toContainEqual({ path: '_tenant.shoeSize', type: 'number' });
    const after = ok(await server.gql(INGEST_PROFILES, { records: [record] })).ingestProfiles;
    expect(after.accepted).toBe(1);
    const bad = await server.gql(
      'mutation { updateProfileSchema(input: { fields: [{ class: PROFILE, path: "shoe size", type: "number" }] }) { name } }',
    );
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('enforces the guardrails per record', async () => {
    const many = Array.from({ length: 51 }, (_, i) => ({ namespace: 'email', id: `g${i}@x.io` }));
    const big = 'x'.repeat(101 * 1024);
    const r = ok(
      await server.gql(INGEST_PROFILES, {
        records: [
          { identities: many, attributes: {} },
          { identities: [{ namespace: 'email', id: 'big@x.io' }], attributes: { person: { gender: big } } },
          { identities: [{ namespace: 'email', id: 'fine@x.io' }], attributes: {} },
        ],
      }),
    ).ingestProfiles;
    expect(r.accepted).toBe(1);
    expect(r.errors.map((e: any) => [e.index, e.code])).toEqual([
      [0, 'GUARDRAIL'],
      [1, 'GUARDRAIL'],
    ]);
  });

  it('keeps sandbox a and sandbox b apart', async () => {
    ok(await server.gql('mutation { a: createSandbox(name: "a") { name } b: createSandbox(name: "b") { name } }'));
    const a = { 'x-sandbox-name': 'a' };
    const b = { 'x-sandbox-name': 'b' };
    const rec = {
      identities: [{ namespace: 'email', id: 'only-in-a@x.io' }],
      attributes: { loyalty: { tier: 'gold' } },
    };
    const ingested = ok(await server.gql(INGEST_PROFILES, { records: [rec] }, a)).ingestProfiles;
    const countA = ok(await server.gql('{ profiles { totalCount } }', undefined, a)).profiles.totalCount;
    const countB = ok(await server.gql('{ profiles { totalCount } }', undefined, b)).profiles.totalCount;
    expect([countA, countB]).toEqual([1, 0]);
    const inB = ok(await server.gql(PROFILE_BY_IDENTITY, { ns: 'email', id: 'only-in-a@x.io' }, b)).profile;
    expect(inB).toBeNull();
    const nodeInB = ok(await server.gql('query($id: ID!) { node(id: $id) { id } }', { id: ingested.profileIds[0] }, b));
    expect(nodeInB.node).toBeNull();
    const del = await server.gql(
      'mutation { deleteProfile(identity: { namespace: "email", id: "only-in-a@x.io" }) }',
      undefined,
      b,
    );
    expect(del.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const unknown = await server.gql('{ profiles { totalCount } }', undefined, { 'x-sandbox-name': 'nope' });
    expect(unknown.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const dupe = await server.gql('mutation { createSandbox(name: "a") { name } }');
    expect(dupe.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    const badName = await server.gql('mutation { createSandbox(name: "Bad Name") { name } }');
    expect(badName.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('pages profiles forwards and backwards and filters by identity and update time', async () => {
    const page1 = ok(
      await server.gql('{ profiles(first: 3) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }'),
    ).profiles;
    expect(page1.edges).toHaveLength(3);
    const page2 = ok(
      await server.gql(
        'query($a: String) { profiles(first: 3, after: $a) { edges { node { id } } pageInfo { hasPreviousPage } } }',
        {
          a: page1.pageInfo.endCursor,
        },
      ),
    ).profiles;
    const back = ok(
      await server.gql('query($b: String) { profiles(last: 2, before: $b) { edges { node { id } } } }', {
        b: page1.pageInfo.endCursor,
      }),
    ).profiles;
    expect(back.edges.map((e: any) => e.node.id)).toEqual(page1.edges.slice(0, 2).map((e: any) => e.node.id));
    expect(page2.pageInfo.hasPreviousPage).toBe(true);
    const byNs = ok(await server.gql('{ profiles(filter: { identityNamespace: "phone" }) { totalCount } }')).profiles;
    expect(byNs.totalCount).toBe(1);
    const future = ok(
      await server.gql('{ profiles(filter: { updatedAfter: "2100-01-01T00:00:00.000Z" }) { totalCount } }'),
    ).profiles;
    expect(future.totalCount).toBe(0);
  });

  it('deletes a profile by identity with its events', async () => {
    const del = ok(await server.gql('mutation { deleteProfile(identity: { namespace: "email", id: "dup@x.io" }) }'));
    expect(typeof del.deleteProfile).toBe('string');
    expect(ok(await server.gql(PROFILE_BY_IDENTITY, { ns: 'email', id: 'dup@x.io' })).profile).toBeNull();
  });

  it('lists the default profile schema', async () => {
    const s = ok(
      await server.gql('{ profileSchema { name profileFields { path type } eventFields { path type } } }'),
    ).profileSchema;
    expect(s.name).toBe('_xdm.context.profile');
    expect(s.profileFields).toContainEqual({ path: 'loyalty.points', type: 'number' });
    expect(s.profileFields).toContainEqual({ path: 'preferences.categories', type: 'array<string>' });
    expect(s.eventFields).toContainEqual({ path: 'commerce.order.priceTotal', type: 'number' });
  });
});
