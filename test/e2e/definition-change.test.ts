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

const FIELDS = `id status seed wouldJoin { value low high exact } wouldLeave { value low high exact }
  wouldStay { value low high exact } progress { done total }`;
const SIDES = [
  ['wouldJoin', TRUTH.join],
  ['wouldLeave', TRUTH.leave],
  ['wouldStay', TRUTH.stay],
] as const;
const CHANGE = { value: 'loyalty.points >= 40 and loyalty.points < 90' };
const DRY_RUN = `mutation($id: ID!, $e: PqlExpressionInput!, $seed: Int) {
  previewDefinitionChange(id: $id, expression: $e, seed: $seed) { id status seed } }`;
/** Seeds whose running intervals were found to cover the truth at every checkpoint. */
const COVERING_SEEDS = [1, 2, 3];

/** The running estimates of a dry run's states, by profiles read. */
function checkpoints(events: any[]): Map<number, any> {
  const out = new Map<number, any>();
  for (const e of events) {
    if (e.status !== 'PROCESSING' || e.progress.done === 0 || e.wouldJoin.exact) continue;
    out.set(e.progress.done, { wouldJoin: e.wouldJoin, wouldLeave: e.wouldLeave, wouldStay: e.wouldStay });
  }
  return out;
}

/**
 * Every published state of every dry run, from one jobEvents subscription known to be live (it
 * has delivered a warm-up run) before the runs under test start, so the states seen of a run
 * depend on the run only, not on when a subscriber joined.
 */
async function watchDryRuns() {
  const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
  const states = new Map<string, any[]>();
  let failed: unknown;
  client.subscribe(
    {
      query: `subscription { jobEvents(kinds: [DEFINITION_CHANGE_PREVIEW]) { ... on DefinitionChangePreview { ${FIELDS} } } }`,
    },
    {
      next: (m) => {
        const e = (m.data as any).jobEvents;
        states.set(e.id, [...(states.get(e.id) ?? []), e]);
      },
      error: (err) => {
        failed = err;
      },
      complete: () => {},
    },
  );
  const ended = (id: string) => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(states.get(id)?.at(-1)?.status);
  const until = async (test: () => boolean, ms: number) => {
    for (const end = Date.now() + ms; !test() && Date.now() < end; ) {
      if (failed) throw failed;
      await new Promise((r) => setTimeout(r, 10));
    }
    return test();
  };
  const start = async (id: string, seed: number) =>
    ok(await server.gql(DRY_RUN, { id, e: CHANGE, seed })).previewDefinitionChange.id as string;
  return {
    async ready(definitionId: string) {
      for (;;) {
        const warmUp = await start(definitionId, 0);
        if (await until(() => ended(warmUp), 5_000)) return;
      }
    },
    /** Runs a dry run of CHANGE with `seed` to its end; all its states, in order. */
    async run(definitionId: string, seed: number) {
      const id = await start(definitionId, seed);
      if (!(await until(() => ended(id), 30_000))) throw new Error(`dry run ${id} did not end`);
      const seen = states.get(id)!;
      expect(seen.at(-1).status).toBe('SUCCEEDED');
      return seen;
    },
    /** Waits until every dry run it has seen has ended (so none still runs into the next test). */
    async settle() {
      if (!(await until(() => [...states.keys()].every(ended), 30_000))) throw new Error('dry runs still running');
    },
    close: () => client.dispose(),
  };
}

describe('previewDefinitionChange', () => {
  let a: any;
  let gold: any;
  let nineties: any;
  let highNineties: any;
  let watcher: Awaited<ReturnType<typeof watchDryRuns>>;

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
    // A chain: Fifty plus <- Gold fifty plus <- Gold nineties <- Gold high nineties; and a
    // dependent of a dependent the change does not reach.
    nineties = await definition('Gold nineties', 'inSegment("Gold fifty plus") and loyalty.points >= 90');
    highNineties = await definition('Gold high nineties', 'inSegment("Gold nineties") and loyalty.points >= 95');
    await definition('Gold sixties and seventies', 'inSegment("Sixties and seventies") and loyalty.tier = "gold"');
    await runAll();
    watcher = await watchDryRuns();
    await watcher.ready(a.id);
  }, 60_000);
  afterAll(() => watcher?.close());

  it('estimates with intervals that cover the truth at every checkpoint it publishes, the same for the same seed', async () => {
    // Each seed was run and covered the truth at every checkpoint; the estimates at a count
    // read are a function of the seed (pages are of fixed sizes, test/domain/definition-change
    // .test.ts, which also holds the coverage rate over 40 seeds), so this never fails by chance.
    // A report the busy main thread handles after the job has ended is not published, so only
    // the states seen are compared, not how many.
    for (const seed of COVERING_SEEDS) {
      const first = checkpoints(await watcher.run(a.id, seed));
      const again = checkpoints(await watcher.run(a.id, seed));
      for (const [done, e] of again) if (first.has(done)) expect(e, `seed ${seed} at ${done}`).toEqual(first.get(done));
      for (const [done, e] of [...first, ...again]) {
        expect([1000, PROFILES]).toContain(done);
        for (const [side, truth] of SIDES) {
          expect(e[side].low, `seed ${seed}: ${side} at ${done}`).toBeLessThanOrEqual(truth);
          expect(e[side].high, `seed ${seed}: ${side} at ${done}`).toBeGreaterThanOrEqual(truth);
        }
      }
    }
  }, 60_000);

  it('is watched on definitionChangePreviewUpdated, then gives exact counts, samples and dependents', async () => {
    const seed = COVERING_SEEDS[0]!;
    const expected = checkpoints(await watcher.run(a.id, seed));
    const started = ok(await server.gql(DRY_RUN, { id: a.id, e: CHANGE, seed })).previewDefinitionChange;
    expect(started).toMatchObject({ status: 'QUEUED', seed });

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
    // Whichever running states this subscriber saw are the seed's (each run may miss a report
    // handled after its job ended, so a state seen in one run only is checked for coverage).
    for (const [done, e] of checkpoints(events)) {
      if (expected.has(done)) expect(e, `at ${done}`).toEqual(expected.get(done));
      for (const [side, truth] of SIDES) {
        expect(e[side].low, `${side} at ${done}`).toBeLessThanOrEqual(truth);
        expect(e[side].high, `${side} at ${done}`).toBeGreaterThanOrEqual(truth);
      }
    }

    const done = ok(
      await server.gql(
        `query($id: ID!) { definitionChangePreview(id: $id) { ${FIELDS}
          joinSample(first: 60) { totalCount pageInfo { endCursor hasNextPage } edges { node { identities { value } attributes } } }
          leaveSample(first: 100) { totalCount edges { node { attributes } } }
          affectedDependents { id name } dependentChanges { segmentDefinition { id } wouldJoin wouldLeave } } }`,
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
    // Gold members of 40–49 would join the direct dependent, gold members of 90–99 leave it, and
    // so leave Gold nineties (which reads it), and those of 96 and 98 Gold high nineties (which
    // reads that). The 60–79 dependent and its own dependent do not move.
    expect(done.affectedDependents).toEqual([
      { id: gold.id, name: 'Gold fifty plus' },
      { id: nineties.id, name: 'Gold nineties' },
      { id: highNineties.id, name: 'Gold high nineties' },
    ]);
    expect(done.dependentChanges).toEqual([
      { segmentDefinition: { id: gold.id }, wouldJoin: 150, wouldLeave: 150 },
      { segmentDefinition: { id: nineties.id }, wouldJoin: 0, wouldLeave: 150 },
      { segmentDefinition: { id: highNineties.id }, wouldJoin: 0, wouldLeave: 60 },
    ]);
  }, 60_000);

  it('settles evaluation settings as an update would, before saving', async () => {
    // A single event with no time window cannot stream: asking for streaming would run as batch.
    const batchOnly = 'xEvent[eventType = "commerce.purchases"].count() > 0';
    const settings = { batch: false, streaming: true };
    const dryRun = ok(
      await server.gql(
        `mutation($id: ID!, $e: PqlExpressionInput!, $s: EvaluationInfoInput) {
          previewDefinitionChange(id: $id, expression: $e, evaluationInfo: $s) {
            id evaluationInfo { batch streaming edge } evaluationWarnings } }`,
        { id: a.id, e: { value: batchOnly }, s: settings },
      ),
    ).previewDefinitionChange;
    expect(dryRun.evaluationInfo).toEqual({ batch: true, streaming: false, edge: false });
    expect(dryRun.evaluationWarnings).toHaveLength(1);
    expect(dryRun.evaluationWarnings[0]).toMatch(/^streaming was requested .* runs as batch: .* no time window/);
    // What saving the same change says, on a scratch definition with the same settings as A.
    const scratch = await definition('Scratch', 'loyalty.points >= 50');
    const saved = ok(
      await server.gql(
        `mutation($id: ID!, $e: PqlExpressionInput!, $s: EvaluationInfoInput) {
          updateSegmentDefinition(id: $id, input: { expression: $e, evaluationInfo: $s }) {
            evaluationInfo { batch streaming edge } evaluationWarnings } }`,
        { id: scratch.id, e: { value: batchOnly }, s: settings },
      ),
    ).updateSegmentDefinition;
    expect(saved).toEqual({ evaluationInfo: dryRun.evaluationInfo, evaluationWarnings: dryRun.evaluationWarnings });
    ok(await server.gql('mutation($id: ID!) { deleteSegmentDefinition(id: $id) }', { id: scratch.id }));

    // An expression that can stream keeps streaming, with no warning; settings left out keep A's.
    const streamable = ok(
      await server.gql(
        `mutation($id: ID!) { previewDefinitionChange(id: $id, expression: { value: "loyalty.points >= 40" },
          evaluationInfo: { streaming: true }) { evaluationInfo { batch streaming edge } evaluationWarnings } }`,
        { id: a.id },
      ),
    ).previewDefinitionChange;
    expect(streamable).toEqual({
      evaluationInfo: { batch: true, streaming: true, edge: false },
      evaluationWarnings: [],
    });
    const unchanged = ok(
      await server.gql(
        `mutation($id: ID!) { previewDefinitionChange(id: $id, expression: { value: "loyalty.points >= 40" }) {
          evaluationInfo { batch streaming edge } evaluationWarnings } }`,
        { id: a.id },
      ),
    ).previewDefinitionChange;
    expect(unchanged).toEqual({
      evaluationInfo: { batch: true, streaming: false, edge: false },
      evaluationWarnings: [],
    });

    // No method at all is refused on the request, naming the argument.
    const none = await server.gql(
      `mutation($id: ID!) { previewDefinitionChange(id: $id, expression: { value: "loyalty.points >= 40" },
        evaluationInfo: { batch: false, streaming: false, edge: false }) { id } }`,
      { id: a.id },
    );
    expect(none.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'evaluationInfo' });
    await watcher.settle();
  }, 60_000);

  it('is followed by updateSegmentDefinition(expectedVersion), and the next evaluation lands on the preview', async () => {
    const sizeOf = async (d: any) =>
      ok(await server.gql('query($id: ID!) { audience(id: $id) { size } }', { id: d.audience.id })).audience.size;
    const before = [await sizeOf(gold), await sizeOf(nineties), await sizeOf(highNineties)];
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
    // The dependents moved as the dry run said: +150 -150, -150, -60.
    expect([await sizeOf(gold), await sizeOf(nineties), await sizeOf(highNineties)]).toEqual([
      before[0],
      before[1] - 150,
      before[2] - 60,
    ]);
  }, 60_000);

  it('refuses an expression that does not check, on the request', async () => {
    const res = await server.gql(
      `mutation($id: ID!) { previewDefinitionChange(id: $id, expression: { value: "loyalty.nope > 1" }) { id } }`,
      { id: a.id },
    );
    expect(res.errors?.[0]?.extensions?.code).toBe('PQL_TYPE_ERROR');
  });
});
