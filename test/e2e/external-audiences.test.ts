import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, readSse, startTestServer, type TestServer } from './harness.js';
import { RUN, START_INGESTION, uploadList } from './upload.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.stop();
});

const CREATE = `mutation ($input: CreateExternalAudienceInput!) {
  createExternalAudience(input: $input) { id externalId ttlInDays audience { id name origin namespace } fields { name type identityNamespace } }
}`;

const FIELDS = [
  { name: 'email', type: 'STRING', identityNamespace: 'email' },
  { name: 'points', type: 'NUMBER' },
  { name: 'vip', type: 'BOOLEAN' },
  { name: 'since', type: 'DATE' },
  { name: 'tier', type: 'STRING' },
];

async function createAudience(name: string, extra: Record<string, unknown> = {}) {
  return ok(await server.gql(CREATE, { input: { name, namespace: 'crm', fields: FIELDS, ...extra } }))
    .createExternalAudience;
}

async function ingestProfiles(emails: string[]) {
  for (let i = 0; i < emails.length; i += 5000) {
    const records = emails
      .slice(i, i + 5000)
      .map((e) => ({ identities: [{ namespace: 'email', id: e }], attributes: {} }));
    const res = ok(
      await server.gql('mutation ($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', { r: records }),
    );
    expect(res.ingestProfiles.accepted).toBe(records.length);
  }
}

async function waitForRun(id: string) {
  for (let i = 0; i < 600; i++) {
    const run = ok(await server.gql(RUN, { id })).node;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(run.status)) return run;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`run ${id} did not end`);
}

async function members(audienceId: string) {
  const res = ok(
    await server.gql(
      `query ($id: ID!) { node(id: $id) { ... on Audience { size members(first: 500) { edges { node { status payload profile { identities { namespace value } } } } } } } }`,
      { id: audienceId },
    ),
  ).node;
  return {
    size: res.size as number,
    byEmail: new Map<string, { status: string; payload: any }>(
      res.members.edges.map((e: any) => [
        e.node.profile.identities[0].value,
        { status: e.node.status, payload: e.node.payload },
      ]),
    ),
  };
}

/** 10,000 data rows after the header; 37 are bad, each kind at known lines. */
function buildList(): { text: string; bad: Map<number, string> } {
  const lines = ['email,points,vip,since,tier'];
  const bad = new Map<number, string>();
  for (let i = 0; i < 10_000; i++) {
    const line = i + 2;
    const email = `u${i}@example.com`;
    let row = `${email},${i},${i % 2 === 0},2026-01-${String((i % 28) + 1).padStart(2, '0')},"gold, ""plus"""`;
    if (i % 1000 === 11) {
      row = `${email},lots,true,2026-01-01,gold`;
      bad.set(line, '"lots" in column "points" is not a NUMBER');
    } else if (i % 1000 === 22 && i < 8000) {
      row = `,5,true,2026-01-01,gold`;
      bad.set(line, 'The identity column "email" is empty');
    } else if (i % 1000 === 33 && i < 8000) {
      row = `${email},5,true,2026-01-01,gold,extra`;
      bad.set(line, 'The row has 6 columns; the header has 5');
    } else if (i % 1000 === 44 && i < 3000) {
      row = `${email},5,true,2026-01-01,"gold`;
      bad.set(line, 'Broken quoting: a quote opened on this line is never closed');
    } else if (i % 1000 === 55 && i < 3000) {
      row = `${email},5,true,2026-01-01,"gold"en`;
      bad.set(
        line,
        'Broken quoting: a closing quote is followed by more characters (double a quote inside a quoted field)',
      );
    } else if (i % 1000 === 66 && i < 5000) {
      row = `${email},5,true,2026-01-01,${'x'.repeat(70_000)}`;
      bad.set(line, 'The line is longer than 65536 characters');
    }
    lines.push(row);
  }
  return { text: `${lines.join('\r\n')}\r\n`, bad };
}

describe('external audiences', () => {
  it('imports 10,000 rows with 37 bad ones: exact counts, line numbers and reasons', async () => {
    const ext = await createAudience('Loyalty list', { externalId: '6f1c0b1e-8d0a-4c1e-9c55-1d2f3a4b5c6d' });
    expect(ext.audience.origin).toBe('CUSTOM_UPLOAD');
    expect(ext.audience.namespace).toBe('crm');
    expect(ext.ttlInDays).toBe(30);
    // The first 500 list emails belong to profiles already; the rest arrive later or never.
    await ingestProfiles(Array.from({ length: 500 }, (_, i) => `u${i}@example.com`));
    const { text, bad } = buildList();
    expect(bad.size).toBe(37);
    const chunks = Array.from({ length: Math.ceil(text.length / 65_536) }, (_, i) =>
      Buffer.from(text.slice(i * 65_536, (i + 1) * 65_536)),
    );
    const started = await uploadList(server.url, START_INGESTION, { id: ext.id }, { name: 'list.csv', chunks });
    expect(started.body.errors).toBeUndefined();
    const run = await waitForRun(started.body.data.startExternalAudienceIngestion.id);
    expect(run.status).toBe('SUCCEEDED');
    expect(run.recordsRead).toBe(10_000);
    expect(run.recordsFailed).toBe(37);
    expect(run.recordsImported).toBe(9963);
    // Of u0..u499, the bad rows among them (u11, u22, u33, u44, u55, u66 … only i % 1000 in range) did not import.
    const badMatched = [...bad.keys()].filter((line) => line - 2 < 500).length;
    expect(run.recordsMatched).toBe(500 - badMatched);
    expect(run.errors.totalCount).toBe(37);
    expect(run.errors.edges.map((e: any) => [e.node.line, e.node.message])).toEqual(
      [...bad.entries()].sort((a, b) => a[0] - b[0]),
    );
    const m = await members(ext.audience.id);
    expect(m.size).toBe(500 - badMatched);
    expect(m.byEmail.get('u3@example.com')).toEqual({
      status: 'REALIZED',
      payload: { points: 3, vip: false, since: '2026-01-04T00:00:00.000Z', tier: 'gold, "plus"' },
    });
  });

  it('fails a run with no usable row and keeps what it read: counts and errors', async () => {
    const ext = await createAudience('All bad');
    const text =
      'email,points,vip,since,tier\n,1,true,2026-01-01,a\nx@example.com,many,true,2026-01-01,b\ny@example.com,2,maybe,2026-01-01,c\n';
    const started = await uploadList(
      server.url,
      START_INGESTION,
      { id: ext.id },
      { name: 'bad.csv', chunks: [Buffer.from(text)] },
    );
    expect(started.body.errors).toBeUndefined();
    const run = await waitForRun(started.body.data.startExternalAudienceIngestion.id);
    // The counts are the run's final ones whatever progress it reported before failing.
    expect(run).toEqual({
      status: 'FAILED',
      error: "Nothing usable: all 3 rows failed (see the run's errors)",
      recordsRead: 3,
      recordsImported: 0,
      recordsMatched: 0,
      recordsFailed: 3,
      errors: {
        totalCount: 3,
        edges: [
          { node: { line: 2, message: 'The identity column "email" is empty' } },
          { node: { line: 3, message: '"many" in column "points" is not a NUMBER' } },
          { node: { line: 4, message: expect.stringContaining('"maybe"') } },
        ],
      },
    });
  });

  it('refuses a header that does not name the fields, before any run exists', async () => {
    const ext = await createAudience('Wrong header');
    const res = await uploadList(
      server.url,
      START_INGESTION,
      { id: ext.id },
      {
        name: 'list.csv',
        chunks: [Buffer.from('email,score\na@example.com,1\n')],
      },
    );
    expect(res.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(res.body.errors[0].message).toBe(
      'The header names "score", which is not a field of this audience (fields: email, points, vip, since, tier)',
    );
    const wide = `${Array.from({ length: 26 }, (_, i) => `c${i}`).join(',')}\n`;
    const res2 = await uploadList(
      server.url,
      START_INGESTION,
      { id: ext.id },
      { name: 'list.csv', chunks: [Buffer.from(wide)] },
    );
    expect(res2.body.errors[0].message).toBe('The header has 26 columns; at most 25 are allowed');
  });

  it('REPLACE makes the list the whole audience; APPEND adds', async () => {
    const ext = await createAudience('Modes');
    await ingestProfiles(['a@m.com', 'b@m.com', 'c@m.com']);
    const run = async (rows: unknown[], mode: string) => {
      const res = ok(await server.gql(START_INGESTION, { id: ext.id, rows, mode }));
      return waitForRun(res.startExternalAudienceIngestion.id);
    };
    const row = (email: string, points: number) => ({ email, points, vip: true, since: '2026-02-01', tier: 't' });
    expect((await run([row('a@m.com', 1), row('b@m.com', 2)], 'REPLACE')).status).toBe('SUCCEEDED');
    let m = await members(ext.audience.id);
    expect(m.size).toBe(2);
    expect(await run([row('c@m.com', 3)], 'APPEND')).toMatchObject({ status: 'SUCCEEDED', recordsMatched: 1 });
    m = await members(ext.audience.id);
    expect(m.size).toBe(3);
    expect([...m.byEmail.entries()].map(([e, v]) => [e, v.status]).sort()).toEqual([
      ['a@m.com', 'REALIZED'],
      ['b@m.com', 'REALIZED'],
      ['c@m.com', 'REALIZED'],
    ]);
    expect(await run([row('b@m.com', 20)], 'REPLACE')).toMatchObject({ status: 'SUCCEEDED', recordsImported: 1 });
    m = await members(ext.audience.id);
    expect(m.size).toBe(1);
    expect(m.byEmail.get('a@m.com')?.status).toBe('EXITED');
    expect(m.byEmail.get('c@m.com')?.status).toBe('EXITED');
    expect(m.byEmail.get('b@m.com')).toMatchObject({ status: 'EXISTING', payload: { points: 20 } });
  });

  it('refuses a second run of the same audience while the first has not ended (CONFLICT)', async () => {
    const ext = await createAudience('Concurrent');
    const text = `email,points,vip,since,tier\n${Array.from({ length: 50_000 }, (_, i) => `c${i}@x.com,${i},true,2026-01-01,t`).join('\n')}\n`;
    const upload = () =>
      uploadList(server.url, START_INGESTION, { id: ext.id }, { name: 'l.csv', chunks: [Buffer.from(text)] });
    const [first, second] = await Promise.all([upload(), upload()]);
    const results = [first.body, second.body];
    const conflicts = results.filter((b) => b.errors?.[0]?.extensions?.code === 'CONFLICT');
    const started = results.filter((b) => b.data?.startExternalAudienceIngestion);
    expect(conflicts).toHaveLength(1);
    expect(started).toHaveLength(1);
    expect(conflicts[0].errors[0].message).toMatch(/^Ingestion run "[^"]+" of this audience has not ended yet/);
    expect((await waitForRun(started[0].data.startExternalAudienceIngestion.id)).recordsImported).toBe(50_000);
  });

  it('makes a profile a member when its identity arrives after the import, with its history entry', async () => {
    const ext = await createAudience('Later');
    const res = ok(
      await server.gql(START_INGESTION, {
        id: ext.id,
        rows: [{ email: 'late@x.com', points: 7, vip: false, since: '2026-03-01', tier: 'silver' }],
      }),
    );
    const run = await waitForRun(res.startExternalAudienceIngestion.id);
    expect(run).toMatchObject({ status: 'SUCCEEDED', recordsImported: 1, recordsMatched: 0 });
    expect((await members(ext.audience.id)).size).toBe(0);
    // A subscriber on the audience hears of the new member once the ingest commits.
    const stream = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({
        query: 'subscription($a: ID) { audienceMembershipChanged(audienceId: $a) { to cause audience { id } } }',
        variables: { a: ext.audience.id },
      }),
    });
    const heard = readSse(stream, 1);
    await new Promise((r) => setTimeout(r, 100));
    await ingestProfiles(['late@x.com']);
    expect((await heard)[0].data.audienceMembershipChanged).toEqual({
      to: 'REALIZED',
      cause: 'IMPORT',
      audience: { id: ext.audience.id },
    });
    const m = await members(ext.audience.id);
    expect(m.size).toBe(1);
    expect(m.byEmail.get('late@x.com')).toEqual({
      status: 'REALIZED',
      payload: { points: 7, vip: false, since: '2026-03-01T00:00:00.000Z', tier: 'silver' },
    });
    const history = ok(
      await server.gql(
        `query { profile(identity: { namespace: "email", id: "late@x.com" }) { membershipHistory(first: 5) { edges { node { cause to audience { id } } } } } }`,
      ),
    ).profile.membershipHistory.edges.map((e: any) => e.node);
    expect(history).toEqual([{ cause: 'IMPORT', to: 'REALIZED', audience: { id: ext.audience.id } }]);
  });

  it('finds an external audience in inSegment by its externalId', async () => {
    const ext = await createAudience('By uuid', { externalId: '0d6f7d4e-1111-4a4a-9b9b-222233334444' });
    await ingestProfiles(['in1@x.com', 'in2@x.com', 'out@x.com']);
    const row = (email: string) => ({ email, points: 1, vip: true, since: '2026-01-01', tier: 't' });
    const res = ok(await server.gql(START_INGESTION, { id: ext.id, rows: [row('in1@x.com'), row('in2@x.com')] }));
    expect((await waitForRun(res.startExternalAudienceIngestion.id)).status).toBe('SUCCEEDED');
    const found = ok(
      await server.gql(
        `query { profilesMatching(expression: "inSegment(\\"0d6f7d4e-1111-4a4a-9b9b-222233334444\\")", first: 10) { edges { node { identities { value } } } } }`,
      ),
    ).profilesMatching.edges.map((e: any) => e.node.identities[0].value);
    expect(found.sort()).toEqual(['in1@x.com', 'in2@x.com']);
    const byName = ok(await server.gql('query { externalAudience(externalId: "By uuid") { id } }')).externalAudience;
    expect(byName.id).toBe(ext.id);
  });
});

describe("a member's row in PQL", () => {
  it('selects on inSegment(...).payload.<field> in a segment job, evaluateProfile agrees, validatePql names an unknown field', async () => {
    const ext = await createAudience('Tiers', { externalId: 'crm-tiers-2026' });
    await ingestProfiles(['gold1@t.com', 'gold2@t.com', 'silver@t.com', 'gone@t.com', 'none@t.com']);
    // A CSV upload with payload fields beside the identity.
    const csv = [
      'email,points,vip,since,tier',
      'gold1@t.com,120,true,2026-01-05,gold',
      'gold2@t.com,40,false,2026-02-10,gold',
      'silver@t.com,300,true,2025-12-01,silver',
      'gone@t.com,999,true,2026-01-01,gold',
    ].join('\n');
    const first = await uploadList(
      server.url,
      START_INGESTION,
      { id: ext.id },
      { name: 'tiers.csv', chunks: [Buffer.from(`${csv}\n`)] },
    );
    expect((await waitForRun(first.body.data.startExternalAudienceIngestion.id)).status).toBe('SUCCEEDED');
    // gone@ leaves the list (EXITED, its row kept on the membership): no longer read.
    const again = await uploadList(
      server.url,
      START_INGESTION,
      { id: ext.id },
      { name: 'tiers.csv', chunks: [Buffer.from(`${csv.split('\n').slice(0, 4).join('\n')}\n`)] },
    );
    expect((await waitForRun(again.body.data.startExternalAudienceIngestion.id)).status).toBe('SUCCEEDED');
    expect((await members(ext.audience.id)).byEmail.get('gone@t.com')?.status).toBe('EXITED');

    const expression = 'inSegment("crm-tiers-2026").payload.tier = "gold" and inSegment("Tiers").payload.points >= 50';
    const definition = ok(
      await server.gql(
        'mutation($i: CreateSegmentDefinitionInput!) { createSegmentDefinition(input: $i) { id audience { id } } }',
        { i: { name: 'Gold with points', expression: { value: expression }, lifecycleState: 'PUBLISHED' } },
      ),
    ).createSegmentDefinition;
    let job = ok(
      await server.gql('mutation($input: CreateSegmentJobInput!) { createSegmentJob(input: $input) { id } }', {
        input: { segmentDefinitionIds: [definition.id] },
      }),
    ).createSegmentJob;
    for (let i = 0; i < 600; i++) {
      job = ok(
        await server.gql('query($id: ID!) { segmentJob(id: $id) { id status error } }', { id: job.id }),
      ).segmentJob;
      if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.status)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(job).toMatchObject({ status: 'SUCCEEDED', error: null });
    const selected = await members(definition.audience.id);
    expect(selected.size).toBe(1);
    expect([...selected.byEmail.entries()].map(([e, v]) => [e, v.status])).toEqual([['gold1@t.com', 'REALIZED']]);

    // The JS engine (edge evaluation) gives the same answer for every profile.
    const EDGE =
      'query($id: String!, $x: String!) { evaluateProfile(identity: { namespace: "email", id: $id }, expression: $x) { qualifies value } }';
    const answers: Record<string, boolean> = {};
    for (const email of ['gold1@t.com', 'gold2@t.com', 'silver@t.com', 'gone@t.com', 'none@t.com']) {
      answers[email] = ok(await server.gql(EDGE, { id: email, x: expression })).evaluateProfile.qualifies;
    }
    expect(answers).toEqual({
      'gold1@t.com': true,
      'gold2@t.com': false,
      'silver@t.com': false,
      'gone@t.com': false,
      'none@t.com': false,
    });
    // A DATE field is a datetime in PQL.
    const AT_EDGE =
      'query($id: String!, $x: String!) { evaluateProfile(identity: { namespace: "email", id: $id }, expression: $x, at: "2026-02-20T00:00:00Z") { qualifies } }';
    const since = async (x: string) =>
      ok(await server.gql(AT_EDGE, { id: 'gold2@t.com', x })).evaluateProfile.qualifies;
    expect(await since('inSegment("Tiers").payload.since occurs <= 14 days before now')).toBe(true);
    expect(await since('inSegment("Tiers").payload.since occurs <= 7 days before now')).toBe(false);

    const invalid = ok(
      await server.gql(
        'query($x: String!) { validatePql(expression: $x) { valid errors { code message line column } } }',
        { x: 'inSegment("Tiers").payload.level = "gold"' },
      ),
    ).validatePql;
    expect(invalid.valid).toBe(false);
    expect(invalid.errors).toEqual([
      {
        code: 'PQL_TYPE_ERROR',
        message: 'unknown payload field level of audience "Tiers": its rows have points, vip, since, tier',
        line: 1,
        column: 28,
      },
    ]);
  });
});

describe('external audiences in segment search', () => {
  it('finds an external audience by its externalId, in its own namespace, and follows a new one', async () => {
    const made = await createAudience('Search me', { externalId: 'ext-7f3a-lookup' });
    const HITS = `query($ns: String!, $q: String!) { searchEntities(namespace: $ns, query: $q) {
      edges { node { matchedFields entity { ... on Audience { id } } } } } }`;
    const hits = ok(await server.gql(HITS, { ns: 'crm', q: 'external_id:"ext-7f3a-lookup"' })).searchEntities.edges;
    expect(hits.map((e: any) => e.node.entity.id)).toEqual([made.audience.id]);
    expect(hits[0].node.matchedFields).toContain('EXTERNAL_ID');
    ok(
      await server.gql(
        'mutation($id: ID!) { updateExternalAudience(id: $id, input: { externalId: "ext-renamed" }) { externalId } }',
        { id: made.id },
      ),
    );
    expect(ok(await server.gql(HITS, { ns: 'crm', q: 'external_id:"ext-7f3a-lookup"' })).searchEntities.edges).toEqual(
      [],
    );
    const renamed = ok(await server.gql(HITS, { ns: 'crm', q: 'external_id:"ext-renamed"' })).searchEntities.edges;
    expect(renamed.map((e: any) => e.node.entity.id)).toEqual([made.audience.id]);
  });
});
