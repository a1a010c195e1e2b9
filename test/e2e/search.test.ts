import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ok, startTestServer, type TestServer } from './harness.js';

const HITS = `query($ns: String!, $q: String!, $first: Int, $after: String) {
  searchEntities(namespace: $ns, query: $q, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { kind key entityId snippet matchedFields rank entity { __typename ... on Audience { name } ... on SegmentDefinition { name } ... on SchemaField { path } } } }
  }
}`;

const CREATE = 'mutation($i: CreateAudienceInput!) { createAudience(input: $i) { id name } }';

describe('segment search', () => {
  let server: TestServer;
  const ids: Record<string, string> = {};

  async function audience(name: string, description: string, extra: Record<string, unknown> = {}) {
    const made = ok(await server.gql(CREATE, { i: { name, description, ...extra } })).createAudience;
    ids[name] = made.id;
    return made.id as string;
  }

  async function names(q: string, ns = 'segql'): Promise<string[]> {
    const conn = ok(await server.gql(HITS, { ns, q, first: 50 })).searchEntities;
    return conn.edges.map((e: any) => e.node.entity?.name ?? e.node.entity?.path);
  }

  beforeAll(async () => {
    server = await startTestServer();
    const marketing = ok(await server.gql('mutation { createFolder(input: { name: "Marketing" }) { id } }'))
      .createFolder.id;
    const nordics = ok(
      await server.gql('mutation($p: ID) { createFolder(input: { name: "Nordics", parentId: $p }) { id } }', {
        p: marketing,
      }),
    ).createFolder.id;
    await audience('Churn risk', 'Customers likely to leave soon', { labels: ['retention'], folderId: nordics });
    await audience('Loyal shoppers', 'Frequent buyers who rarely churn', { labels: ['vip'] });
    await audience('Newsletter readers', 'Opened the newsletter this week', { folderId: marketing });
    await audience('Winback', 'Lapsed customers to win back', { namespace: 'crm' });
    ok(
      await server.gql(
        `mutation { createSegmentDefinition(input: { name: "Oslo residents", description: "People living in Oslo",
          expression: { value: "homeAddress.city = \\"Oslo\\"" } }) { id } }`,
      ),
    );
    ok(
      await server.gql(
        'mutation { updateProfileSchema(input: { fields: [{ class: PROFILE, path: "_tenant.churnScore", type: "number", description: "Model output" }] }) { name } }',
      ),
    );
  }, 30_000);

  afterAll(async () => {
    await server?.stop();
  });

  it('answers every query form with the expected hits, name matches first', async () => {
    expect(await names('churn')).toEqual(['Churn risk', 'Loyal shoppers']);
    expect(await names('customers AND leave')).toEqual(['Churn risk']);
    expect(await names('newsletter OR frequent')).toEqual(['Newsletter readers', 'Loyal shoppers']);
    expect(await names('churn NOT vip')).toEqual(['Churn risk']);
    expect(await names('churn -retention')).toEqual(['Loyal shoppers']);
    expect(await names('description:churn')).toEqual(['Loyal shoppers']);
    expect(await names('labels:vip')).toEqual(['Loyal shoppers']);
    expect(await names('folder:nordics')).toEqual(['Churn risk']);
    // bm25: the shorter folder path ranks first.
    expect(await names('folder:marketing')).toEqual(['Newsletter readers', 'Churn risk']);
    expect(await names('"likely to leave"')).toEqual(['Churn risk']);
    expect(await names('"customers leave"~3')).toEqual(['Churn risk']);
    expect(await names('"customers leave"')).toEqual([]);
    expect(await names('newslet*')).toEqual(['Newsletter readers']);
    expect(await names('sh?ppers')).toEqual(['Loyal shoppers']);
    expect(await names('*etter')).toEqual(['Newsletter readers']);
    expect(await names('chrun~1')).toEqual(['Churn risk', 'Loyal shoppers']);
    expect(await names('chrn~1')).toEqual(['Churn risk', 'Loyal shoppers']);
    expect(await names('chxxn~1')).toEqual([]);
    expect(await names('(oslo OR newsletter) AND NOT readers')).toEqual(['Oslo residents', 'Oslo residents']);
    expect(await names('expression:oslo')).toEqual(['Oslo residents', 'Oslo residents']);
    expect(await names(`id:${ids['Churn risk']}`)).toEqual(['Churn risk']);
    expect(await names('winback', 'crm')).toEqual(['Winback']);
    expect(await names('churn*', 'schema')).toEqual(['_tenant.churnScore']);
    expect(await names('path:churnscore', 'schema')).toEqual(['_tenant.churnScore']);
  });

  it('reports the kind, snippet and matched fields of a hit, and pages by cursor', async () => {
    const first = ok(await server.gql(HITS, { ns: 'segql', q: 'churn', first: 1 })).searchEntities;
    expect(first.totalCount).toBe(2);
    expect(first.pageInfo.hasNextPage).toBe(true);
    const hit = first.edges[0].node;
    expect(hit).toMatchObject({ kind: 'AUDIENCE', entityId: ids['Churn risk'], rank: 0, matchedFields: ['NAME'] });
    expect(hit.snippet).toBe('<mark>Churn</mark> risk');
    const next = ok(
      await server.gql(HITS, { ns: 'segql', q: 'churn', first: 1, after: first.pageInfo.endCursor }),
    ).searchEntities;
    expect(next.edges.map((e: any) => [e.node.entity.name, e.node.rank, e.node.matchedFields])).toEqual([
      ['Loyal shoppers', 1, ['DESCRIPTION']],
    ]);
    expect(next.pageInfo.hasNextPage).toBe(false);
  });

  it('counts hits per namespace and gives an audience its folder path', async () => {
    const counts = ok(await server.gql('{ searchNamespaces(query: "churn* OR winback") { namespace count } }'));
    expect(counts.searchNamespaces).toEqual([
      { namespace: 'segql', count: 2 },
      { namespace: 'crm', count: 1 },
      { namespace: 'schema', count: 1 },
    ]);
    const path = ok(
      await server.gql('query($id: ID!) { taxonomy(entityId: $id) { name } }', { id: ids['Churn risk'] }),
    );
    expect(path.taxonomy.map((f: any) => f.name)).toEqual(['Marketing', 'Nordics']);
    const none = await server.gql('{ taxonomy(entityId: "QXVkaWVuY2U6OTk5OTk=") { name } }');
    expect(none.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('reads injection attempts as literal words or refuses them with BAD_USER_INPUT, never an SQLite error', async () => {
    const attempts = [
      '"',
      'churn"',
      '*',
      'NEAR(churn risk)',
      'NEAR(churn',
      'churn^2',
      '^',
      'secret:churn',
      'rank:1',
      '(churn',
      'churn)',
      '{name}:churn',
      '"churn" OR "x""',
      'churn\\" OR name',
      '\\*',
      '$$$',
      'NOT churn',
      'NOT',
      'churn AND',
      'churn OR OR risk',
      'secret:(churn)',
      'name:(NEAR(churn risk))',
    ];
    for (const q of attempts) {
      const res = await server.gql(HITS, { ns: 'segql', q });
      if (res.errors) {
        expect(res.errors[0]!.extensions?.code, q).toBe('BAD_USER_INPUT');
        expect(res.errors[0]!.message, q).toMatch(/^Search query: /);
        expect(res.errors[0]!.message, q).not.toMatch(/sqlite|fts5/i);
      } else {
        expect(Array.isArray(res.data.searchEntities.edges), q).toBe(true);
      }
    }
    // Literal: the word NEAR must appear too.
    expect(await names('NEAR(churn risk)')).toEqual([]);
    expect(await names('churn\\"')).toEqual(['Churn risk', 'Loyal shoppers']);
    const unknown = await server.gql(HITS, { ns: 'segql', q: 'secret:churn' });
    expect(unknown.errors?.[0]?.message).toContain('unknown field "secret"');
    const unbalanced = await server.gql(HITS, { ns: 'segql', q: '(churn' });
    expect(unbalanced.errors?.[0]?.message).toContain('column 7');
    const dangling = await server.gql(HITS, { ns: 'segql', q: 'churn AND' });
    expect(dangling.errors?.[0]).toMatchObject({
      message: 'Search query: "AND" needs a term after it (line 1, column 7)',
      extensions: { code: 'BAD_USER_INPUT', field: 'query', line: 1, column: 7 },
    });
    const groupField = await server.gql(HITS, { ns: 'segql', q: 'secret:(churn)' });
    expect(groupField.errors?.[0]?.message).toContain('unknown field "secret"');
    // The field of a group applies inside it: "churn" is only in Loyal shoppers' description.
    // Both match in their descriptions only; the order between them is ranking, which the databases weigh differently (docs/api.md).
    expect((await names('description:(churn OR newsletter)')).sort()).toEqual(['Loyal shoppers', 'Newsletter readers']);
    expect(await names('name:(churn OR description:frequent)')).toEqual(['Churn risk', 'Loyal shoppers']);
  });

  it('re-indexes a schema field re-described through updateProfileSchema', async () => {
    ok(
      await server.gql(
        'mutation { updateProfileSchema(input: { fields: [{ class: PROFILE, path: "_tenant.churnScore", type: "number", description: "Propensity to leave" }] }) { name } }',
      ),
    );
    expect(await names('propensity', 'schema')).toEqual(['_tenant.churnScore']);
    expect(await names('description:model', 'schema')).toEqual([]);
  });

  it('keeps searches inside their sandbox', async () => {
    ok(await server.gql('mutation { createSandbox(name: "other") { name } }'));
    ok(await server.gql(CREATE, { i: { name: 'Churn elsewhere', description: 'x' } }, { 'x-sandbox-name': 'other' }));
    const there = ok(await server.gql(HITS, { ns: 'segql', q: 'churn' }, { 'x-sandbox-name': 'other' }));
    expect(there.searchEntities.edges.map((e: any) => e.node.entity.name)).toEqual(['Churn elsewhere']);
    expect(await names('elsewhere')).toEqual([]);
    const counts = ok(
      await server.gql('{ searchNamespaces(query: "churn* OR winback") { namespace count } }', undefined, {
        'x-sandbox-name': 'other',
      }),
    );
    expect(counts.searchNamespaces).toEqual([
      { namespace: 'segql', count: 1 },
      { namespace: 'schema', count: 0 },
    ]);
    // An audience of another sandbox has no folder path here.
    const foreign = await server.gql(
      'query($id: ID!) { taxonomy(entityId: $id) { name } }',
      { id: ids['Churn risk'] },
      {
        'x-sandbox-name': 'other',
      },
    );
    expect(foreign.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('streams live results over graphql-ws: added, changed, removed, and nothing from another sandbox', async () => {
    const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
    const events: any[] = [];
    let wake: (() => void) | undefined;
    client.subscribe(
      {
        query:
          'subscription { searchResults(query: "campaign", namespace: "segql") { type totalCount hits { key } hit { key rank snippet entity { ... on Audience { name description } } } } }',
      },
      {
        next: (m) => {
          events.push(m.data!.searchResults);
          wake?.();
        },
        error: (e) => events.push({ error: e }),
        complete: () => {},
      },
    );
    const waitFor = async (n: number) => {
      const deadline = Date.now() + 5000;
      while (events.length < n && Date.now() < deadline) await new Promise<void>((r) => (wake = r));
      expect(events.length).toBeGreaterThanOrEqual(n);
    };
    await waitFor(1);
    expect(events[0]).toMatchObject({ type: 'RESULTS', totalCount: 0, hits: [] });

    const otherId = ok(
      await server.gql(CREATE, { i: { name: 'Campaign there', description: 'x' } }, { 'x-sandbox-name': 'other' }),
    ).createAudience.id;
    const id = await audience('Spring campaign', 'First send');
    await waitFor(2);
    expect(events[1]).toMatchObject({ type: 'ADDED', totalCount: 1, hit: { key: id, rank: 0 } });
    expect(events[1].hit.key).not.toBe(otherId);

    ok(
      await server.gql('mutation($id: ID!) { updateAudience(id: $id, input: { description: "Second send" }) { id } }', {
        id,
      }),
    );
    await waitFor(3);
    expect(events[2]).toMatchObject({
      type: 'CHANGED',
      hit: { key: id, entity: { name: 'Spring campaign', description: 'Second send' } },
    });

    ok(
      await server.gql('mutation($id: ID!) { updateAudience(id: $id, input: { name: "Spring sale" }) { id } }', { id }),
    );
    await waitFor(4);
    expect(events[3]).toMatchObject({ type: 'REMOVED', totalCount: 0, hit: { key: id } });

    const second = await audience('Autumn campaign', 'Third send');
    await waitFor(5);
    expect(events[4]).toMatchObject({ type: 'ADDED', hit: { key: second } });
    ok(await server.gql('mutation($id: ID!) { deleteAudience(id: $id) }', { id: second }));
    await waitFor(6);
    expect(events[5]).toMatchObject({ type: 'REMOVED', hit: { key: second, entity: null } });
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toHaveLength(6);
    await client.dispose();
  });

  it('starts a live search with the current hits, best first', async () => {
    const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
    const first = await new Promise<any>((resolve, reject) => {
      const stop = client.subscribe(
        {
          query:
            'subscription { searchResults(query: "churn", namespace: "segql") { type totalCount hit { key } hits { key rank matchedFields } } }',
        },
        {
          next: (m) => {
            stop();
            resolve(m.data!.searchResults);
          },
          error: reject,
          complete: () => {},
        },
      );
    });
    await client.dispose();
    expect(first).toEqual({
      type: 'RESULTS',
      totalCount: 2,
      hit: null,
      hits: [
        { key: ids['Churn risk'], rank: 0, matchedFields: ['NAME'] },
        { key: ids['Loyal shoppers'], rank: 1, matchedFields: ['DESCRIPTION'] },
      ],
    });
  });

  it('streams live results over SSE', async () => {
    const res = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({
        query: 'subscription { searchResults(query: "sse*") { type hits { key } hit { key } } }',
      }),
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const payloads: any[] = [];
    let buffer = '';
    const read = async (n: number) => {
      while (payloads.length < n) {
        const { value } = await reader.read();
        buffer += decoder.decode(value, { stream: true });
        for (const m of buffer.matchAll(/^data: (.*)$/gm)) payloads.push(JSON.parse(m[1]!));
        buffer = buffer.slice(buffer.lastIndexOf('\n\n') + 2);
      }
    };
    await read(1);
    expect(payloads[0].data.searchResults).toEqual({ type: 'RESULTS', hits: [], hit: null });
    const id = await audience('SSE audience', 'streamed');
    await read(2);
    expect(payloads[1].data.searchResults).toEqual({ type: 'ADDED', hits: [], hit: { key: id } });
    await reader.cancel();
  });
});
