import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { PgConnection } from '../../src/db/pg/index.js';
import { purgeExpiredPreviewsPg } from '../../src/domain/cluster/cluster-preview-job.js';
import { purgeExpiredPreviews } from '../../src/domain/previews/previews.js';
import { e2eBackend, ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;
const POPULATION = 2000;
/** 30 % of the population is gold: the true size the estimates are judged against. */
const TRUE_GOLD = 600;

beforeAll(async () => {
  server = await startTestServer();
  const records = Array.from({ length: POPULATION }, (_, i) => ({
    identities: [{ namespace: 'email', id: `s${i}@x.io` }, ...(i % 2 ? [{ namespace: 'crmId', id: `C${i}` }] : [])],
    attributes: { loyalty: { tier: i % 10 < 3 ? 'gold' : 'silver', points: i } },
  }));
  ok(await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', { r: records }));
});
afterAll(() => server.stop());

const CREATE = `mutation($input: CreatePreviewInput!) { createPreview(input: $input) { id status } }`;
const READ = `query($id: ID!) { preview(id: $id) { id status error sampleSize
  estimate { estimatedSize confidenceLevel confidenceInterval { low high } standardError profilesRead totalProfiles exact
    estimatedNamespaceDistribution { namespace count } stale } } }`;

async function runPreview(input: Record<string, unknown>) {
  const { id } = ok(await server.gql(CREATE, { input })).createPreview;
  for (;;) {
    const p = ok(await server.gql(READ, { id })).preview;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(p.status)) return p;
    await new Promise((r) => setTimeout(r, 10));
  }
}

const GOLD = { value: 'loyalty.tier = "gold"' };

describe('previews and estimates', () => {
  it('is exact when the store is smaller than the sample, and equals profilesMatching', async () => {
    const p = await runPreview({ expression: { value: 'loyalty.tier = "gold" and loyalty.points > 1000' } });
    const exact = ok(
      await server.gql(
        '{ profilesMatching(expression: "loyalty.tier = \\"gold\\" and loyalty.points > 1000") { totalCount } }',
      ),
    ).profilesMatching.totalCount;
    expect(p.status).toBe('SUCCEEDED');
    expect(p.estimate).toMatchObject({
      exact: true,
      estimatedSize: exact,
      confidenceInterval: { low: exact, high: exact },
      standardError: 0,
      profilesRead: POPULATION,
      totalProfiles: POPULATION,
      confidenceLevel: 0.95,
      stale: false,
    });
    expect(p.sampleSize).toBe(POPULATION);
    const byNs = Object.fromEntries(p.estimate.estimatedNamespaceDistribution.map((n: any) => [n.namespace, n.count]));
    expect(byNs.email).toBe(exact);
  });

  it('has 95 % intervals that hold the true size in at least 90 of 100 seeded previews, and an unbiased average', async () => {
    // Each interval covers the truth with probability ~0.95, so the count of covering intervals is
    // ~Binomial(100, 0.95): mean 95, sd 2.2; at least 90 holds with probability > 0.99. Seeds are fixed,
    // so the run is reproducible. The mean of 100 estimates has a standard error of ~6 profiles (1 %).
    let covered = 0;
    let sum = 0;
    for (let seed = 1; seed <= 100; seed++) {
      const p = await runPreview({ expression: GOLD, sampleSize: 200, seed });
      expect(p.estimate.exact).toBe(false);
      expect(p.estimate.profilesRead).toBe(200);
      const { low, high } = p.estimate.confidenceInterval;
      if (low <= TRUE_GOLD && TRUE_GOLD <= high) covered++;
      sum += p.estimate.estimatedSize;
    }
    expect(covered).toBeGreaterThanOrEqual(90);
    expect(Math.abs(sum / 100 - TRUE_GOLD)).toBeLessThanOrEqual(TRUE_GOLD * 0.02);
  }, 120_000);

  it('gives the same sample for the same seed and another for another seed', async () => {
    const a = await runPreview({ expression: GOLD, sampleSize: 100, seed: 7 });
    const b = await runPreview({ expression: GOLD, sampleSize: 100, seed: 7 });
    const c = await runPreview({ expression: GOLD, sampleSize: 100, seed: 8 });
    const ids = async (id: string) =>
      ok(
        await server.gql('query($id: ID!) { preview(id: $id) { results(first: 100) { edges { node { id } } } } }', {
          id,
        }),
      ).preview.results.edges.map((e: any) => e.node.id);
    expect(await ids(a.id)).toEqual(await ids(b.id));
    expect(await ids(a.id)).not.toEqual(await ids(c.id));
  });

  it('pages results that contain only qualifying profiles of the sample', async () => {
    const p = await runPreview({ expression: GOLD, sampleSize: 500, seed: 3 });
    const seen: any[] = [];
    let after: string | null = null;
    for (;;) {
      const r: any = ok(
        await server.gql(
          'query($id: ID!, $after: String) { preview(id: $id) { results(first: 40, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { identities { namespace value } } } } } }',
          { id: p.id, after },
        ),
      ).preview.results;
      seen.push(...r.edges.map((e: any) => e.node));
      // The estimate scales the sample's qualifying count by population / sample = 4.
      expect(r.totalCount).toBe((p.estimate.estimatedSize * 500) / POPULATION);
      if (!r.pageInfo.hasNextPage) break;
      after = r.pageInfo.endCursor;
    }
    expect(seen.length).toBe((p.estimate.estimatedSize * 500) / POPULATION);
    expect(seen.length).toBeGreaterThan(100);
    for (const profile of seen.slice(0, 60)) {
      const email = profile.identities.find((i: any) => i.namespace === 'email');
      const r = ok(
        await server.gql(
          'query($id: String!) { evaluateProfile(identity: { namespace: "email", id: $id }, expression: "loyalty.tier = \\"gold\\"") { qualifies } }',
          {
            id: email.value,
          },
        ),
      ).evaluateProfile;
      expect(r.qualifies).toBe(true);
    }
  });

  it('streams a narrowing running estimate to previewUpdated and ends exact', async () => {
    ok(await server.gql('mutation { createSandbox(name: "big") { name } }'));
    const h = { 'x-sandbox-name': 'big' };
    for (let k = 0; k < 2; k++) {
      const records = Array.from({ length: 8000 }, (_, i) => ({
        identities: [{ namespace: 'email', id: `b${k}-${i}` }],
        attributes: { loyalty: { tier: i % 4 === 0 ? 'gold' : 'silver' } },
      }));
      ok(
        await server.gql(
          'mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }',
          { r: records },
          h,
        ),
      );
    }
    const watch = async (input: Record<string, unknown>) => {
      const { id } = ok(await server.gql(CREATE, { input: { expression: GOLD, seed: 1, ...input } }, h)).createPreview;
      const client = createClient({
        url: server.wsUrl,
        webSocketImpl: WebSocket,
        connectionParams: h,
        retryAttempts: 0,
      });
      const events: any[] = [];
      await new Promise<void>((resolve, reject) => {
        client.subscribe(
          {
            query:
              'subscription($id: ID!) { previewUpdated(id: $id) { status estimate { exact profilesRead estimatedSize confidenceInterval { low high } } } }',
            variables: { id },
          },
          { next: (m) => events.push(m.data!.previewUpdated), error: reject, complete: resolve },
        );
      });
      await client.dispose();
      return { processing: events.filter((e) => e.status === 'PROCESSING' && e.estimate), last: events.at(-1) };
    };
    const widthOf = (e: any) => e.estimate.confidenceInterval.high - e.estimate.confidenceInterval.low;
    const readOf = (e: any) => e.estimate.profilesRead;

    // The whole store: a few random chunks until the interval is within ±2 %, then one scan. Running
    // estimates are never exact; the full-sample estimate is announced as soon as it is known (while
    // the preview still stores its rows), and it is the final one. A subscriber sees the latest state
    // at each publication, so it may miss some of the (two) running ones.
    const whole = await watch({});
    expect(whole.last.status).toBe('SUCCEEDED');
    expect(whole.last.estimate).toMatchObject({ exact: true, estimatedSize: 4000, profilesRead: 16_000 });
    const exactIndex = whole.processing.findIndex((e) => e.estimate.exact);
    if (exactIndex !== -1) {
      expect(exactIndex).toBe(whole.processing.length - 1);
      expect(whole.processing[exactIndex].estimate).toEqual(whole.last.estimate);
    }
    const running = exactIndex === -1 ? whole.processing : whole.processing.slice(0, exactIndex);
    for (const e of running) expect(e.estimate.confidenceInterval.low).toBeLessThanOrEqual(4000);
    expect(running.map(readOf)).toEqual([...running.map(readOf)].sort((a, b) => a - b));

    // A sample smaller than the store is read in random order throughout, in doubling chunks: the
    // interval narrows from one progress event to the next and the estimate stays one.
    const sampled = await watch({ sampleSize: 15_000 });
    expect(sampled.last.status).toBe('SUCCEEDED');
    expect(sampled.last.estimate).toMatchObject({ exact: false, profilesRead: 15_000 });
    const { low, high } = sampled.last.estimate.confidenceInterval;
    expect(low <= 4000 && 4000 <= high).toBe(true);
    expect(sampled.processing.every((e) => e.estimate.exact === false)).toBe(true);
    // On PostgreSQL each running estimate reaches the subscriber through the job watcher, carried
    // by its notification (docs/scale-out.md, "A serving node").
    expect(sampled.processing.length).toBeGreaterThanOrEqual(2);
    expect(widthOf(sampled.processing.at(-1))).toBeLessThan(widthOf(sampled.processing[0]));
    expect(sampled.processing.map(readOf)).toEqual([...sampled.processing.map(readOf)].sort((a, b) => a - b));
  });

  it('reports bad input on createPreview itself', async () => {
    const pql = await server.gql(CREATE, { input: { expression: { value: 'loyalty.tier = ' } } });
    expect(pql.errors?.[0]?.extensions?.code).toBe('PQL_SYNTAX_ERROR');
    const type = await server.gql(CREATE, { input: { expression: { value: 'loyalty.tier = 3' } } });
    expect(type.errors?.[0]?.extensions?.code).toBe('PQL_TYPE_ERROR');
    for (const confidenceLevel of [0.5, 0.4, 0.999, 1.5]) {
      const r = await server.gql(CREATE, { input: { expression: GOLD, confidenceLevel } });
      expect(r.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.confidenceLevel' });
    }
    for (const sampleSize of [0, -5]) {
      const r = await server.gql(CREATE, { input: { expression: GOLD, sampleSize } });
      expect(r.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.sampleSize' });
    }
    const neither = await server.gql(CREATE, { input: {} });
    expect(neither.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it("keeps a definition's latest estimate, refreshes it, marks it stale after 5 % growth, and deletes and expires previews", async () => {
    const d = ok(
      await server.gql(
        'mutation { createSegmentDefinition(input: { name: "Gold est", expression: { value: "loyalty.tier = \\"gold\\"" } }) { id } }',
      ),
    ).createSegmentDefinition;
    const Q =
      'query($id: ID!) { segmentDefinition(id: $id) { estimate { estimatedSize stale exact } latestPreview { id status } } }';
    expect(ok(await server.gql(Q, { id: d.id })).segmentDefinition.estimate).toBeNull();
    const preview = await runPreview({ segmentDefinitionId: d.id });
    expect(preview.estimate.estimatedSize).toBe(TRUE_GOLD);
    const current = ok(await server.gql(Q, { id: d.id })).segmentDefinition;
    expect(current.estimate).toEqual({ estimatedSize: TRUE_GOLD, stale: false, exact: true });
    expect(current.latestPreview.id).toBe(preview.id);

    // A query only reads the estimate; a new preview is a mutation.
    const refreshed = ok(
      await server.gql('mutation($id: ID!) { refreshEstimate(segmentDefinitionId: $id) { id } }', { id: d.id }),
    ).refreshEstimate;
    expect(refreshed.id).not.toBe(preview.id);
    const newer = ok(await server.gql(Q, { id: d.id })).segmentDefinition.latestPreview;
    expect(newer.id).toBe(refreshed.id);

    const growth = Array.from({ length: 120 }, (_, i) => ({
      identities: [{ namespace: 'email', id: `grow${i}` }],
      attributes: {},
    }));
    ok(await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', { r: growth }));
    const stale = ok(await server.gql(READ, { id: preview.id })).preview.estimate.stale;
    expect(stale).toBe(true);

    expect(
      ok(await server.gql('mutation($id: ID!) { deletePreview(id: $id) }', { id: preview.id })).deletePreview,
    ).toBe(preview.id);
    expect(ok(await server.gql(READ, { id: preview.id })).preview).toBeNull();

    let other = ok(await server.gql(READ, { id: newer.id })).preview;
    while (other.status !== 'SUCCEEDED') other = ok(await server.gql(READ, { id: newer.id })).preview;
    const later = Date.now() + 25 * 3_600_000;
    // On PostgreSQL the nodes' sweep purges (the same rule, one statement).
    const purged =
      e2eBackend() === 'postgres'
        ? await purgeExpiredPreviewsPg((server.app.conn as PgConnection).pool, later)
        : await purgeExpiredPreviews({ conn: server.sqlite }, later);
    expect(purged).toBeGreaterThan(0);
    expect(ok(await server.gql(READ, { id: newer.id })).preview).toBeNull();
  });
});
