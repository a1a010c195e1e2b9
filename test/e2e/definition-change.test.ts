/**
 * previewDefinitionChange through the real server: a dry run on a store with known answers,
 * watched over graphql-ws. Its counts are exact at the end, its running intervals covered the
 * truth throughout, its samples page, and a dependent that would lose members is listed.
 */
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.stop());

const PROFILES = 3000;
// Profile i has i % 100 points and is gold when i is even.
const points = (i: number) => i % 100;
const TRUTH = { join: 300, leave: 300, stay: 1200 }; // 40–49 join, 90–99 leave, 50–89 stay

async function definition(name: string, value: string) {
  return ok(
    await server.gql(
      'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id version audience { id size } } }',
      { i: { name, expression: { value }, lifecycleState: 'PUBLISHED' } },
    ),
  ).createSegmentDefinition;
}

async function runAll() {
  const job = ok(await server.gql('mutation { createSegmentJob(input: { all: true }) { id } }')).createSegmentJob;
  for (;;) {
    const { status } = ok(
      await server.gql('query($id: ID!) { segmentJob(id: $id) { status } }', { id: job.id }),
    ).segmentJob;
    if (status === 'SUCCEEDED') return;
    if (status === 'FAILED' || status === 'CANCELLED') throw new Error(`segment job ${status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const FIELDS = `id status wouldJoin { value low high exact } wouldLeave { value low high exact }
  wouldStay { value low high exact } progress { done total }`;

describe('previewDefinitionChange', () => {
  let a: any;
  let gold: any;

  beforeAll(async () => {
    const records = Array.from({ length: PROFILES }, (_, i) => ({
      identities: [{ namespace: 'crmId', id: `c${i}` }],
      attributes: { loyalty: { points: points(i), tier: i % 2 === 0 ? 'gold' : 'silver' } },
    }));
    ok(await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', { r: records }));
    a = await definition('Fifty plus', 'loyalty.points >= 50');
    gold = await definition('Gold fifty plus', 'inSegment("Fifty plus") and loyalty.tier = "gold"');
    await definition(
      'Sixties and seventies',
      'inSegment("Fifty plus") and loyalty.points >= 60 and loyalty.points < 80',
    );
    await runAll();
  }, 60_000);

  it('estimates with intervals that cover the truth while it reads, then gives exact counts, samples and dependents', async () => {
    const started = ok(
      await server.gql(
        `mutation($id: ID!, $e: PqlExpressionInput!) { previewDefinitionChange(id: $id, expression: $e) { id status } }`,
        { id: a.id, e: { value: 'loyalty.points >= 40 and loyalty.points < 90' } },
      ),
    ).previewDefinitionChange;
    expect(started.status).toBe('QUEUED');

    const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
    const events: any[] = [];
    await new Promise<void>((resolve, reject) => {
      client.subscribe(
        {
          query: `subscription($id: ID!) { definitionChangePreviewUpdated(id: $id) { ${FIELDS} } }`,
          variables: { id: started.id },
        },
        { next: (m) => events.push(m.data!.definitionChangePreviewUpdated), error: reject, complete: resolve },
      );
    });
    await client.dispose();

    expect(events.at(-1).status).toBe('SUCCEEDED');
    const running = events.filter((e) => e.status === 'PROCESSING' && !e.wouldJoin.exact && e.progress.done > 0);
    expect(running.length).toBeGreaterThan(0);
    for (const e of running) {
      for (const [side, truth] of [
        ['wouldJoin', TRUTH.join],
        ['wouldLeave', TRUTH.leave],
        ['wouldStay', TRUTH.stay],
      ] as const) {
        expect(e[side].low, `${side} at ${e.progress.done}`).toBeLessThanOrEqual(truth);
        expect(e[side].high, `${side} at ${e.progress.done}`).toBeGreaterThanOrEqual(truth);
      }
    }

    const done = ok(
      await server.gql(
        `query($id: ID!) { definitionChangePreview(id: $id) { ${FIELDS}
          joinSample(first: 60) { totalCount pageInfo { endCursor hasNextPage } edges { node { identities { value } attributes } } }
          leaveSample(first: 100) { totalCount edges { node { attributes } } }
          affectedDependents { segmentDefinition { id name } wouldJoin wouldLeave } } }`,
        { id: started.id },
      ),
    ).definitionChangePreview;
    expect(done.wouldJoin).toEqual({ value: TRUTH.join, low: TRUTH.join, high: TRUTH.join, exact: true });
    expect(done.wouldLeave).toEqual({ value: TRUTH.leave, low: TRUTH.leave, high: TRUTH.leave, exact: true });
    expect(done.wouldStay).toEqual({ value: TRUTH.stay, low: TRUTH.stay, high: TRUTH.stay, exact: true });
    expect(done.joinSample.totalCount).toBe(100);
    expect(done.joinSample.pageInfo.hasNextPage).toBe(true);
    const joiners = done.joinSample.edges.map((e: any) => e.node.attributes.loyalty.points);
    expect(joiners.every((p: number) => p >= 40 && p < 50)).toBe(true);
    const rest = ok(
      await server.gql(
        `query($id: ID!, $after: String) { definitionChangePreview(id: $id) { joinSample(first: 100, after: $after) {
          pageInfo { hasNextPage } edges { node { attributes } } } } }`,
        { id: started.id, after: done.joinSample.pageInfo.endCursor },
      ),
    ).definitionChangePreview.joinSample;
    expect(rest.edges).toHaveLength(40);
    expect(rest.pageInfo.hasNextPage).toBe(false);
    expect(done.leaveSample.edges.every((e: any) => e.node.attributes.loyalty.points >= 90)).toBe(true);
    // Gold members of 40–49 would join the dependent, gold members of 90–99 leave it; the
    // 60–79 dependent does not move.
    expect(done.affectedDependents).toEqual([
      { segmentDefinition: { id: gold.id, name: 'Gold fifty plus' }, wouldJoin: 150, wouldLeave: 150 },
    ]);
  }, 60_000);

  it('is followed by updateSegmentDefinition(expectedVersion), and the next evaluation lands on the preview', async () => {
    const saved = ok(
      await server.gql(
        `mutation($id: ID!, $v: Int) { updateSegmentDefinition(id: $id, expectedVersion: $v,
          input: { expression: { value: "loyalty.points >= 40 and loyalty.points < 90" } }) { version } }`,
        { id: a.id, v: a.version },
      ),
    ).updateSegmentDefinition;
    expect(saved.version).toBe(a.version + 1);
    await runAll();
    const size = ok(await server.gql('query($id: ID!) { audience(id: $id) { size } }', { id: a.audience.id })).audience
      .size;
    expect(size).toBe(TRUTH.join + TRUTH.stay);
  }, 60_000);

  it('refuses an expression that does not check, on the request', async () => {
    const res = await server.gql(
      `mutation($id: ID!) { previewDefinitionChange(id: $id, expression: { value: "loyalty.nope > 1" }) { id } }`,
      { id: a.id },
    );
    expect(res.errors?.[0]?.extensions?.code).toBe('PQL_TYPE_ERROR');
  });
});
