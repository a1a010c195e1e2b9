import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;
const AT = '2026-11-28T12:00:00.000Z';

beforeAll(async () => {
  server = await startTestServer();
  const records = [
    {
      identities: [{ namespace: 'email', id: 'ann@x.se' }],
      attributes: { homeAddress: { countryCode: 'SE' }, loyalty: { tier: 'gold', points: 900 } },
    },
    {
      identities: [{ namespace: 'email', id: 'bo@x.se' }],
      attributes: { homeAddress: { countryCode: 'SE' }, loyalty: { tier: 'silver' } },
    },
    { identities: [{ namespace: 'email', id: 'cy@x.no' }], attributes: { homeAddress: { countryCode: 'NO' } } },
    { identities: [{ namespace: 'email', id: 'di@x.us' }], attributes: {} },
  ];
  ok(await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', { r: records }));
  const events = [
    {
      id: 'a1',
      identity: { namespace: 'email', id: 'ann@x.se' },
      timestamp: '2026-11-27T10:00:00Z',
      eventType: 'commerce.purchases',
      data: { commerce: { order: { priceTotal: 50 } } },
    },
    {
      id: 'a2',
      identity: { namespace: 'email', id: 'ann@x.se' },
      timestamp: '2026-11-20T10:00:00Z',
      eventType: 'commerce.purchases',
      data: { commerce: { order: { priceTotal: 70 } } },
    },
    {
      id: 'b1',
      identity: { namespace: 'email', id: 'bo@x.se' },
      timestamp: '2026-09-01T10:00:00Z',
      eventType: 'commerce.purchases',
      data: { commerce: { order: { priceTotal: 10 } } },
    },
    {
      id: 'c1',
      identity: { namespace: 'email', id: 'cy@x.no' },
      timestamp: '2026-11-28T11:00:00Z',
      eventType: 'web.webpagedetails.pageViews',
    },
  ];
  ok(await server.gql('mutation($e: [EventInput!]!) { ingestEvents(events: $e) { accepted } }', { e: events }));
});
afterAll(() => server.stop());

const REPEAT_BUYERS =
  'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now].count() >= 2 and homeAddress.countryCode = "SE"';

describe('PQL tools over the API', () => {
  it('validatePql gives canonical text, JSON, eligibility and referenced fields', async () => {
    const v = ok(
      await server.gql(
        `query($x: String!) { validatePql(expression: $x) { valid errors { code } normalized json eligibility { batch streaming edge reasons } referencedFields } }`,
        { x: 'homeAddress.countryCode IN ["SE", "NO"]   AND loyalty.points > 100' },
      ),
    ).validatePql;
    expect(v.valid).toBe(true);
    expect(v.normalized).toBe('homeAddress.countryCode in ["SE", "NO"] and loyalty.points > 100');
    expect(v.json.nodeType).toBe('fnApply');
    expect(v.json.fnName).toBe('and');
    expect(v.eligibility).toEqual({ batch: true, streaming: true, edge: true, reasons: [] });
    expect(v.referencedFields).toEqual(['homeAddress.countryCode', 'loyalty.points']);
    const events = ok(
      await server.gql('query($x: String!) { validatePql(expression: $x) { eligibility { streaming reasons } } }', {
        x: REPEAT_BUYERS,
      }),
    ).validatePql;
    expect(events.eligibility.streaming).toBe(false);
    expect(events.eligibility.reasons[0]).toMatch(/24 hours/);
  });

  it('validatePql reports syntax errors with position and expected tokens, and type errors with position', async () => {
    const q =
      'query($x: String!) { validatePql(expression: $x) { valid errors { message code line column offset length expected } } }';
    const syntax = ok(await server.gql(q, { x: 'loyalty.points >\n  and x' })).validatePql;
    expect(syntax.valid).toBe(false);
    expect(syntax.errors[0]).toMatchObject({ code: 'PQL_SYNTAX_ERROR', line: 2, column: 3, offset: 19, length: 3 });
    expect(syntax.errors[0].message).toContain('"and"');
    const type = ok(await server.gql(q, { x: 'loyalty.points = "many"' })).validatePql;
    expect(type.errors[0]).toMatchObject({ code: 'PQL_TYPE_ERROR', line: 1, column: 18 });
    const unknown = ok(await server.gql(q, { x: 'person.shoeSize > 40' })).validatePql;
    expect(unknown.errors[0].message).toContain('updateProfileSchema');
    expect(unknown.errors[0]).toMatchObject({ code: 'PQL_TYPE_ERROR', line: 1, column: 8 });
  });

  it('convertPql round-trips text and JSON', async () => {
    const text = 'not (loyalty.tier = "gold") or xEvent[eventType = "x"].count() > 0';
    const json = ok(
      await server.gql('query($x: String!) { convertPql(expression: $x, from: PQL_TEXT, to: PQL_JSON) }', { x: text }),
    ).convertPql;
    expect(JSON.parse(json).fnName).toBe('or');
    const back = ok(
      await server.gql('query($x: String!) { convertPql(expression: $x, from: PQL_JSON, to: PQL_TEXT) }', { x: json }),
    ).convertPql;
    // The canonical text drops parentheses precedence makes redundant (`not` binds looser than `=`).
    expect(back).toBe('not loyalty.tier = "gold" or xEvent[eventType = "x"].count() > 0');
    const again = ok(
      await server.gql('query($x: String!) { convertPql(expression: $x, from: PQL_TEXT, to: PQL_TEXT) }', { x: back }),
    ).convertPql;
    expect(again).toBe(back);
  });

  it('profilesMatching answers exactly with the SQL engine at a fixed time, with totalCount and paging', async () => {
    const q = `query($x: String!, $at: DateTime, $after: String) {
      profilesMatching(expression: $x, at: $at, first: 1, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { identities { value } } } } }`;
    const r = ok(await server.gql(q, { x: REPEAT_BUYERS, at: AT })).profilesMatching;
    expect(r.totalCount).toBe(1);
    expect(r.edges[0].node.identities[0].value).toBe('ann@x.se');
    // A week later the older purchase falls out of the 30-day window.
    const later = ok(await server.gql(q, { x: REPEAT_BUYERS, at: '2026-12-21T12:00:00.000Z' })).profilesMatching;
    expect(later.totalCount).toBe(0);
    const se = ok(await server.gql(q, { x: 'homeAddress.countryCode = "SE"', at: AT })).profilesMatching;
    expect(se.totalCount).toBe(2);
    expect(se.pageInfo.hasNextPage).toBe(true);
    const se2 = ok(
      await server.gql(q, { x: 'homeAddress.countryCode = "SE"', at: AT, after: se.pageInfo.endCursor }),
    ).profilesMatching;
    expect(se2.edges[0].node.identities[0].value).toBe('bo@x.se');
    expect(se2.pageInfo.hasNextPage).toBe(false);
    // Missing data: not (x = 1) holds on a missing x, x != 1 does not.
    const notEq = ok(await server.gql(q, { x: 'not (homeAddress.countryCode = "SE")', at: AT })).profilesMatching;
    const neq = ok(await server.gql(q, { x: 'homeAddress.countryCode != "SE"', at: AT })).profilesMatching;
    expect([notEq.totalCount, neq.totalCount]).toEqual([2, 1]);
  });

  it('profilesMatching fails with the PQL error code and position in extensions', async () => {
    const r = await server.gql('{ profilesMatching(expression: "loyalty.points >") { totalCount } }');
    expect(r.errors?.[0]?.extensions).toMatchObject({ code: 'PQL_SYNTAX_ERROR', pql: { line: 1, column: 17 } });
    expect(r.errors?.[0]?.extensions?.pql.expected.length).toBeGreaterThan(0);
  });

  it('evaluateProfile answers for one profile with the JS engine, agreeing with profilesMatching', async () => {
    const q = `query($id: String!, $x: String!, $at: DateTime) {
      evaluateProfile(identity: { namespace: "email", id: $id }, expression: $x, at: $at) { qualifies durationMs } }`;
    const ann = ok(await server.gql(q, { id: 'ann@x.se', x: REPEAT_BUYERS, at: AT })).evaluateProfile;
    const bo = ok(await server.gql(q, { id: 'bo@x.se', x: REPEAT_BUYERS, at: AT })).evaluateProfile;
    expect([ann.qualifies, bo.qualifies]).toEqual([true, false]);
    expect(ann.durationMs).toBeGreaterThanOrEqual(0);
    const sum = ok(
      await server.gql(q, { id: 'ann@x.se', x: 'xEvent.sum(commerce.order.priceTotal) = 120', at: AT }),
    ).evaluateProfile;
    expect(sum.qualifies).toBe(true);
    const missing = await server.gql(q, { id: 'nobody@x', x: 'true', at: AT });
    expect(missing.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('evaluateProfile runs the edge definitions as they are now: ids alone or with rows, after edits and deletes, per sandbox', async () => {
    const CREATE = `mutation($i: CreateSegmentDefinitionInput!) {
      createSegmentDefinition(input: $i) { id audience { id } } }`;
    const edge = async (name: string, value: string, headers?: Record<string, string>) =>
      ok(
        await server.gql(
          CREATE,
          {
            i: {
              name,
              expression: { value },
              evaluationInfo: { batch: true, edge: true },
              lifecycleState: 'PUBLISHED',
            },
          },
          headers,
        ),
      ).createSegmentDefinition as { id: string; audience: { id: string } };
    const gold = await edge('edge gold', 'loyalty.tier = "gold"');
    const swedes = await edge('edge swedes', 'homeAddress.countryCode = "SE"');
    const rich = await edge('edge rich', 'loyalty.points > 5000');
    const IDS = `query($id: String!) { evaluateProfile(identity: { namespace: "email", id: $id }, at: "${AT}") {
      audiences { id __typename } } }`;
    const ROWS = `query($id: String!) { evaluateProfile(identity: { namespace: "email", id: $id }, at: "${AT}") {
      audiences { id name } } }`;
    const ids = async (id: string, headers?: Record<string, string>) =>
      (ok(await server.gql(IDS, { id }, headers)).evaluateProfile.audiences as { id: string }[])
        .map((a) => a.id)
        .sort();

    expect(await ids('ann@x.se')).toEqual([gold.audience.id, swedes.audience.id].sort());
    expect(await ids('bo@x.se')).toEqual([swedes.audience.id]);
    const rows = ok(await server.gql(ROWS, { id: 'ann@x.se' })).evaluateProfile.audiences;
    expect(rows.map((a: { name: string }) => a.name).sort()).toEqual(['edge gold', 'edge swedes']);
    expect(ok(await server.gql(IDS, { id: 'ann@x.se' })).evaluateProfile.audiences[0].__typename).toBe('Audience');

    // An edited expression is what the next evaluation runs; a deleted definition is gone.
    ok(
      await server.gql(
        'mutation($id: ID!, $v: String!) { updateSegmentDefinition(id: $id, input: { expression: { value: $v } }) { version } }',
        { id: rich.id, v: 'loyalty.points > 500' },
      ),
    );
    expect(await ids('ann@x.se')).toEqual([gold.audience.id, swedes.audience.id, rich.audience.id].sort());
    ok(await server.gql('mutation($id: ID!) { deleteSegmentDefinition(id: $id) }', { id: gold.id }));
    expect(await ids('ann@x.se')).toEqual([swedes.audience.id, rich.audience.id].sort());

    // Another sandbox runs its own definitions on its own profiles only.
    const other = { 'x-sandbox-name': 'edge-other' };
    ok(await server.gql('mutation { createSandbox(name: "edge-other") { name } }'));
    ok(
      await server.gql(
        'mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }',
        { r: [{ identities: [{ namespace: 'email', id: 'ann@x.se' }], attributes: { loyalty: { tier: 'gold' } } }] },
        other,
      ),
    );
    expect(await ids('ann@x.se', other)).toEqual([]);
    const there = await edge('edge gold there', 'loyalty.tier = "gold"', other);
    expect(await ids('ann@x.se', other)).toEqual([there.audience.id]);
    expect(await ids('ann@x.se')).toEqual([swedes.audience.id, rich.audience.id].sort());
    for (const d of [swedes, rich])
      ok(await server.gql('mutation($id: ID!) { deleteSegmentDefinition(id: $id) }', { id: d.id }));
  });

  it('treats a hostile string literal as data', async () => {
    const r = ok(
      await server.gql('query($x: String!) { profilesMatching(expression: $x) { totalCount } }', {
        x: `homeAddress.countryCode = "'; DROP TABLE profiles; --"`,
      }),
    ).profilesMatching;
    expect(r.totalCount).toBe(0);
    expect(ok(await server.gql('{ profiles { totalCount } }')).profiles.totalCount).toBe(4);
  });
});
