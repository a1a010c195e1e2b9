import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeGlobalId } from '../../src/domain/ids.js';
import { e2eBackend, ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;

const chain = (n: number) =>
  `CHAIN(xEvent, timestamp, [${Array.from({ length: n }, (_, i) => `S${i}: WHAT(eventType = "t${i}")`).join(', ')}])`;

const JOB = `mutation($input: CreateSegmentJobInput!) { createSegmentJob(input: $input) { id } }`;
const WATCH = `query($id: ID!) { segmentJob(id: $id) { status error
  metrics { segmentedProfileCounter { audienceId count } failedDefinitions { segmentDefinition { id name } reason } } } }`;

async function createDefinition(name: string, value: string) {
  return ok(
    await server.gql(
      'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id audience { id size } } }',
      { i: { name, expression: { value }, lifecycleState: 'PUBLISHED' } },
    ),
  ).createSegmentDefinition;
}

async function runJob(input: Record<string, unknown>) {
  const job = ok(await server.gql(JOB, { input })).createSegmentJob;
  for (;;) {
    const current = ok(await server.gql(WATCH, { id: job.id })).segmentJob;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(current.status)) return current;
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  server = await startTestServer();
  const records = ['gold', 'gold', 'silver'].map((tier, i) => ({
    identities: [{ namespace: 'email', id: `p${i}@x.se` }],
    attributes: { loyalty: { tier, points: 1 } },
  }));
  ok(await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', { r: records }));
});
afterAll(() => server.stop());

describe('what validates, runs', () => {
  it('refuses a CHAIN of 24 steps at validatePql, naming the limit', async () => {
    const v = ok(
      await server.gql('query($x: String!) { validatePql(expression: $x) { valid errors { code message } } }', {
        x: chain(24),
      }),
    ).validatePql;
    expect(v.valid).toBe(false);
    expect(v.errors[0].code).toBe('PQL_TYPE_ERROR');
    expect(v.errors[0].message).toContain('CHAIN has 24 steps; at most 16 are allowed');
    const saved = await server.gql(
      'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id } }',
      { i: { name: 'Long funnel', expression: { value: chain(24) } } },
    );
    expect(saved.errors?.[0]?.extensions?.code).toBe('PQL_TYPE_ERROR');
  });

  it('refuses an expression whose SQL SQLite would not take (an arithmetic chain of 400 terms), and runs one of 300', async () => {
    // Each `+` nests the SQL about three levels: 400 terms pass SQLite's expression depth of 1000.
    const sum = (n: number) => `${Array.from({ length: n }, () => 'loyalty.points').join(' + ')} > 3`;
    const v = ok(
      await server.gql('query($x: String!) { validatePql(expression: $x) { valid errors { code message } } }', {
        x: sum(400),
      }),
    ).validatePql;
    if (e2eBackend() === 'postgres') {
      // PostgreSQL's compiled form is flat (one call per operator) and has no depth limit: it runs.
      expect(v).toEqual({ valid: true, errors: [] });
      const all = ok(
        await server.gql('query($x: String!) { profilesMatching(expression: $x) { totalCount } }', { x: sum(400) }),
      );
      const one = ok(await server.gql('query { profilesMatching(expression: "loyalty.points > 0") { totalCount } }'));
      expect(all.profilesMatching.totalCount).toBe(one.profilesMatching.totalCount);
      return;
    }
    expect(v.valid).toBe(false);
    expect(v.errors[0].code).toBe('PQL_TYPE_ERROR');
    expect(v.errors[0].message).toContain('the expression is too large to run');
    expect(v.errors[0].message).toContain('Expression tree is too large (maximum depth 1000)');
    const saved = await server.gql(
      'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id } }',
      { i: { name: 'Long sum', expression: { value: sum(400) } } },
    );
    expect(saved.errors?.[0]?.extensions?.code).toBe('PQL_TYPE_ERROR');
    const matching = await server.gql('query($x: String!) { profilesMatching(expression: $x) { totalCount } }', {
      x: sum(400),
    });
    expect(matching.errors?.[0]?.extensions?.code).toBe('PQL_TYPE_ERROR');
    expect(matching.errors?.[0]?.message).toContain('too large to run');

    const fits = ok(
      await server.gql(
        'query($x: String!) { validatePql(expression: $x) { valid } profilesMatching(expression: $x) { totalCount } }',
        {
          x: sum(300),
        },
      ),
    );
    expect(fits.validatePql.valid).toBe(true);
    expect(fits.profilesMatching.totalCount).toBe(3);
  });

  it('a definition that fails at run time fails alone: the job succeeds and lists it with its reason', async () => {
    const gold = await createDefinition('Gold', 'loyalty.tier = "gold"');
    const broken = await createDefinition('Was a long funnel', 'loyalty.tier = "silver"');
    // First run: both evaluate, so the broken one has members that must survive its failure.
    const first = await runJob({ all: true });
    expect(first.status).toBe('SUCCEEDED');
    expect(first.metrics.failedDefinitions).toEqual([]);
    // A definition stored before the CHAIN limit existed: it no longer checks, and its SQL is too deep to run.
    await server.rows('UPDATE segment_definitions SET expression_text = ? WHERE id = ?', [
      chain(24),
      Number(decodeGlobalId(broken.id)!.id),
    ]);

    const job = await runJob({ all: true });
    expect(job.status).toBe('SUCCEEDED');
    expect(job.error).toBeNull();
    expect(job.metrics.segmentedProfileCounter).toEqual([{ audienceId: gold.audience.id, count: 2 }]);
    expect(job.metrics.failedDefinitions).toHaveLength(1);
    const [failure] = job.metrics.failedDefinitions;
    expect(failure.segmentDefinition).toEqual({ id: broken.id, name: 'Was a long funnel' });
    expect(failure.reason).toContain('CHAIN has 24 steps');

    const sizes = ok(
      await server.gql('query($a: ID!, $b: ID!) { a: audience(id: $a) { size } b: audience(id: $b) { size } }', {
        a: gold.audience.id,
        b: broken.audience.id,
      }),
    );
    expect(sizes.a.size).toBe(2);
    // Its memberships are untouched: still the one silver profile from the first run.
    expect(sizes.b.size).toBe(1);

    // Alone in a job, nothing was evaluated: the job fails with the reason.
    const alone = await runJob({ segmentDefinitionIds: [broken.id] });
    expect(alone.status).toBe('FAILED');
    expect(alone.error).toContain('CHAIN has 24 steps');
  });
});
