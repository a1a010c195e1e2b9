/**
 * Dataset.records pages an export's rows out of its files (through the marks of where rows
 * start): across marks, across the files of a per-audience export, backwards, for a CSV export
 * (its records file), and not with a cursor of a replaced export.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;
const SB = 'records';
const N = 2600;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

const gql = (query: string, variables?: Record<string, unknown>) =>
  server.gql(query, variables, { 'x-sandbox-name': SB });

const RECORDS = `query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) { dataset(id: $id) {
  records(first: $first, after: $after, last: $last, before: $before) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { record } } } } }`;

async function definition(name: string, expression: string) {
  return ok(
    await gql(
      'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id audience { id } } }',
      {
        i: { name, expression: { value: expression }, lifecycleState: 'PUBLISHED' },
      },
    ),
  ).createSegmentDefinition;
}

async function exportInto(input: Record<string, unknown>) {
  const job = ok(
    await gql('mutation($i: CreateExportJobInput!) { createExportJob(input: $i) { id } }', { i: input }),
  ).createExportJob;
  for (;;) {
    const s = ok(
      await gql(
        'query($id: ID!) { exportJob(id: $id) { status error files { path rows } destination { dataset { id } } } }',
        {
          id: job.id,
        },
      ),
    ).exportJob;
    if (s.status === 'SUCCEEDED') return s;
    if (['FAILED', 'CANCELLED'].includes(s.status)) throw new Error(`export ${s.status}: ${s.error}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function fileLines(datasetId: string, name: string): Promise<unknown[]> {
  const base = server.url.replace(/\/graphql$/, '');
  const res = await fetch(`${base}/datasets/${encodeURIComponent(datasetId)}/files/${name}`, {
    headers: { 'x-sandbox-name': SB },
  });
  expect(res.status).toBe(200);
  return (await res.text())
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

async function page(datasetId: string, args: Record<string, unknown>) {
  return ok(await gql(RECORDS, { id: datasetId, ...args })).dataset.records;
}

async function allRecords(datasetId: string, size: number) {
  const out: unknown[] = [];
  let after: string | null = null;
  for (;;) {
    const p = await page(datasetId, { first: size, after });
    out.push(...p.edges.map((e: any) => e.node.record));
    if (!p.pageInfo.hasNextPage) return out;
    after = p.pageInfo.endCursor;
  }
}

let gold: string;
let high: string;

beforeAll(async () => {
  ok(await server.gql('mutation($n: String!) { createSandbox(name: $n) { name } }', { n: SB }));
  const r = Array.from({ length: N }, (_, i) => ({
    identities: [{ namespace: 'email', id: `p${i}@example.com` }],
    attributes: {
      person: { name: { firstName: i % 7 === 0 ? 'Zoë, "the" \u{1F389}' : `N${i}` } },
      loyalty: { tier: i % 2 === 0 ? 'gold' : 'silver', points: i },
    },
  }));
  ok(await gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', { r }));
  gold = (await definition('Gold', 'loyalty.tier = "gold"')).audience.id;
  high = (await definition('High', 'loyalty.points >= 1500')).audience.id;
  ok(await gql('mutation { createSegmentJob(input: { all: true }) { id } }'));
  for (;;) {
    const size = ok(await gql('query($id: ID!) { audience(id: $id) { size } }', { id: high })).audience.size;
    if (size === N - 1500) break;
    await new Promise((r) => setTimeout(r, 20));
  }
});

describe('Dataset.records', () => {
  it('pages a per-audience NDJSON export in file order, across marks and files, both ways', async () => {
    const job = await exportInto({
      audiences: [{ audienceId: gold }, { audienceId: high }],
      destination: { datasetName: 'per-audience', format: 'NDJSON', audiencePerFile: true },
    });
    const datasetId = job.destination.dataset.id;
    expect(job.files.map((f: any) => f.rows)).toEqual([N / 2, N - 1500]);
    const lines = [
      ...(await fileLines(datasetId, job.files[0].path)),
      ...(await fileLines(datasetId, job.files[1].path)),
    ];
    expect(lines).toHaveLength(N / 2 + N - 1500);

    // Pages of 333 cross the marks (every 1,000th row) and the boundary between the files at row 1,300.
    expect(await allRecords(datasetId, 333)).toEqual(lines);
    const first = await page(datasetId, { first: 2 });
    expect(first.totalCount).toBe(lines.length);

    // From a cursor in the middle, forward and backward.
    let cursor: string | null = null;
    for (let got = 0; got < 1005; ) {
      const p: any = await page(datasetId, { first: Math.min(500, 1005 - got), after: cursor });
      got += p.edges.length;
      cursor = p.pageInfo.endCursor;
    }
    const forward = await page(datasetId, { first: 400, after: cursor });
    expect(forward.edges.map((e: any) => e.node.record)).toEqual(lines.slice(1005, 1405));
    expect(forward.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
    const backward = await page(datasetId, { last: 7, before: cursor });
    expect(backward.edges.map((e: any) => e.node.record)).toEqual(lines.slice(997, 1004));
    expect(backward.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
    const tail = await page(datasetId, { last: 3 });
    expect(tail.edges.map((e: any) => e.node.record)).toEqual(lines.slice(-3));
    expect(tail.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
    const end = await page(datasetId, { first: 10, after: tail.pageInfo.endCursor });
    expect(end.edges).toEqual([]);
  });

  it('pages a CSV export from its records file, and refuses a cursor of a replaced export', async () => {
    const input = { audiences: [{ audienceId: gold }], destination: { datasetName: 'csv', format: 'CSV' } };
    const nd = await exportInto({ ...input, destination: { datasetName: 'csv-twin', format: 'NDJSON' } });
    const expected = await fileLines(nd.destination.dataset.id, nd.files[0].path);
    const job = await exportInto(input);
    const datasetId = job.destination.dataset.id;
    expect(await allRecords(datasetId, 500)).toEqual(expected);
    const files = ok(await gql('query($id: ID!) { dataset(id: $id) { files { name } } }', { id: datasetId })).dataset
      .files;
    expect(files.map((f: any) => f.name).sort()).toEqual([job.files[0].path, 'manifest.json'].sort());

    const p = await page(datasetId, { first: 5 });
    await exportInto(input);
    const stale = await gql(RECORDS, { id: datasetId, first: 5, after: p.pageInfo.endCursor });
    expect(stale.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
    expect(await allRecords(datasetId, 500)).toEqual(expected);

    // Only the current export's records file is kept.
    const recordFiles = readdirSync(join(server.dataDir, 'exports'), { recursive: true, encoding: 'utf8' }).filter(
      (f) => /records-\d+\.ndjson$/.test(f),
    );
    expect(recordFiles).toHaveLength(1);
  });
});
