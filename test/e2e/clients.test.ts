/**
 * The server as frontend teams meet it: unmodified Apollo Client 4 and urql (graphcache, graphql-sse)
 * with the links and exchanges they switch on by default, against the real server.
 */
import { createHash } from 'node:crypto';
import { ApolloClient, ApolloLink, gql, HttpLink, InMemoryCache } from '@apollo/client';
import { Defer20220824Handler } from '@apollo/client/incremental';
import { BatchHttpLink } from '@apollo/client/link/batch-http';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition, relayStylePagination } from '@apollo/client/utilities';
import { Client, fetchExchange, subscriptionExchange, gql as urqlGql } from '@urql/core';
import { cacheExchange } from '@urql/exchange-graphcache';
import { relayPagination } from '@urql/exchange-graphcache/extras';
import type { GraphQLObjectType } from 'graphql';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { schema } from '../../src/graphql/index.js';
import { ok, startTestServer, type TestServer } from './harness.js';

const PROFILES = 23;
const AUDIENCES = 12;
const MEMBERS = 11;

let server: TestServer;
let manualAudienceId: string;

/** What each client sent over HTTP: method, the parsed body (or query string) and the status it got. */
interface Sent {
  method: string;
  operationName: string | undefined;
  body: any;
  search: string;
  status: number;
}

function recordingFetch(log: Sent[], options: { keepSignal: boolean } = { keepSignal: true }): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, options.keepSignal ? init : { ...init, signal: undefined });
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const body = typeof init?.body === 'string' ? JSON.parse(init.body) : undefined;
    log.push({
      method: init?.method ?? 'GET',
      operationName: body?.operationName ?? url.searchParams.get('operationName') ?? undefined,
      body,
      search: url.search,
      status: res.status,
    });
    return res;
  };
}

beforeAll(async () => {
  server = await startTestServer();
  const records = Array.from({ length: PROFILES }, (_, i) => ({
    identities: [
      { namespace: 'email', id: `p${i}@example.se` },
      { namespace: 'crmId', id: `C-${1000 + i}` },
    ],
    attributes: { homeAddress: { countryCode: i % 2 ? 'SE' : 'NO' }, loyalty: { tier: 'gold', points: i } },
  }));
  ok(await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', { r: records }));
  for (let i = 0; i < AUDIENCES; i++) {
    const made = ok(
      await server.gql('mutation($n: String!) { createAudience(input: { name: $n }) { id } }', { n: `Audience ${i}` }),
    );
    if (i === 0) manualAudienceId = made.createAudience.id;
  }
  ok(
    await server.gql(
      'mutation($a: ID!, $ids: [IdentityInput!]!) { addAudienceMembers(audienceId: $a, identities: $ids) { size } }',
      {
        a: manualAudienceId,
        ids: records.slice(0, MEMBERS).map((r) => r.identities[1]),
      },
    ),
  );
});
afterAll(() => server?.stop());

/** Every audience's name, sorted, straight from the server (the job tests add definitions' audiences). */
async function audienceNames(): Promise<string[]> {
  const all = ok(await server.gql('{ audiences(first: 500) { edges { node { name } } } }')).audiences.edges;
  const names = all.map((e: any) => e.node.name as string).sort();
  for (let i = 0; i < AUDIENCES; i++) expect(names).toContain(`Audience ${i}`);
  return names;
}

// ---------------------------------------------------------------------------------------------
// Apollo Client 4
// ---------------------------------------------------------------------------------------------

function apolloCache() {
  return new InMemoryCache({
    typePolicies: {
      Query: {
        fields: {
          profiles: relayStylePagination(['filter']),
          audiences: relayStylePagination(['filter', 'orderBy']),
        },
      },
      Audience: { fields: { members: relayStylePagination(['statuses']) } },
      // An identity is a value inside its profile, not an entity of its own.
      Identity: { keyFields: false },
    },
  });
}

/** HttpLink for queries and mutations, GraphQLWsLink for subscriptions: Apollo's documented split. */
function apolloClient(sent: Sent[], extra?: ApolloLink) {
  const http = new HttpLink({ uri: server.url, fetch: recordingFetch(sent) });
  const ws = new GraphQLWsLink(createWsClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 }));
  const isSubscription = ({ query }: { query: Parameters<typeof getMainDefinition>[0] }) => {
    const def = getMainDefinition(query);
    return def.kind === 'OperationDefinition' && def.operation === 'subscription';
  };
  const transport = ApolloLink.split(isSubscription, ws, http);
  return new ApolloClient({
    link: extra ? ApolloLink.from([extra, transport]) : transport,
    cache: apolloCache(),
    incrementalHandler: new Defer20220824Handler(),
  });
}

const PROFILE_PAGE = gql`
  query ProfilePage($after: String) {
    profiles(first: 7, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id identities { namespace value } } }
    }
  }
`;

const AUDIENCE_PAGE = gql`
  query AudiencePage($after: String) {
    audiences(first: 5, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id name size } }
    }
  }
`;

async function apolloPageToEnd(client: ApolloClient, query: typeof PROFILE_PAGE, field: 'profiles' | 'audiences') {
  const watch = client.watchQuery<any>({ query });
  const first = await watch.refetch();
  let page = first.data[field];
  let pages = 1;
  while (page.pageInfo.hasNextPage) {
    const more = await watch.fetchMore({ variables: { after: page.pageInfo.endCursor } });
    page = more.data[field];
    pages++;
  }
  // relayStylePagination has merged every page into the one cached list.
  const merged = client.readQuery<any>({ query })![field];
  return { merged, pages };
}

describe('Apollo Client 4', () => {
  it('pages to the end of profiles and audiences with relayStylePagination', async () => {
    const client = apolloClient([]);
    const profiles = await apolloPageToEnd(client, PROFILE_PAGE, 'profiles');
    expect(profiles.pages).toBe(Math.ceil(PROFILES / 7));
    expect(profiles.merged.totalCount).toBe(PROFILES);
    expect(new Set(profiles.merged.edges.map((e: any) => e.node.id)).size).toBe(PROFILES);
    expect(profiles.merged.pageInfo.hasNextPage).toBe(false);
    const crmIds = profiles.merged.edges.map(
      (e: any) => e.node.identities.find((i: any) => i.namespace === 'crmId').value,
    );
    expect(new Set(crmIds).size).toBe(PROFILES);

    const audiences = await apolloPageToEnd(client, AUDIENCE_PAGE, 'audiences');
    const all = await audienceNames();
    expect(audiences.pages).toBe(Math.ceil(all.length / 5));
    expect(audiences.merged.edges.map((e: any) => e.node.name).sort()).toEqual(all);
    client.stop();
  });

  it('updates a cached list from a mutation result, without refetching the list', async () => {
    const sent: Sent[] = [];
    const client = apolloClient(sent);
    const watch = client.watchQuery<any>({ query: AUDIENCE_PAGE });
    const names: string[][] = [];
    const sub = watch.subscribe(({ data }) => {
      if (data?.audiences) names.push(data.audiences.edges.map((e: any) => e.node.name));
    });
    await watch.refetch();
    const target = watch.getCurrentResult().data!.audiences.edges[2].node;
    const before = sent.length;
    await client.mutate({
      mutation: gql`
        mutation Rename($id: ID!, $name: String!) {
          updateAudience(id: $id, input: { name: $name }) { id name }
        }
      `,
      variables: { id: target.id, name: `${target.name} (renamed)` },
    });
    sub.unsubscribe();
    expect(sent.length - before).toBe(1);
    expect(sent.at(-1)!.operationName).toBe('Rename');
    expect(names.at(-1)![2]).toBe(`${target.name} (renamed)`);
    const cached = client.readQuery<any>({ query: AUDIENCE_PAGE })!.audiences.edges[2].node;
    expect(cached.name).toBe(`${target.name} (renamed)`);
    // Put the name back for the other tests.
    ok(
      await server.gql('mutation($id: ID!, $n: String!) { updateAudience(id: $id, input: { name: $n }) { id } }', {
        id: target.id,
        n: target.name,
      }),
    );
    client.stop();
  });

  it("keeps the first mutation's result when the second field of the operation fails", async () => {
    const client = apolloClient([]);
    const result = await client.mutate<any>({
      mutation: gql`
        mutation TwoFields {
          made: createFolder(input: { name: "Apollo partial" }) { id name }
          gone: deleteAudience(id: "QXVkaWVuY2U6OTk5OTk=")
        }
      `,
      errorPolicy: 'all',
    });
    expect(result.data.made.name).toBe('Apollo partial');
    expect(result.data.gone).toBeNull();
    expect(result.error?.message).toMatch(/No audience/);
    const stored = ok(await server.gql('query($id: ID!) { node(id: $id) { id } }', { id: result.data.made.id }));
    expect(stored.node.id).toBe(result.data.made.id);
    client.stop();
  });

  it('registers and then reuses automatic persisted queries over POST and GET', async () => {
    for (const useGETForHashedQueries of [false, true]) {
      const sent: Sent[] = [];
      const apq = new PersistedQueryLink({
        sha256: (q: string) => createHash('sha256').update(q).digest('hex'),
        useGETForHashedQueries,
      });
      const client = apolloClient(sent, apq);
      // A query text this server has not seen yet (the server's APQ store outlives one client).
      const query = gql`
        query Counted${useGETForHashedQueries ? 'Get' : 'Post'} {
          profiles(first: 1) { totalCount }
        }
      `;
      const first = await client.query<any>({ query, fetchPolicy: 'network-only' });
      expect(first.data.profiles.totalCount).toBe(PROFILES);
      // Hash only -> PERSISTED_QUERY_NOT_FOUND -> the same operation again with its text, which registers it.
      expect(sent).toHaveLength(2);
      expect(sent[0]!.status).toBe(404);
      expect(sent[0]!.method).toBe(useGETForHashedQueries ? 'GET' : 'POST');
      const hashOnly = useGETForHashedQueries
        ? Object.fromEntries(new URLSearchParams(sent[0]!.search))
        : sent[0]!.body;
      expect(hashOnly.query).toBeUndefined();
      expect(JSON.stringify(hashOnly.extensions)).toContain('sha256Hash');
      expect(sent[1]!.method).toBe('POST');
      expect(sent[1]!.body.query).toContain('profiles(first: 1)');

      const second = await client.query<any>({ query, fetchPolicy: 'network-only' });
      expect(second.data.profiles.totalCount).toBe(PROFILES);
      expect(sent).toHaveLength(3);
      expect(sent[2]!.status).toBe(200);
      expect(sent[2]!.method).toBe(useGETForHashedQueries ? 'GET' : 'POST');
      if (useGETForHashedQueries) expect(new URLSearchParams(sent[2]!.search).has('query')).toBe(false);
      else expect(sent[2]!.body.query).toBeUndefined();
      client.stop();
    }
  });

  it('answers an unknown hash with the code Apollo retries on', async () => {
    const res = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({ extensions: { persistedQuery: { version: 1, sha256Hash: 'f'.repeat(64) } } }),
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      errors: [{ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }],
    });
  });

  it('sends operations together through BatchHttpLink and answers each', async () => {
    const sent: Sent[] = [];
    const client = new ApolloClient({
      link: new BatchHttpLink({ uri: server.url, fetch: recordingFetch(sent), batchMax: 10, batchInterval: 20 }),
      cache: apolloCache(),
    });
    const [profiles, audiences, one] = await Promise.all([
      client.query<any>({ query: gql`query BatchA { profiles(first: 2) { totalCount } }` }),
      client.query<any>({ query: gql`query BatchB { audiences(first: 2) { totalCount } }` }),
      client.query<any>({
        query: gql`query BatchC($id: ID!) { audience(id: $id) { id size } }`,
        variables: { id: manualAudienceId },
      }),
    ]);
    expect(sent).toHaveLength(1);
    expect(Array.isArray(sent[0]!.body)).toBe(true);
    expect(sent[0]!.body.map((op: any) => op.operationName)).toEqual(['BatchA', 'BatchB', 'BatchC']);
    expect(profiles.data.profiles.totalCount).toBe(PROFILES);
    expect(audiences.data.audiences.totalCount).toBe(AUDIENCES);
    expect(one.data.audience).toEqual({ __typename: 'Audience', id: manualAudienceId, size: MEMBERS });
    client.stop();
  });

  it('delivers a deferred members page after the audience itself', async () => {
    const client = apolloClient([]);
    const query = gql`
      query AudienceWithMembers($id: ID!) {
        audience(id: $id) {
          id
          name
          ... @defer {
            members(first: 5) {
              totalCount
              edges { node { status profile { id identities { namespace value } } } }
            }
          }
        }
      }
    `;
    const seen: any[] = [];
    const watch = client.watchQuery<any>({ query, variables: { id: manualAudienceId }, fetchPolicy: 'network-only' });
    await new Promise<void>((resolve, reject) => {
      const sub = watch.subscribe({
        next: (result) => {
          if (result.data?.audience) seen.push({ dataState: result.dataState, audience: result.data.audience });
          if (result.dataState === 'complete') {
            sub.unsubscribe();
            resolve();
          }
        },
        error: reject,
      });
    });
    expect(seen[0].dataState).toBe('streaming');
    expect(seen[0].audience.name).toBe('Audience 0');
    expect(seen[0].audience.members).toBeUndefined();
    const done = seen.at(-1).audience;
    expect(done.members.totalCount).toBe(MEMBERS);
    expect(done.members.edges).toHaveLength(5);
    expect(done.members.edges[0].node.status).toMatch(/^(REALIZED|EXISTING)$/);
    client.stop();
  });

  it('follows a segment job over graphql-ws until it succeeds', async () => {
    const client = apolloClient([]);
    const made = await client.mutate<any>({
      mutation: gql`
        mutation Save {
          createSegmentDefinition(
            input: { name: "Swedes (Apollo)", expression: { value: "homeAddress.countryCode = \\"SE\\"" }, lifecycleState: PUBLISHED }
          ) { id audience { id } }
        }
      `,
    });
    const definitionId = made.data.createSegmentDefinition.id;
    const job = await client.mutate<any>({
      mutation: gql`
        mutation Run($ids: [ID!]) { createSegmentJob(input: { segmentDefinitionIds: $ids }) { id status } }
      `,
      variables: { ids: [definitionId] },
    });
    const statuses = await new Promise<string[]>((resolve, reject) => {
      const got: string[] = [];
      client
        .subscribe<any>({
          query: gql`
            subscription Watch($id: ID!) {
              segmentJobUpdated(id: $id) { id status progress { done total } }
            }
          `,
          variables: { id: job.data.createSegmentJob.id },
        })
        .subscribe({
          next: ({ data, error }) => (error ? reject(error) : got.push(data.segmentJobUpdated.status)),
          error: reject,
          complete: () => resolve(got),
        });
    });
    expect(statuses.at(-1)).toBe('SUCCEEDED');
    const audience = ok(
      await server.gql('query($id: ID!) { segmentDefinition(id: $id) { audience { size } } }', { id: definitionId }),
    );
    expect(audience.segmentDefinition.audience.size).toBe(Math.floor(PROFILES / 2));
    client.stop();
  });
});

// ---------------------------------------------------------------------------------------------
// urql with graphcache, and graphql-sse for subscriptions
// ---------------------------------------------------------------------------------------------

function urqlClient(sent: Sent[], url = server.url) {
  const sse = createSseClient({ url, retryAttempts: 0 });
  const embedded = () => null;
  return new Client({
    url,
    // urql aborts every finished fetch; Node 20's fetch turns that abort, after a multipart body was
    // read to its last part, into an unhandled AbortError. The requests still end on their own.
    fetch: recordingFetch(sent, { keepSignal: false }),
    exchanges: [
      cacheExchange({
        keys: {
          // The README's keyer: an identity is its namespace and value together.
          Identity: (i) => `${i.namespace}:${i.value}`,
          PageInfo: embedded,
          ProfileConnection: embedded,
          ProfileEdge: embedded,
          AudienceConnection: embedded,
          AudienceEdge: embedded,
          AudienceMember: embedded,
          AudienceMemberConnection: embedded,
          AudienceMemberEdge: embedded,
          JobProgress: embedded,
        },
        resolvers: { Query: { profiles: relayPagination(), audiences: relayPagination() } },
      }),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({ unsubscribe: sse.subscribe({ ...request, query: request.query ?? '' }, sink) }),
        }),
      }),
    ],
  });
}

describe('urql with graphcache and graphql-sse', () => {
  it('pages to the end of profiles and audiences with relayPagination', async () => {
    const client = urqlClient([]);
    const audiences = (await audienceNames()).length;
    for (const [field, query, total] of [
      ['profiles', PROFILE_PAGE, PROFILES],
      ['audiences', AUDIENCE_PAGE, audiences],
    ] as const) {
      let result = await client.query(query, {}).toPromise();
      let pages = 1;
      while (result.data[field].pageInfo.hasNextPage) {
        result = await client.query(query, { after: result.data[field].pageInfo.endCursor }).toPromise();
        expect(result.error).toBeUndefined();
        pages++;
      }
      expect(pages).toBe(Math.ceil(total / (field === 'profiles' ? 7 : 5)));
      // relayPagination answers every page's query with the merged list.
      const merged = (await client.query(query, {}, { requestPolicy: 'cache-only' }).toPromise()).data[field];
      expect(merged.edges).toHaveLength(total);
      expect(new Set(merged.edges.map((e: any) => e.node.id)).size).toBe(total);
    }
  });

  it('updates a cached list from a mutation result, without refetching the list', async () => {
    const sent: Sent[] = [];
    const client = urqlClient(sent);
    const list = await client.query(AUDIENCE_PAGE, {}).toPromise();
    const edge = list.data.audiences.edges.find((e: any) => e.node.id === manualAudienceId);
    expect(edge.node.size).toBe(MEMBERS);
    const added = await client
      .mutation(
        urqlGql`
          mutation Add($a: ID!, $ids: [IdentityInput!]!) {
            addAudienceMembers(audienceId: $a, identities: $ids) { id size }
          }
        `,
        { a: manualAudienceId, ids: [{ namespace: 'crmId', id: `C-${1000 + PROFILES - 1}` }] },
      )
      .toPromise();
    expect(added.error).toBeUndefined();
    const after = await client.query(AUDIENCE_PAGE, {}, { requestPolicy: 'cache-only' }).toPromise();
    expect(after.data.audiences.edges.find((e: any) => e.node.id === manualAudienceId).node.size).toBe(MEMBERS + 1);
    expect(sent.map((s) => s.operationName)).toEqual(['AudiencePage', 'Add']);
    ok(
      await server.gql(
        'mutation($a: ID!, $ids: [IdentityInput!]!) { removeAudienceMembers(audienceId: $a, identities: $ids) { size } }',
        {
          a: manualAudienceId,
          ids: [{ namespace: 'crmId', id: `C-${1000 + PROFILES - 1}` }],
        },
      ),
    );
  });

  it("keeps the first mutation's result when the second field of the operation fails", async () => {
    const client = urqlClient([]);
    const result = await client
      .mutation(
        urqlGql`
          mutation TwoFields {
            made: createFolder(input: { name: "urql partial" }) { id name }
            gone: deleteAudience(id: "QXVkaWVuY2U6OTk5OTk=")
          }
        `,
        {},
      )
      .toPromise();
    expect(result.data.made.name).toBe('urql partial');
    expect(result.data.gone).toBeNull();
    expect(result.error?.graphQLErrors[0]?.extensions.code).toBe('NOT_FOUND');
    expect(result.error?.graphQLErrors[0]?.path).toEqual(['gone']);
  });

  it('follows a segment job over SSE until it succeeds', async () => {
    const client = urqlClient([]);
    const made = await client
      .mutation(
        urqlGql`
          mutation SaveNorwegians {
            createSegmentDefinition(
              input: { name: "Norwegians (urql)", expression: { value: "homeAddress.countryCode = \\"NO\\"" }, lifecycleState: PUBLISHED }
            ) { id }
          }
        `,
        {},
      )
      .toPromise();
    expect(made.error).toBeUndefined();
    const definitionId = made.data.createSegmentDefinition.id;
    const job = await client
      .mutation(
        urqlGql`mutation RunNorwegians($ids: [ID!]) { createSegmentJob(input: { segmentDefinitionIds: $ids }) { id } }`,
        { ids: [definitionId] },
      )
      .toPromise();
    const statuses = await new Promise<string[]>((resolve, reject) => {
      const got: string[] = [];
      const { unsubscribe } = client
        .subscription(
          urqlGql`subscription WatchNorwegians($id: ID!) { segmentJobUpdated(id: $id) { id status progress { done total } } }`,
          { id: job.data.createSegmentJob.id },
        )
        .subscribe((result) => {
          if (result.error) return reject(result.error);
          got.push(result.data.segmentJobUpdated.status);
          if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(got.at(-1)!)) {
            unsubscribe();
            resolve(got);
          }
        });
    });
    expect(statuses.at(-1)).toBe('SUCCEEDED');
    const size = ok(
      await server.gql('query($id: ID!) { segmentDefinition(id: $id) { audience { size } } }', { id: definitionId }),
    ).segmentDefinition.audience.size;
    expect(size).toBe(Math.ceil(PROFILES / 2));
  });

  it('streams preview results with @stream', async () => {
    const client = urqlClient([]);
    const made = ok(
      await server.gql('mutation { createPreview(input: { expression: { value: "loyalty.points >= 0" } }) { id } }'),
    ).createPreview;
    for (;;) {
      const p = ok(await server.gql('query($id: ID!) { preview(id: $id) { status } }', { id: made.id })).preview;
      if (p.status === 'SUCCEEDED') break;
      expect(['QUEUED', 'PROCESSING']).toContain(p.status);
      await new Promise((r) => setTimeout(r, 20));
    }
    const results: any[] = [];
    await new Promise<void>((resolve, reject) => {
      const { unsubscribe } = client
        .query(
          urqlGql`
            query PreviewResults($id: ID!) {
              preview(id: $id) {
                id
                results(first: 6) { edges @stream(initialCount: 2) { node { id } } }
              }
            }
          `,
          { id: made.id },
          { requestPolicy: 'network-only' },
        )
        .subscribe((result) => {
          if (result.error) return reject(result.error);
          results.push(result.data.preview.results.edges.length);
          if (!result.hasNext) {
            unsubscribe();
            resolve();
          }
        });
    });
    expect(results[0]).toBe(2);
    expect(results.at(-1)).toBe(6);
  });
});

// ---------------------------------------------------------------------------------------------
// Identities in normalised caches, and the one profile list type
// ---------------------------------------------------------------------------------------------

describe('identities in normalised caches', () => {
  it('keeps {email: x} and {crmId: x} apart with the README cache set-up, in Apollo and urql', async () => {
    const own = await startTestServer();
    try {
      const shared = 'shared-7';
      ok(
        await own.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', {
          r: [
            { identities: [{ namespace: 'email', id: shared }], attributes: {} },
            { identities: [{ namespace: 'crmId', id: shared }], attributes: {} },
          ],
        }),
      );
      const expected = [[{ namespace: 'email', value: shared }], [{ namespace: 'crmId', value: shared }]];
      const namespacesOf = (data: any) =>
        data.profiles.edges.map((e: any) =>
          e.node.identities.map((i: any) => ({ namespace: i.namespace, value: i.value })),
        );

      // Identity has no `id`, so even Apollo's default cache (which keys `Identity:<id>` when there is
      // one) keeps them apart; the README's set-up says so explicitly.
      expect(Object.keys((schema.getType('Identity') as GraphQLObjectType).getFields()).sort()).toEqual([
        'namespace',
        'value',
      ]);
      const apolloQuery = gql`
        query SharedValue { profiles(first: 10) { edges { node { id identities { namespace value } } } } }
      `;
      for (const cache of [new InMemoryCache(), apolloCache()]) {
        const apollo = new ApolloClient({ link: new HttpLink({ uri: own.url }), cache });
        await apollo.query({ query: apolloQuery });
        expect(namespacesOf(apollo.readQuery({ query: apolloQuery }))).toEqual(expected);
        apollo.stop();
      }

      const urqlQuery = urqlGql`
        query SharedValue { profiles(first: 10) { edges { node { id identities { namespace value } } } } }
      `;
      const urql = urqlClient([], own.url);
      expect((await urql.query(urqlQuery, {}).toPromise()).error).toBeUndefined();
      const cached = await urql.query(urqlQuery, {}, { requestPolicy: 'cache-only' }).toPromise();
      expect(namespacesOf(cached.data)).toEqual(expected);
    } finally {
      await own.stop();
    }
  });
});

describe('one profile list type', () => {
  it('lets one ProfileConnection fragment serve profiles, profilesMatching and Preview.results', async () => {
    const x = 'loyalty.points >= 20';
    const made = ok(
      await server.gql('mutation($x: String!) { createPreview(input: { expression: { value: $x } }) { id } }', { x }),
    ).createPreview;
    let status = 'QUEUED';
    while (status !== 'SUCCEEDED') {
      status = ok(await server.gql('query($id: ID!) { preview(id: $id) { status } }', { id: made.id })).preview.status;
      expect(['QUEUED', 'PROCESSING', 'SUCCEEDED']).toContain(status);
      if (status !== 'SUCCEEDED') await new Promise((r) => setTimeout(r, 20));
    }
    const data = ok(
      await server.gql(
        `fragment ProfilePage on ProfileConnection { totalCount edges { cursor node { id } } }
         query Three($x: String!, $p: ID!) {
           profiles(first: 2) { ...ProfilePage }
           profilesMatching(expression: $x, first: 2) { ...ProfilePage }
           preview(id: $p) { id results(first: 2) { ...ProfilePage } }
         }`,
        { x, p: made.id },
      ),
    );
    expect(data.profiles.totalCount).toBe(PROFILES);
    expect(data.profilesMatching.totalCount).toBe(PROFILES - 20);
    expect(data.preview.results.totalCount).toBe(PROFILES - 20);
    for (const page of [data.profiles, data.profilesMatching, data.preview.results]) {
      expect(page.edges).toHaveLength(2);
    }
    // The three share one type, not three look-alikes.
    for (const gone of ['ProfileMatchConnection', 'ProfileMatchEdge', 'PreviewResultConnection', 'PreviewResultEdge'])
      expect(schema.getType(gone)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// Batching limits are per operation
// ---------------------------------------------------------------------------------------------

describe('batched requests', () => {
  const PAGE = '{ edges { node { id name } } }';

  async function post(url: string, body: unknown) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  }

  it('counts cost and aliases per operation, and caps the operations per request', async () => {
    // The cost of one page, read from the refusal of a server that allows almost nothing.
    const probe = await startTestServer({ limits: { maxCost: 1 } });
    const cost = (await probe.gql(`{ audiences(first: 100) ${PAGE} }`)).errors![0]!.extensions!.actual as number;
    await probe.stop();
    expect(cost).toBeGreaterThan(1);
    const limited = await startTestServer({ limits: { maxCost: Math.ceil(cost * 1.5), maxAliases: 3 } });
    try {
      const page = { query: `{ audiences(first: 100) ${PAGE} }` };
      // Three pages in one request cost 3x the limit together, but each operation fits.
      const three = await post(limited.url, [page, page, page]);
      expect(three.status).toBe(200);
      expect(three.body.map((r: any) => r.errors)).toEqual([undefined, undefined, undefined]);
      // Two pages in one operation do not.
      const both = await post(limited.url, [
        page,
        { query: `{ a: audiences(first: 100) ${PAGE} b: audiences(first: 100) ${PAGE} }` },
      ]);
      expect(both.body[0].errors).toBeUndefined();
      expect(both.body[1].errors[0].extensions.code).toBe('QUERY_TOO_COMPLEX');
      // Three aliases per operation are allowed, across any number of operations in the request.
      const aliased = { query: '{ a: __typename b: __typename c: __typename }' };
      const fine = await post(limited.url, [aliased, aliased, aliased]);
      expect(fine.body.map((r: any) => r.data)).toEqual(Array(3).fill({ a: 'Query', b: 'Query', c: 'Query' }));
      const over = await post(limited.url, [
        aliased,
        { query: '{ a: __typename b: __typename c: __typename d: __typename }' },
      ]);
      expect(over.body[0].data).toEqual({ a: 'Query', b: 'Query', c: 'Query' });
      expect(over.body[1].errors[0].extensions.code).toBe('QUERY_TOO_COMPLEX');
      // More operations than the batch limit: refused whole, with a message that names the limit.
      const many = await post(limited.url, Array(11).fill({ query: '{ __typename }' }));
      expect(many.status).toBe(413);
      expect(many.body.errors[0].message).toBe('Batching is limited to 10 operations per request.');
    } finally {
      await limited.stop();
    }
  });
});
