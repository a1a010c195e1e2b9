import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, startTestServer, type TestServer } from './harness.js';

/** Members of four manual audiences over 40 profiles, chosen by divisibility so the sets overlap unevenly. */
const RULES: [string, (i: number) => boolean][] = [
  ['Even', (i) => i % 2 === 0],
  ['Threes', (i) => i % 3 === 0],
  ['Fives', (i) => i % 5 === 0],
  ['Low', (i) => i < 12],
];
const PROFILES = 40;

describe('audienceOverlap', () => {
  let server: TestServer;
  const ids: string[] = [];

  beforeAll(async () => {
    server = await startTestServer();
    const records = Array.from({ length: PROFILES }, (_, i) => ({
      identities: [{ namespace: 'crmId', id: `P${i}` }],
      attributes: {},
    }));
    ok(await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', { r: records }));
    for (const [name, rule] of RULES) {
      const a = ok(
        await server.gql('mutation($n: String!) { createAudience(input: { name: $n }) { id } }', { n: name }),
      ).createAudience.id as string;
      const members = records.flatMap((r, i) => (rule(i) ? [r.identities[0]] : []));
      ok(
        await server.gql(
          'mutation($a: ID!, $m: [IdentityInput!]!) { addAudienceMembers(audienceId: $a, identities: $m) { size } }',
          { a, m: members },
        ),
      );
      ids.push(a);
    }
    // A member that left does not count.
    ok(
      await server.gql(
        'mutation($a: ID!) { removeAudienceMembers(audienceId: $a, identities: [{ namespace: "crmId", id: "P0" }]) { size } }',
        { a: ids[0] },
      ),
    );
  });
  afterAll(() => server?.stop());

  const members = (k: number) =>
    new Set(Array.from({ length: PROFILES }, (_, i) => i).filter((i) => RULES[k]![1](i) && !(k === 0 && i === 0)));

  const Q = `query($ids: [ID!]!) { audienceOverlap(audienceIds: $ids) {
    pairs { a { id } b { id } intersection } regions { audiences { id } count } } }`;

  it('gives every pairwise intersection and the exclusive regions of three, as a set computation does', async () => {
    const res = ok(await server.gql(Q, { ids: ids.slice(0, 3) })).audienceOverlap;
    const expectedPairs = [
      [0, 1],
      [0, 2],
      [1, 2],
    ].map(([x, y]) => ({
      a: { id: ids[x!] },
      b: { id: ids[y!] },
      intersection: [...members(x!)].filter((i) => members(y!).has(i)).length,
    }));
    expect(res.pairs).toEqual(expectedPairs);
    const regions = new Map<string, number>();
    for (let i = 0; i < PROFILES; i++) {
      const inside = [0, 1, 2].filter((k) => members(k).has(i));
      if (inside.length === 0) continue;
      const key = inside.map((k) => ids[k]).join(',');
      regions.set(key, (regions.get(key) ?? 0) + 1);
    }
    const got = new Map<string, number>(
      res.regions.map((r: any) => [r.audiences.map((a: any) => a.id).join(','), r.count] as [string, number]),
    );
    expect(got).toEqual(regions);
    expect([...got.values()].reduce((a, b) => a + b, 0)).toBe(
      new Set([...members(0), ...members(1), ...members(2)]).size,
    );
  });

  it('gives pairs but no regions for four, and refuses too few, too many and unknown audiences', async () => {
    const four = ok(await server.gql(Q, { ids })).audienceOverlap;
    expect(four.pairs).toHaveLength(6);
    expect(four.regions).toEqual([]);
    const low = four.pairs.find((p: any) => p.a.id === ids[1] && p.b.id === ids[3]);
    expect(low.intersection).toBe([0, 3, 6, 9].length);
    const one = await server.gql(Q, { ids: [ids[0]] });
    expect(one.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const distinct = Array.from({ length: 11 }, (_, i) => Buffer.from(`Audience:${9000 + i}`).toString('base64'));
    const eleven = await server.gql(Q, { ids: distinct });
    expect(eleven.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const unknown = await server.gql(Q, { ids: [ids[0], 'QXVkaWVuY2U6OTk5OQ=='] });
    expect(unknown.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });
});
