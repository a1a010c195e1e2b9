/**
 * Insight through the real server: explainMembership, definition versions with diffs, the
 * version each membership transition records (and explain on an old transition using it),
 * Audience.sizeHistory and the audienceSizeChanged subscription over graphql-ws.
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

const JOB = 'mutation($input: CreateSegmentJobInput!) { createSegmentJob(input: $input) { id } }';
const JOB_STATUS = 'query($id: ID!) { segmentJob(id: $id) { status error } }';
const UPDATE = `mutation($id: ID!, $v: String!, $ev: Int) {
  updateSegmentDefinition(id: $id, input: { expression: { value: $v } }, expectedVersion: $ev) { version } }`;
const EXPLAIN = `query($identity: IdentityInput, $profile: ID, $audienceId: ID, $expression: String, $at: DateTime) {
  explainMembership(identity: $identity, profile: $profile, audienceId: $audienceId, expression: $expression, at: $at) {
    qualifies storedStatus agreesWithStored definitionVersion
    root { text line column value passed evidence children { text value passed evidence } }
    nearestMiss { text evidence } } }`;

const email = (i: number) => ({ namespace: 'email', id: `p${i}@example.com` });

async function runJob(definitionId: string): Promise<string> {
  const job = ok(await server.gql(JOB, { input: { segmentDefinitionIds: [definitionId] } })).createSegmentJob;
  for (;;) {
    const { status, error } = ok(await server.gql(JOB_STATUS, { id: job.id })).segmentJob;
    if (status === 'SUCCEEDED') return job.id as string;
    if (status === 'FAILED' || status === 'CANCELLED') throw new Error(`job ${status}: ${error}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('insight and safe change', () => {
  let definitionId: string;
  let audienceId: string;
  const jobs: string[] = [];
  const changes: any[] = [];
  const bigChanges: any[] = [];
  let client: ReturnType<typeof createClient>;

  beforeAll(async () => {
    // Ten profiles with 0, 10, …, 90 loyalty points.
    const records = Array.from({ length: 10 }, (_, i) => ({
      identities: [email(i)],
      attributes: { loyalty: { points: i * 10, tier: i >= 5 ? 'gold' : 'silver' } },
    }));
    ok(await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', { r: records }));
    const made = ok(
      await server.gql(
        'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id version audience { id } } }',
        { i: { name: 'Points', expression: { value: 'loyalty.points >= 50' }, lifecycleState: 'PUBLISHED' } },
      ),
    ).createSegmentDefinition;
    definitionId = made.id;
    audienceId = made.audience.id;

    client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
    const subscribe = (fraction: number, into: any[]) =>
      new Promise<void>((resolve, reject) => {
        client.subscribe(
          {
            query: `subscription($ids: [ID!], $f: Float) { audienceSizeChanged(audienceIds: $ids, minChangeFraction: $f) {
              audience { id } before after at job { id } } }`,
            variables: { ids: [audienceId], f: fraction },
          },
          { next: (m) => into.push(m.data!.audienceSizeChanged), error: reject, complete: resolve },
        );
      });
    void subscribe(0.1, changes);
    void subscribe(0.5, bigChanges);
    // Let both subscriptions reach the server before the first job finishes.
    await new Promise((r) => setTimeout(r, 300));

    jobs.push(await runJob(definitionId)); // version 1: 50..90 → 5 members
    ok(await server.gql(UPDATE, { id: definitionId, v: 'loyalty.points >= 30', ev: 1 })); // version 2
    jobs.push(await runJob(definitionId)); // 30..90 → 7
    ok(await server.gql(UPDATE, { id: definitionId, v: 'loyalty.points >= 80', ev: 2 })); // version 3
    jobs.push(await runJob(definitionId)); // 80, 90 → 2
    // A rename moves the definition's version but keeps no expression version.
    ok(
      await server.gql(
        'mutation($id: ID!) { updateSegmentDefinition(id: $id, input: { name: "Points (renamed)" }) { version } }',
        { id: definitionId },
      ),
    );
    ok(await server.gql(UPDATE, { id: definitionId, v: 'loyalty.points >= 80 and loyalty.tier = "gold"', ev: 4 })); // 5
    await new Promise((r) => setTimeout(r, 200));
  }, 60_000);
  afterAll(() => client?.dispose());

  it('keeps every expression version, newest first, with unified diffs of the normalised PQL and who changed it', async () => {
    const versions = ok(
      await server.gql(
        `query($id: ID!) { segmentDefinition(id: $id) { version versions(first: 10) { totalCount edges { node {
          version expression { value } evaluationInfo { batch streaming } changedAt changedBy diff } } } } }`,
        { id: definitionId },
      ),
    ).segmentDefinition;
    expect(versions.version).toBe(5);
    const nodes = versions.versions.edges.map((e: any) => e.node);
    expect(versions.versions.totalCount).toBe(4);
    expect(nodes.map((n: any) => n.version)).toEqual([5, 3, 2, 1]);
    expect(nodes.map((n: any) => n.expression.value)).toEqual([
      'loyalty.points >= 80 and loyalty.tier = "gold"',
      'loyalty.points >= 80',
      'loyalty.points >= 30',
      'loyalty.points >= 50',
    ]);
    expect(nodes.every((n: any) => n.changedBy === 'open' && n.evaluationInfo.batch === true)).toBe(true);
    const body = (diff: string) => diff.split('\n').filter((l) => /^[-+][^-+]/.test(l));
    expect(body(nodes[0].diff)).toEqual(['-loyalty.points >= 80', '+loyalty.points >= 80 and loyalty.tier = "gold"']);
    expect(body(nodes[1].diff)).toEqual(['-loyalty.points >= 30', '+loyalty.points >= 80']);
    expect(body(nodes[2].diff)).toEqual(['-loyalty.points >= 50', '+loyalty.points >= 30']);
    expect(body(nodes[3].diff)).toEqual(['+loyalty.points >= 50']);
    expect(nodes[1].diff).toContain('--- version 2');
    expect(nodes[1].diff).toContain('+++ version 3');
  });

  it('records on every transition the definition version that decided it', async () => {
    const history = ok(
      await server.gql(
        `query($i: IdentityInput!) { profile(identity: $i) { membershipHistory(first: 10) { edges { node {
          at from to definitionVersion segmentJob { id } } } } } }`,
        { i: email(3) },
      ),
    ).profile.membershipHistory.edges.map((e: any) => e.node);
    // p3 (30 points) entered under version 2 and left under version 3.
    expect(history.map((t: any) => [t.from, t.to, t.definitionVersion, t.segmentJob.id])).toEqual([
      ['REALIZED', 'EXITED', 3, jobs[2]],
      [null, 'REALIZED', 2, jobs[1]],
    ]);
  });

  it('records the version on transitions streaming and manual changes write', async () => {
    const streaming = ok(
      await server.gql(
        `mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id version } }`,
        {
          i: {
            name: 'Streaming gold',
            expression: { value: 'loyalty.tier = "gold"' },
            evaluationInfo: { streaming: true },
            lifecycleState: 'PUBLISHED',
          },
        },
      ),
    ).createSegmentDefinition;
    ok(
      await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', {
        r: [{ identities: [email(20)], attributes: { loyalty: { points: 5, tier: 'gold' } } }],
      }),
    );
    const manual = ok(await server.gql('mutation { createAudience(input: { name: "Hand-picked" }) { id } }'))
      .createAudience.id;
    ok(
      await server.gql(
        'mutation($a: ID!, $m: [IdentityInput!]!) { addAudienceMembers(audienceId: $a, identities: $m) { size } }',
        { a: manual, m: [email(20)] },
      ),
    );
    const history = ok(
      await server.gql(
        `query($i: IdentityInput!) { profile(identity: $i) { membershipHistory(first: 10) { edges { node {
          audience { name } cause definitionVersion } } } } }`,
        { i: email(20) },
      ),
    ).profile.membershipHistory.edges.map((e: any) => e.node);
    expect(history).toEqual([
      { audience: { name: 'Hand-picked' }, cause: 'MANUAL', definitionVersion: null },
      { audience: { name: 'Streaming gold' }, cause: 'STREAMING', definitionVersion: streaming.version },
    ]);
  });

  it('explains a past transition with the expression that decided it, and today with the current one', async () => {
    const history = ok(
      await server.gql(
        `query($i: IdentityInput!) { profile(identity: $i) { id membershipHistory(first: 10) { edges { node { at to } } } } }`,
        { i: email(3) },
      ),
    ).profile;
    const entered = history.membershipHistory.edges.find((e: any) => e.node.to === 'REALIZED').node;
    const past = ok(await server.gql(EXPLAIN, { profile: history.id, audienceId, at: entered.at })).explainMembership;
    expect(past).toMatchObject({ qualifies: true, definitionVersion: 2, storedStatus: 'EXITED' });
    expect(past.root).toMatchObject({
      text: 'loyalty.points >= 30',
      passed: true,
      evidence: { op: '>=', left: 30, right: 30 },
    });
    expect(past.nearestMiss).toBeNull();

    const now = ok(await server.gql(EXPLAIN, { identity: email(3), audienceId })).explainMembership;
    expect(now).toMatchObject({
      qualifies: false,
      definitionVersion: 5,
      storedStatus: 'EXITED',
      agreesWithStored: true,
    });
    expect(now.root.text).toBe('loyalty.points >= 80 and loyalty.tier = "gold"');
    expect(now.root.children.map((c: any) => [c.text, c.passed])).toEqual([
      ['loyalty.points >= 80', false],
      ['loyalty.tier = "gold"', false],
    ]);
    // Both fail; the smaller clause is the nearest miss.
    expect(now.nearestMiss.text).toBe('loyalty.points >= 80');
    expect(now.nearestMiss.evidence).toEqual({ op: '>=', left: 30, right: 80 });

    // p8 (gold, 80 points) has been a member since the first job and still qualifies under version 5.
    const member = ok(await server.gql(EXPLAIN, { identity: email(8), audienceId })).explainMembership;
    expect(member).toMatchObject({ qualifies: true, storedStatus: 'EXISTING', agreesWithStored: true });
  });

  it('explains an ad-hoc expression, and answers null for an unknown profile or audience', async () => {
    const e = ok(
      await server.gql(EXPLAIN, { identity: email(9), expression: 'loyalty.points > 100 or loyalty.tier = "gold"' }),
    ).explainMembership;
    expect(e).toMatchObject({ qualifies: true, storedStatus: null, agreesWithStored: null, definitionVersion: null });
    expect(e.root.children.map((c: any) => c.passed)).toEqual([false, true]);
    expect(ok(await server.gql(EXPLAIN, { identity: email(99), expression: 'true' })).explainMembership).toBeNull();
    const missingAudience = ok(
      await server.gql(EXPLAIN, { identity: email(1), audienceId: 'QXVkaWVuY2U6OTk5' }),
    ).explainMembership;
    expect(missingAudience).toBeNull();
    const both = await server.gql(EXPLAIN, { identity: email(1), audienceId, expression: 'true' });
    expect(both.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(both.errors?.[0]?.message).toMatch(/either audienceId or expression/);
  });

  it('keeps the size after each evaluation, with its job, newest first', async () => {
    const history = ok(
      await server.gql(
        `query($id: ID!) { audience(id: $id) { sizeHistory(first: 10) { totalCount edges { node { size before at job { id } } } } } }`,
        { id: audienceId },
      ),
    ).audience.sizeHistory;
    expect(history.totalCount).toBe(3);
    expect(history.edges.map((e: any) => [e.node.before, e.node.size, e.node.job.id])).toEqual([
      [7, 2, jobs[2]],
      [5, 7, jobs[1]],
      [0, 5, jobs[0]],
    ]);
  });

  it('publishes size moves above the fraction once each job has committed', () => {
    const seen = (list: any[]) => list.map((c) => [c.audience.id, c.before, c.after, c.job.id]);
    expect(seen(changes)).toEqual([
      [audienceId, 0, 5, jobs[0]],
      [audienceId, 5, 7, jobs[1]],
      [audienceId, 7, 2, jobs[2]],
    ]);
    // 5 → 7 is a 40 % move: under a 50 % threshold.
    expect(seen(bigChanges)).toEqual([
      [audienceId, 0, 5, jobs[0]],
      [audienceId, 7, 2, jobs[2]],
    ]);
  });
});
