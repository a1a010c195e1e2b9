/**
 * The response cache against every kind of write that can change a page of audiences: the page
 * is read until it comes from the cache, the write is made, and the next read must show it —
 * whether the write came through a mutation, a job on a worker thread, streaming ingest, an
 * external audience's ingestion or another connection to the file.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseFile } from '../../src/config.js';
import { openDatabase } from '../../src/db/index.js';
import { segqlArgs } from '../segql-command.js';
import { ok, startTestServer, type TestServer } from './harness.js';
import { RUN, START_INGESTION } from './upload.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

const PAGE = `query Page($first: Int!) {
  audiences(first: $first) {
    edges { node {
      id name description size lifecycleState labels version updatedAt
      segmentDefinition {
        id name normalizedExpression evaluationInfo { batch streaming edge }
        latestJob { id status finishedAt progress { done } }
      }
    } }
  }
}`;

interface PageAudience {
  id: string;
  name: string;
  description: string | null;
  size: number;
  lifecycleState: string;
  labels: string[];
  version: number;
  segmentDefinition: {
    id: string;
    name: string;
    normalizedExpression: string;
    evaluationInfo: { batch: boolean; streaming: boolean; edge: boolean };
    latestJob: { id: string; status: string } | null;
  } | null;
}

/** Once keys exist, /metrics needs an admin key. */
let metricsHeaders: Record<string, string> = {};

async function cacheCount(outcome: string): Promise<number> {
  const text = await (await fetch(server.url.replace('/graphql', '/metrics'), { headers: metricsHeaders })).text();
  const match = new RegExp(`^segql_graphql_response_cache_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text);
  return Number(match?.[1] ?? 0);
}

async function page(headers: Record<string, string> = {}): Promise<PageAudience[]> {
  return ok(await server.gql(PAGE, { first: 100 }, headers)).audiences.edges.map((e: any) => e.node);
}

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `segql keys create …` as its own process, as an operator runs it; the key. */
function createKey(name: string, scope: string): string {
  return execFileSync(process.execPath, segqlArgs('keys', 'create', '--name', name, '--scope', scope), {
    cwd: root,
    env: { ...process.env, SEGQL_DATA_DIR: server.dataDir, SEGQL_LOG_LEVEL: 'silent' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

/** The page as the cache holds it: read until a read is a hit, so what follows tests invalidation. */
async function cachedPage(headers: Record<string, string> = {}): Promise<PageAudience[]> {
  await page(headers);
  const hits = await cacheCount('hit');
  const answer = await page(headers);
  expect(await cacheCount('hit')).toBe(hits + 1);
  return answer;
}

const byName = (audiences: PageAudience[], name: string) => audiences.find((a) => a.name === name);

async function define(name: string, expression: string, evaluationInfo?: Record<string, boolean>) {
  return ok(
    await server.gql(
      `mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id audience { id } } }`,
      { i: { name, expression: { value: expression }, lifecycleState: 'PUBLISHED', evaluationInfo } },
    ),
  ).createSegmentDefinition as { id: string; audience: { id: string } };
}

async function ingestProfiles(records: unknown[]) {
  const res = ok(
    await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', { r: records }),
  );
  expect(res.ingestProfiles.accepted).toBe(records.length);
}

const profile = (email: string, points: number) => ({
  identities: [{ namespace: 'email', id: email }],
  attributes: { loyalty: { points } },
});

describe('the response cache', () => {
  it('answers a repeated page from the cache, with the same answer as computing it', async () => {
    await define('gold', 'loyalty.points >= 100');
    const computed = await page();
    const cached = await cachedPage();
    expect(cached).toEqual(computed);
    expect(byName(cached, 'gold')).toMatchObject({ size: 0, segmentDefinition: { latestJob: null } });
  });

  it('shows a definition made, changed and its audience updated and deleted', async () => {
    expect(byName(await cachedPage(), 'silver')).toBeUndefined();
    const silver = await define('silver', 'loyalty.points >= 50');
    expect(byName(await cachedPage(), 'silver')).toMatchObject({
      segmentDefinition: { normalizedExpression: 'loyalty.points >= 50' },
    });

    ok(
      await server.gql(
        'mutation($id: ID!) { updateSegmentDefinition(id: $id, input: { expression: { value: "loyalty.points >= 60" }, evaluationInfo: { streaming: true } }) { id } }',
        { id: silver.id },
      ),
    );
    expect(byName(await cachedPage(), 'silver')?.segmentDefinition).toMatchObject({
      normalizedExpression: 'loyalty.points >= 60',
      evaluationInfo: { batch: true, streaming: true },
    });

    ok(
      await server.gql(
        'mutation($id: ID!) { updateAudience(id: $id, input: { description: "mid tier", labels: ["tiers"] }) { id } }',
        { id: silver.audience.id },
      ),
    );
    expect(byName(await cachedPage(), 'silver')).toMatchObject({ description: 'mid tier', labels: ['tiers'] });

    ok(
      await server.gql('mutation($id: ID!) { updateAudience(id: $id, input: { lifecycleState: INACTIVE }) { id } }', {
        id: silver.audience.id,
      }),
    );
    expect(byName(await cachedPage(), 'silver')?.lifecycleState).toBe('INACTIVE');

    const manual = ok(await server.gql('mutation { createAudience(input: { name: "hand-picked" }) { id } }'))
      .createAudience.id;
    expect(byName(await cachedPage(), 'hand-picked')).toMatchObject({ size: 0, segmentDefinition: null });
    ok(await server.gql('mutation($id: ID!) { deleteAudience(id: $id) }', { id: manual }));
    expect(byName(await cachedPage(), 'hand-picked')).toBeUndefined();
  });

  it('shows the members a manual audience gains', async () => {
    await ingestProfiles([profile('manual@x.io', 1)]);
    const id = ok(await server.gql('mutation { createAudience(input: { name: "picked" }) { id } }')).createAudience.id;
    expect(byName(await cachedPage(), 'picked')?.size).toBe(0);
    ok(
      await server.gql(
        'mutation($id: ID!) { addAudienceMembers(audienceId: $id, identities: [{ namespace: "email", id: "manual@x.io" }]) { id } }',
        { id },
      ),
    );
    expect(byName(await cachedPage(), 'picked')?.size).toBe(1);
  });

  it('shows what a segment job wrote on its worker thread', async () => {
    await ingestProfiles([profile('a@x.io', 150), profile('b@x.io', 20)]);
    const before = byName(await cachedPage(), 'gold')!;
    const job = ok(await server.gql('mutation { createSegmentJob(input: { all: true }) { id } }')).createSegmentJob.id;
    for (;;) {
      const status = ok(await server.gql('query($id: ID!) { segmentJob(id: $id) { status } }', { id: job })).segmentJob
        .status;
      if (status === 'SUCCEEDED') break;
      expect(['QUEUED', 'PROCESSING']).toContain(status);
      await new Promise((r) => setTimeout(r, 20));
    }
    const after = byName(await cachedPage(), 'gold')!;
    expect(before.segmentDefinition?.latestJob?.id).not.toBe(job);
    expect(after.segmentDefinition?.latestJob).toMatchObject({ id: job, status: 'SUCCEEDED' });
    expect(after.size).toBe(1);
  });

  it('shows members streaming ingest adds', async () => {
    await define('streamed', 'loyalty.points >= 500', { batch: false, streaming: true });
    expect(byName(await cachedPage(), 'streamed')?.size).toBe(0);
    await ingestProfiles([profile('big@x.io', 900)]);
    expect(byName(await cachedPage(), 'streamed')?.size).toBe(1);
  });

  it("shows an external audience's ingestion, which commits on a worker thread", async () => {
    const ext = ok(
      await server.gql(
        `mutation($input: CreateExternalAudienceInput!) { createExternalAudience(input: $input) { id audience { id } } }`,
        {
          input: {
            name: 'crm list',
            namespace: 'crm',
            fields: [{ name: 'email', type: 'STRING', identityNamespace: 'email' }],
          },
        },
      ),
    ).createExternalAudience;
    expect(byName(await cachedPage(), 'crm list')?.size).toBe(0);
    const run = ok(await server.gql(START_INGESTION, { id: ext.id, rows: [{ email: 'a@x.io' }, { email: 'b@x.io' }] }))
      .startExternalAudienceIngestion.id;
    for (;;) {
      const status = ok(await server.gql(RUN, { id: run })).node.status;
      if (status === 'SUCCEEDED') break;
      expect(['QUEUED', 'PROCESSING']).toContain(status);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(byName(await cachedPage(), 'crm list')?.size).toBe(2);
  });

  it('shows a change committed by another connection to the file', async () => {
    expect(byName(await cachedPage(), 'gold')?.description).toBeNull();
    const other = openDatabase(databaseFile(server.dataDir), { migrate: false });
    try {
      other.sqlite.prepare(`UPDATE audiences SET description = 'written elsewhere' WHERE name = 'gold'`).run();
    } finally {
      other.close();
    }
    expect(byName(await cachedPage(), 'gold')?.description).toBe('written elsewhere');
  });

  it('keeps no answer with errors', async () => {
    const query = 'query Bad($after: String) { audiences(first: 5, after: $after) { edges { cursor } } }';
    const misses = await cacheCount('miss');
    for (let i = 0; i < 2; i++) expect((await server.gql(query, { after: 'not a cursor' })).errors?.length).toBe(1);
    expect(await cacheCount('miss')).toBe(misses + 2);
  });

  it("never answers one sandbox's query with another's", async () => {
    ok(await server.gql('mutation { createSandbox(name: "cache-other") { name } }'));
    const prod = await cachedPage();
    expect(prod.length).toBeGreaterThan(0);
    expect(await page({ 'x-sandbox-name': 'cache-other' })).toEqual([]);
    await cachedPage({ 'x-sandbox-name': 'cache-other' });
    expect(await page()).toEqual(prod);
  });
});

describe('the response cache with API keys', () => {
  it('never hands an answer to a key with other scopes', async () => {
    await define('keyed', 'loyalty.points >= 1');
    const reader = { authorization: `Bearer ${createKey('dashboard', 'read')}` };
    const writer = { authorization: `Bearer ${createKey('loader', 'write')}` };
    const admin = { authorization: `Bearer ${createKey('ops', 'read,write,admin')}` };
    // The server picks up keys made by another process within a moment (a keep-alive socket
    // it closed meanwhile may reset one poll).
    const until = Date.now() + 10_000;
    const open = () =>
      server.gql('{ __typename }').then(
        (r) => r.errors === undefined,
        () => true,
      );
    while (await open()) {
      if (Date.now() > until) throw new Error('the server did not pick up the keys');
      await new Promise((r) => setTimeout(r, 100));
    }

    metricsHeaders = admin;
    const read = await cachedPage(reader);
    expect(read.length).toBeGreaterThan(0);
    const hits = await cacheCount('hit');
    const refused = await server.gql(PAGE, { first: 100 }, writer);
    expect(refused.data?.audiences ?? null).toBeNull();
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(await page(admin)).toEqual(read);
    expect(await cacheCount('hit')).toBe(hits);
  });
});
