import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eBackend, ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

const CREATE = 'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id } }';
const JOB = 'mutation($input: CreateSegmentJobInput!) { createSegmentJob(input: $input) { id } }';
const PAGE = `query($first: Int!) { audiences(first: $first) { edges { node { id name size
  segmentDefinition { id name normalizedExpression latestJob { id status createdAt } } } } } }`;

async function statements(): Promise<number> {
  const text = await (await fetch(server.url.replace('/graphql', '/metrics'))).text();
  return Number(/^segql_sql_statements_total (\d+)$/m.exec(text)?.[1]);
}

async function finished(id: string): Promise<void> {
  for (;;) {
    const job = ok(await server.gql('query($id: ID!) { segmentJob(id: $id) { status } }', { id })).segmentJob;
    if (job.status === 'SUCCEEDED') return;
    if (job.status === 'FAILED' || job.status === 'CANCELLED') throw new Error(`job ${id} ${job.status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function runJob(input: Record<string, unknown>): Promise<string> {
  const { id } = ok(await server.gql(JOB, { input })).createSegmentJob;
  await finished(id);
  return id;
}

async function define(name: string, value: string): Promise<string> {
  return ok(await server.gql(CREATE, { i: { name, expression: { value }, lifecycleState: 'PUBLISHED' } }))
    .createSegmentDefinition.id;
}

describe('SegmentDefinition.latestJob', () => {
  it('names the newest job that evaluated each definition, in a constant number of statements', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await define(`points ${i}`, `loyalty.points >= ${i * 10}`));
    const first = await runJob({ segmentDefinitionIds: [ids[0]] });
    const all = await runJob({ all: true });
    const late = await define('made after the all job', 'loyalty.points >= 1000');
    const second = await runJob({ segmentDefinitionIds: [ids[1]] });
    expect(new Set([first, all, second]).size).toBe(3);

    const page = ok(await server.gql(PAGE, { first: 13 })).audiences.edges.map((e: any) => e.node);
    const latest = new Map(page.map((a: any) => [a.segmentDefinition.id, a.segmentDefinition.latestJob]));
    expect(latest.get(ids[0])).toMatchObject({ id: all, status: 'SUCCEEDED' });
    expect(latest.get(ids[1])).toMatchObject({ id: second, status: 'SUCCEEDED' });
    for (const id of ids.slice(2)) expect(latest.get(id)).toMatchObject({ id: all });
    expect(latest.get(late)).toBeNull();

    // A scrape runs statements of its own (the jobs gauge): measure it, then subtract it.
    const a = await statements();
    const scrape = (await statements()) - a;
    const cost = async (first: number) => {
      const before = await statements();
      ok(await server.gql(PAGE, { first }));
      return (await statements()) - before - scrape;
    };
    // Pages of sizes not asked for before are computed (the write stamp, then the page's own
    // statements); asked again, the same page comes from the response cache at the stamp alone.
    // On PostgreSQL (no response cache) a background statement of the node (the streaming sweep)
    // can land in a measurement; it only ever adds, so the least of three is the page's own.
    const steady = async (first: number) =>
      e2eBackend() === 'postgres' ? Math.min(await cost(first), await cost(first), await cost(first)) : cost(first);
    const small = await steady(3);
    const large = await steady(12);
    expect(large).toBe(small);
    expect(large).toBeLessThanOrEqual(4);
    // On PostgreSQL nothing is kept (no stamp sees other nodes' commits): the page is computed again.
    expect(await steady(12)).toBe(e2eBackend() === 'postgres' ? large : 1);
  });

  it('counts an all job for the definitions batch-enabled when it was queued, whatever they are now', async () => {
    const UPDATE = `mutation($id: ID!, $input: UpdateSegmentDefinitionInput!) {
      updateSegmentDefinition(id: $id, input: $input) { evaluationInfo { batch streaming } } }`;
    const LATEST = 'query($id: ID!) { segmentDefinition(id: $id) { latestJob { id } } }';
    const latestOf = async (id: string) => ok(await server.gql(LATEST, { id })).segmentDefinition.latestJob?.id ?? null;
    const batch = await define('batch until after the all job', 'loyalty.points >= 5');
    const streaming = ok(
      await server.gql(CREATE, {
        i: {
          name: 'streaming until after the all job',
          expression: { value: 'loyalty.points >= 7' },
          lifecycleState: 'PUBLISHED',
          evaluationInfo: { batch: false, streaming: true },
        },
      }),
    ).createSegmentDefinition.id;
    const all = await runJob({ all: true });
    const switched = async (id: string, info: object) =>
      ok(await server.gql(UPDATE, { id, input: { evaluationInfo: info } })).updateSegmentDefinition.evaluationInfo;
    expect(await switched(batch, { batch: false, streaming: true })).toEqual({ batch: false, streaming: true });
    expect(await switched(streaming, { batch: true })).toMatchObject({ batch: true });
    // The all job evaluated the first and not the second.
    expect(await latestOf(batch)).toBe(all);
    expect(await latestOf(streaming)).toBeNull();
  });
});
