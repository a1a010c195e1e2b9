import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { parse as parseCsv } from 'csv-parse/sync';
import { parquetReadObjects } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, readSse, startTestServer, type TestServer } from './harness.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

const INGEST = 'mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }';
const EXPORT = 'mutation($i: CreateExportJobInput!) { createExportJob(input: $i) { id status } }';
const WATCH = `query($id: ID!) { exportJob(id: $id) { id status error mode changesSince progress { done total }
  files { path audienceId rows bytes sha256 } manifest { path sha256 bytes }
  metrics { totalExportedProfileCounter exportedProfileByNamespaceCounter { namespace count } totalTimeMs }
  destination { format audiencePerFile dataset { id name format } } } }`;

// Names that break naive CSV and JSON writers: commas, quotes, newlines, emoji, non-ASCII.
const NAMES = ['Plain', 'Comma, Name', 'Quote "Q" Name', 'Line\nBreak', 'Emoji 🎉 Ünïcødé', 'CR\r\nLF', '中文名'];

function people(prefix: string, n: number) {
  return Array.from({ length: n }, (_, i) => ({
    identities: [
      { namespace: 'email', id: `${prefix}${i}@example.com` },
      ...(i % 2 === 0 ? [{ namespace: 'crmId', id: `${prefix}-C${i}` }] : []),
    ],
    attributes: {
      person: { name: { firstName: NAMES[i % NAMES.length], lastName: `Last${i}` } },
      loyalty: { tier: ['gold', 'silver'][i % 2], points: i * 10 },
      preferences: { categories: ['a,b', `c"${i}`] },
    },
  }));
}

async function gqlIn(sandbox: string, query: string, variables?: Record<string, unknown>) {
  return server.gql(query, variables, { 'x-sandbox-name': sandbox });
}

async function setupSandbox(name: string, n: number) {
  ok(await server.gql('mutation($n: String!) { createSandbox(name: $n) { name } }', { n: name }));
  ok(await gqlIn(name, INGEST, { r: people(name, n) }));
  const def = ok(
    await gqlIn(
      name,
      'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id audience { id } } }',
      { i: { name: 'Gold', expression: { value: 'loyalty.tier = "gold"' }, lifecycleState: 'PUBLISHED' } },
    ),
  ).createSegmentDefinition;
  await segmentJob(name, def.id);
  return { audienceId: def.audience.id as string, definitionId: def.id as string };
}

async function segmentJob(sandbox: string, definitionId: string) {
  const job = ok(
    await gqlIn(sandbox, 'mutation($i: CreateSegmentJobInput!) { createSegmentJob(input: $i) { id } }', {
      i: { segmentDefinitionIds: [definitionId] },
    }),
  ).createSegmentJob;
  for (;;) {
    const s = ok(await gqlIn(sandbox, 'query($id: ID!) { segmentJob(id: $id) { status } }', { id: job.id })).segmentJob;
    if (s.status === 'SUCCEEDED') return;
    if (['FAILED', 'CANCELLED'].includes(s.status)) throw new Error(`segment job ${s.status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function runExport(sandbox: string, input: Record<string, unknown>) {
  const job = ok(await gqlIn(sandbox, EXPORT, { i: input })).createExportJob;
  for (;;) {
    const s = ok(await gqlIn(sandbox, WATCH, { id: job.id })).exportJob;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(s.status)) return s;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The profile schema's leaf paths under `prefix` (objects excluded), in path order, as exports write them. */
async function profileLeaves(sandbox: string, prefix: string): Promise<string[]> {
  const fields = ok(await gqlIn(sandbox, '{ profileSchema { profileFields { path type } } }')).profileSchema
    .profileFields as { path: string; type: string }[];
  return fields
    .filter((f) => f.path.startsWith(prefix) && !f.type.startsWith('object'))
    .map((f) => f.path)
    .sort();
}

async function download(sandbox: string, datasetId: string, name: string, headers: Record<string, string> = {}) {
  return fetch(`${server.url.replace(/\/graphql$/, '')}/datasets/${encodeURIComponent(datasetId)}/files/${name}`, {
    headers: { 'x-sandbox-name': sandbox, ...headers },
  });
}

/** What Audience.members says, with each member's attributes: the truth every export is compared with. */
async function membersOf(sandbox: string, audienceId: string) {
  const a = ok(
    await gqlIn(
      sandbox,
      `query($id: ID!) { audience(id: $id) { members(first: 500) { edges { node { status qualifiedAt exitedAt
        profile { identities { namespace value } attributes } } } } } }`,
      { id: audienceId },
    ),
  ).audience;
  return new Map<string, any>(
    a.members.edges.map((e: any) => [
      e.node.profile.identities.find((i: any) => i.namespace === 'email').value,
      { ...e.node, attributes: e.node.profile.attributes },
    ]),
  );
}

const emailOf = (identities: { namespace: string; id: string }[]) =>
  identities.find((i) => i.namespace === 'email')!.id;

describe('export jobs', () => {
  it('round-trips NDJSON, CSV and Parquet against Audience.members, with hashes that match the bytes', async () => {
    const sb = 'roundtrip';
    const { audienceId } = await setupSandbox(sb, 40);
    const truth = await membersOf(sb, audienceId);
    expect(truth.size).toBe(20);

    // NDJSON, all fields.
    const nd = await runExport(sb, {
      audiences: [{ audienceId }],
      destination: { datasetName: 'gold-nd', format: 'NDJSON' },
    });
    expect(nd).toMatchObject({ status: 'SUCCEEDED', mode: 'FULL', progress: { done: 20, total: 20 } });
    expect(nd.files).toHaveLength(1);
    expect(nd.metrics.totalExportedProfileCounter).toBe(20);
    expect(
      Object.fromEntries(nd.metrics.exportedProfileByNamespaceCounter.map((c: any) => [c.namespace, c.count])),
    ).toEqual({ email: 20, crmId: 20 });
    const ndRes = await download(sb, nd.destination.dataset.id, nd.files[0].path);
    expect(ndRes.status).toBe(200);
    const ndBytes = Buffer.from(await ndRes.arrayBuffer());
    expect(ndRes.headers.get('content-length')).toBe(String(ndBytes.length));
    expect(ndRes.headers.get('etag')).toBe(`"${nd.files[0].sha256}"`);
    expect(createHash('sha256').update(ndBytes).digest('hex')).toBe(nd.files[0].sha256);
    expect(ndBytes.length).toBe(nd.files[0].bytes);
    const lines = ndBytes
      .toString('utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(20);
    for (const line of lines) {
      const m = truth.get(emailOf(line.identities));
      expect(m).toBeDefined();
      expect(line).toMatchObject({ audienceId, status: m.status, qualifiedAt: m.qualifiedAt, exitedAt: m.exitedAt });
      expect(line.attributes).toEqual(m.attributes);
    }

    // CSV, chosen fields (an object path expands to its leaves), arrays as JSON text.
    const csv = await runExport(sb, {
      audiences: [{ audienceId }],
      fields: ['person.name', 'preferences.categories'],
      destination: { datasetName: 'gold-csv', format: 'CSV' },
    });
    expect(csv.status).toBe('SUCCEEDED');
    const csvText = await (await download(sb, csv.destination.dataset.id, csv.files[0].path)).text();
    const rows = parseCsv(csvText, { columns: true }) as Record<string, string>[];
    // `person.name` expands to every leaf the profile schema has under it, in path order.
    const nameLeaves = await profileLeaves(sb, 'person.name.');
    expect(nameLeaves).toContain('person.name.firstName');
    expect(Object.keys(rows[0]!)).toEqual([
      'audienceId',
      'identities',
      'status',
      'qualifiedAt',
      'exitedAt',
      ...nameLeaves,
      'preferences.categories',
    ]);
    expect(rows).toHaveLength(20);
    for (const row of rows) {
      const m = truth.get(emailOf(JSON.parse(row.identities!)));
      expect(row.status).toBe(m.status);
      expect(row.qualifiedAt).toBe(m.qualifiedAt);
      expect(row['person.name.firstName']).toBe(m.attributes.person.name.firstName);
      expect(row['person.name.lastName']).toBe(m.attributes.person.name.lastName);
      expect(JSON.parse(row['preferences.categories']!)).toEqual(m.attributes.preferences.categories);
    }
    expect(new Set(rows.map((r) => r['person.name.firstName']))).toEqual(new Set(NAMES.slice(0, 7)));

    // Parquet, typed columns.
    const pq = await runExport(sb, {
      audiences: [{ audienceId }],
      fields: ['person.name.firstName', 'loyalty'],
      destination: { datasetName: 'gold-pq', format: 'PARQUET' },
    });
    expect(pq.status).toBe('SUCCEEDED');
    const pqBytes = await (await download(sb, pq.destination.dataset.id, pq.files[0].path)).arrayBuffer();
    const objects = (await parquetReadObjects({ file: pqBytes })) as Record<string, any>[];
    expect(objects).toHaveLength(20);
    for (const o of objects) {
      const m = truth.get(emailOf(o.identities));
      expect(o['person.name.firstName']).toBe(m.attributes.person.name.firstName);
      expect(o['loyalty.points']).toBe(m.attributes.loyalty.points);
      expect(typeof o['loyalty.points']).toBe('number');
      expect(o['loyalty.tier']).toBe('gold');
      expect(o.status).toBe(m.status);
      expect(new Date(o.qualifiedAt).toISOString()).toBe(m.qualifiedAt);
    }

    // The dataset pages the same rows through the API.
    const ds = ok(
      await gqlIn(
        sb,
        `query($id: ID!) { dataset(id: $id) { name format lastExport { id } files { name rows sha256 }
          records(first: 15) { totalCount pageInfo { hasNextPage endCursor } edges { node { record } } } } }`,
        { id: nd.destination.dataset.id },
      ),
    ).dataset;
    expect(ds).toMatchObject({ name: 'gold-nd', format: 'NDJSON', lastExport: { id: nd.id } });
    expect(ds.records.totalCount).toBe(20);
    expect(ds.records.edges.map((e: any) => e.node.record)).toEqual(lines.slice(0, 15));
    expect(ds.files.map((f: any) => f.name).sort()).toEqual([nd.files[0].path, 'manifest.json'].sort());
    const manifest = await (await download(sb, nd.destination.dataset.id, 'manifest.json')).json();
    expect(manifest).toMatchObject({
      job: nd.id,
      rows: 20,
      files: [{ name: nd.files[0].path, sha256: nd.files[0].sha256 }],
    });
  });

  it('writes one file per audience, skips empty ones on request, and writes an empty file otherwise', async () => {
    const sb = 'perfile';
    const { audienceId } = await setupSandbox(sb, 10);
    const nobody = ok(
      await gqlIn(
        sb,
        'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id audience { id } } }',
        { i: { name: 'Nobody', expression: { value: 'loyalty.points > 100000' } } },
      ),
    ).createSegmentDefinition;
    await segmentJob(sb, nobody.id);
    const both = [{ audienceId }, { audienceId: nobody.audience.id }];
    const skipped = await runExport(sb, {
      audiences: both,
      emptyAudienceFilter: true,
      destination: { datasetName: 'split', format: 'CSV', audiencePerFile: true },
    });
    expect(skipped.status).toBe('SUCCEEDED');
    expect(skipped.files.map((f: any) => [f.audienceId, f.rows])).toEqual([[audienceId, 5]]);
    const kept = await runExport(sb, {
      audiences: both,
      destination: { datasetName: 'split', format: 'CSV', audiencePerFile: true },
    });
    expect(kept.files.map((f: any) => [f.audienceId, f.rows])).toEqual([
      [audienceId, 5],
      [nobody.audience.id, 0],
    ]);
    expect(kept.destination.dataset.id).toBe(skipped.destination.dataset.id);
    const empty = await (await download(sb, kept.destination.dataset.id, kept.files[1].path)).text();
    // Attribute columns are the profile schema's leaf fields, in its path order.
    const leaves = await profileLeaves(sb, '');
    expect(leaves).toContain('loyalty.tier');
    expect(empty).toBe(`${['audienceId', 'identities', 'status', 'qualifiedAt', 'exitedAt', ...leaves].join(',')}\r\n`);
  });

  it('keeps, from fromIngestTimestamp, the profiles whose record or events were ingested since', async () => {
    const sb = 'fresh';
    const { audienceId } = await setupSandbox(sb, 10);
    await new Promise((r) => setTimeout(r, 5));
    const since = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 5));
    // fresh0 gains an event only (its record untouched); fresh2's record changes; both stay gold.
    const ingested = ok(
      await gqlIn(sb, 'mutation($e: [EventInput!]!) { ingestEvents(events: $e) { accepted } }', {
        e: [
          {
            identity: { namespace: 'email', id: 'fresh0@example.com' },
            eventType: 'web.webpagedetails.pageViews',
            timestamp: since,
          },
        ],
      }),
    );
    expect(ingested.ingestEvents.accepted).toBe(1);
    ok(
      await gqlIn(sb, INGEST, {
        r: [{ identities: [{ namespace: 'email', id: 'fresh2@example.com' }], attributes: { loyalty: { points: 7 } } }],
      }),
    );
    const job = await runExport(sb, {
      audiences: [{ audienceId }],
      fromIngestTimestamp: since,
      destination: { datasetName: 'fresh', format: 'NDJSON' },
    });
    expect(job.status).toBe('SUCCEEDED');
    const text = await (await download(sb, job.destination.dataset.id, job.files[0].path)).text();
    const rows = text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
    expect(rows.map((r) => emailOf(r.identities)).sort()).toEqual(['fresh0@example.com', 'fresh2@example.com']);

    // The same instant through the profile API: changed after it, and updatedAt at or after it.
    const changed = ok(
      await gqlIn(
        sb,
        'query($t: DateTime!) { profiles(filter: { updatedAfter: $t }) { totalCount edges { node { updatedAt identities { value } } } } }',
        { t: since },
      ),
    ).profiles;
    expect(changed.totalCount).toBe(2);
    for (const { node } of changed.edges) expect(Date.parse(node.updatedAt)).toBeGreaterThan(Date.parse(since));
    const one = ok(
      await gqlIn(
        sb,
        'query($t: DateTime!) { profiles(filter: { identityNamespace: "email", identityValue: "fresh0@example.com", updatedAfter: $t }) { totalCount } }',
        { t: since },
      ),
    ).profiles;
    expect(one.totalCount).toBe(1);
    const untouched = ok(
      await gqlIn(sb, '{ profile(identity: { namespace: "email", id: "fresh4@example.com" }) { updatedAt } }'),
    ).profile;
    expect(Date.parse(untouched.updatedAt)).toBeLessThan(Date.parse(since));
  });

  it('exports CHANGES: exactly the memberships realized or exited since the last export', async () => {
    const sb = 'changes';
    const { audienceId, definitionId } = await setupSandbox(sb, 6);
    const first = await runExport(sb, {
      audiences: [{ audienceId }],
      mode: 'CHANGES',
      destination: { datasetName: 'delta', format: 'NDJSON' },
    });
    // The first export of a dataset is full.
    expect(first).toMatchObject({ status: 'SUCCEEDED', mode: 'FULL', changesSince: null });
    expect(first.files[0].rows).toBe(3);
    // changes0@ (gold) leaves, changes1@ (silver) joins, the others stay.
    ok(
      await gqlIn(sb, INGEST, {
        r: [
          {
            identities: [{ namespace: 'email', id: 'changes0@example.com' }],
            attributes: { loyalty: { tier: 'silver' } },
          },
          {
            identities: [{ namespace: 'email', id: 'changes1@example.com' }],
            attributes: { loyalty: { tier: 'gold' } },
          },
        ],
      }),
    );
    await segmentJob(sb, definitionId);
    const delta = await runExport(sb, {
      audiences: [{ audienceId }],
      mode: 'CHANGES',
      destination: { datasetId: first.destination.dataset.id, format: 'NDJSON' },
    });
    expect(delta).toMatchObject({ status: 'SUCCEEDED', mode: 'CHANGES' });
    const text = await (await download(sb, first.destination.dataset.id, delta.files[0].path)).text();
    const rows = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows.map((r) => [emailOf(r.identities), r.status]).sort()).toEqual([
      ['changes0@example.com', 'EXITED'],
      ['changes1@example.com', 'REALIZED'],
    ]);
    for (const r of rows) expect(Date.parse(r.changedAt)).toBeGreaterThan(Date.parse(delta.changesSince));
    // Nothing changed since: an empty delta.
    const none = await runExport(sb, {
      audiences: [{ audienceId }],
      mode: 'CHANGES',
      destination: { datasetId: first.destination.dataset.id, format: 'NDJSON' },
    });
    expect(none.files[0].rows).toBe(0);
  });

  it('refuses bad input before any job exists', async () => {
    const sb = 'badinput';
    const { audienceId } = await setupSandbox(sb, 2);
    const count = async () => ok(await gqlIn(sb, '{ exportJobs { totalCount } datasets { totalCount } }')) as any;
    const before = await count();
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [
        { audiences: [{ audienceId: 'QXVkaWVuY2U6OTk5OQ==' }], destination: { datasetName: 'x', format: 'CSV' } },
        'NOT_FOUND',
        /Audience/,
      ],
      [
        { audiences: [{ audienceId }], fields: ['loyalty.nope'], destination: { datasetName: 'x', format: 'CSV' } },
        'BAD_USER_INPUT',
        /not a field/,
      ],
    ];
    for (const [input, code, message] of cases) {
      const res = await gqlIn(sb, EXPORT, { i: input });
      expect(res.errors?.[0]?.extensions?.code).toBe(code);
      expect(res.errors?.[0]?.message).toMatch(message);
    }
    const made = await runExport(sb, {
      audiences: [{ audienceId }],
      destination: { datasetName: 'nd', format: 'NDJSON' },
    });
    const other = await gqlIn(sb, EXPORT, {
      i: { audiences: [{ audienceId }], destination: { datasetId: made.destination.dataset.id, format: 'CSV' } },
    });
    expect(other.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(other.errors?.[0]?.message).toMatch(/holds NDJSON files/);
    const byName = await gqlIn(sb, EXPORT, {
      i: { audiences: [{ audienceId }], destination: { datasetName: 'nd', format: 'PARQUET' } },
    });
    expect(byName.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const after = await count();
    expect(after.exportJobs.totalCount).toBe(before.exportJobs.totalCount + 1);
    expect(after.datasets.totalCount).toBe(before.datasets.totalCount + 1);
  });

  it('serves byte ranges, refuses other sandboxes, and deletes a dataset with its files', async () => {
    const sb = 'ranges';
    const { audienceId } = await setupSandbox(sb, 8);
    const job = await runExport(sb, {
      audiences: [{ audienceId }],
      destination: { datasetName: 'r', format: 'NDJSON' },
    });
    const datasetId = job.destination.dataset.id;
    const whole = Buffer.from(await (await download(sb, datasetId, job.files[0].path)).arrayBuffer());
    const part = await download(sb, datasetId, job.files[0].path, { range: 'bytes=10-29' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-29/${whole.length}`);
    expect(part.headers.get('content-length')).toBe('20');
    expect(Buffer.from(await part.arrayBuffer())).toEqual(whole.subarray(10, 30));
    const tail = await download(sb, datasetId, job.files[0].path, { range: 'bytes=-5' });
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(whole.subarray(whole.length - 5));
    const beyond = await download(sb, datasetId, job.files[0].path, { range: `bytes=${whole.length}-` });
    expect(beyond.status).toBe(416);
    // Another sandbox does not see the dataset; an unrecorded name is not served.
    ok(await server.gql('mutation { createSandbox(name: "elsewhere") { name } }'));
    expect((await download('elsewhere', datasetId, job.files[0].path)).status).toBe(404);
    expect((await download(sb, datasetId, '..%2Fmanifest.json')).status).toBe(404);
    expect((await download(sb, datasetId, '%E0%A4%A')).status).toBe(404);
    expect(readdirSync(server.dataDir, { recursive: true }).some((f) => String(f).includes('.tmp-'))).toBe(false);

    const del = await gqlIn(sb, 'mutation($id: ID!) { deleteDataset(id: $id) }', { id: datasetId });
    expect(ok(del).deleteDataset).toBe(datasetId);
    expect((await download(sb, datasetId, job.files[0].path)).status).toBe(404);
    expect(ok(await gqlIn(sb, 'query($id: ID!) { dataset(id: $id) { id } }', { id: datasetId })).dataset).toBeNull();
  });

  it('reports progress to exportJobUpdated until SUCCEEDED, and cancels a queued export without a trace', async () => {
    const sb = 'watch';
    const { audienceId } = await setupSandbox(sb, 3000);
    const h = { 'x-sandbox-name': sb };
    // Three exports: the runner takes one export at a time, so the third waits QUEUED. The first
    // writes 1,500 Parquet rows, so it is still running when the cancel arrives (at 15 rows it
    // could finish first on a fast path); and should it finish all the same (CI on two busy
    // cores once saw it), the one behind it is what runs next, not the one cancelled.
    const first = ok(
      await gqlIn(sb, EXPORT, {
        i: { audiences: [{ audienceId }], destination: { datasetName: 'w1', format: 'PARQUET' } },
      }),
    ).createExportJob;
    ok(
      await gqlIn(sb, EXPORT, {
        i: { audiences: [{ audienceId }], destination: { datasetName: 'w0', format: 'PARQUET' } },
      }),
    );
    const second = ok(
      await gqlIn(sb, EXPORT, {
        i: { audiences: [{ audienceId }], destination: { datasetName: 'w2', format: 'CSV' } },
      }),
    ).createExportJob;
    // Cancelled at once, before anything else asks the server for time: on two busy cores the
    // subscription's set-up in between once let the first export end and the second start first.
    const cancelled = await gqlIn(sb, 'mutation($id: ID!) { cancelExportJob(id: $id) { status } }', { id: second.id });
    expect(ok(cancelled).cancelExportJob.status).toBe('CANCELLED');
    // The subscription starts with the export as it is now, so nothing is missed by starting it after.
    const events = fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...h },
      body: JSON.stringify({
        query: 'subscription($id: ID!) { exportJobUpdated(id: $id) { status progress { done total } files { rows } } }',
        variables: { id: first.id },
      }),
    }).then(readSse);
    const updates = (await events).map((e) => e.data.exportJobUpdated);
    expect(updates.at(-1)).toEqual({
      status: 'SUCCEEDED',
      progress: { done: 1500, total: 1500 },
      files: [{ rows: 1500 }],
    });
    const dones = updates.map((u) => u.progress.done);
    expect(dones).toEqual([...dones].sort((a, b) => a - b));
    const w2 = ok(
      await gqlIn(
        sb,
        '{ datasets(first: 10) { edges { node { name files { name } records { totalCount } lastExport { id } } } } }',
      ),
    ).datasets.edges.find((e: any) => e.node.name === 'w2').node;
    expect(w2).toEqual({ name: 'w2', files: [], records: { totalCount: 0 }, lastExport: null });
    const again = await gqlIn(sb, 'mutation($id: ID!) { cancelExportJob(id: $id) { status } }', { id: first.id });
    expect(again.errors?.[0]?.extensions?.code).toBe('CONFLICT');
  });
});
