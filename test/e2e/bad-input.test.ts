import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

async function post(body: string, headers: Record<string, string> = {}) {
  const res = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
    body,
  });
  return { status: res.status, body: (await res.json()) as any };
}

describe('bad input gets a clear error with the docs/api.md code, and the server stays up', () => {
  it('malformed JSON body → BAD_USER_INPUT', async () => {
    const { status, body } = await post('{"query": "{ __typename }"');
    expect(status).toBe(400);
    expect(body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(body.errors[0].message).toMatch(/JSON/i);
  });

  // The server hands yoga a JSON body already parsed when it is an object (server/routes.ts);
  // JSON that is not one must still get yoga's own answer, not a hang on the consumed stream.
  it.each([
    ['123', /number/],
    ['null', /null/],
    ['"{ __typename }"', /string/],
    ['{}', /query/i],
  ])('a JSON body %s that is no request object → 400 BAD_USER_INPUT', async (text, message) => {
    const { status, body } = await post(text);
    expect(status).toBe(400);
    expect(body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(body.errors[0].message).toMatch(message);
  });

  it('an empty JSON array is an empty batch, answered as one', async () => {
    expect(await post('[]')).toEqual({ status: 200, body: [] });
  });

  it('a JSON request with a charset in its content type still runs', async () => {
    const res = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(await res.json()).toEqual({ data: { __typename: 'Query' } });
  });

  it('unknown field → BAD_USER_INPUT naming it', async () => {
    const res = await server.gql('{ profiles { totalCount shoeSize } }');
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.errors?.[0]?.message).toContain('shoeSize');
  });

  it('first: 100000 → BAD_USER_INPUT naming the maximum', async () => {
    const res = await server.gql('{ profiles(first: 100000) { totalCount } }');
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
    expect(res.errors?.[0]?.message).toBe('"first" must be between 0 and 500, got 100000');
    expect(res.data?.profiles ?? null).toBeNull();
  });

  it('a 2 MiB body → PAYLOAD_TOO_LARGE with the limit', async () => {
    const padding = 'x'.repeat(2 * 1024 * 1024);
    const { status, body } = await post(JSON.stringify({ query: '{ __typename }', variables: { padding } }));
    expect(status).toBe(413);
    expect(body.errors[0].extensions).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 1024 * 1024 });
  });

  it('a query 50 levels deep → QUERY_TOO_COMPLEX with limit and actual', async () => {
    let selection = 'id';
    for (let i = 0; i < 24; i++) selection = `events { edges { node { profile { ${selection} } } } }`;
    const query = `{ profiles { edges { node { ${selection} } } } }`;
    const res = await server.gql(query);
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 12 });
    expect(res.errors?.[0]?.extensions?.actual).toBeGreaterThanOrEqual(50);
  });

  it('more than 30 aliases → QUERY_TOO_COMPLEX', async () => {
    const fields = Array.from({ length: 31 }, (_, i) => `a${i}: __typename`).join(' ');
    const res = await server.gql(`{ ${fields} }`);
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 30, actual: 31 });
  });

  it('a costly query → QUERY_TOO_COMPLEX from the cost limit', async () => {
    const fields = Array.from(
      { length: 20 },
      (_, i) =>
        `p${i}: profiles(first: 500) { edges { node { identities { value } events(first: 500) { totalCount } } } }`,
    ).join(' ');
    const res = await server.gql(`{ ${fields} }`);
    expect(res.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_COMPLEX');
    expect(res.errors?.[0]?.extensions?.limit).toBe(5000);
  });

  it('an event timestamp that is not a DateTime → BAD_USER_INPUT naming the format', async () => {
    const res = await server.gql('mutation($e: [EventInput!]!) { ingestEvents(events: $e) { accepted } }', {
      e: [{ identity: { namespace: 'email', id: 'a@x.se' }, timestamp: 'yesterday', eventType: 'x' }],
    });
    expect(res.data).toBeUndefined();
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.errors?.[0]?.message).toContain('DateTime must be an ISO-8601 string');
  });

  it('an identity with an empty namespace → BAD_USER_INPUT', async () => {
    const res = await server.gql('{ profile(identity: { namespace: "", id: "x" }) { id } }');
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'identity' });
    expect(res.errors?.[0]?.message).toBe('Invalid identity: identity namespace is empty');
    const del = await server.gql('mutation { deleteProfile(identity: { namespace: "", id: "x" }) }');
    expect(del.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('a bad DateTime and a bad cursor → BAD_USER_INPUT', async () => {
    const dt = await server.gql('{ profiles(filter: { updatedAfter: "yesterday" }) { totalCount } }');
    expect(dt.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const cur = await server.gql('{ profiles(after: "not-a-cursor") { totalCount } }');
    expect(cur.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
  });

  it('more than 10,000 records in one call → BAD_USER_INPUT, nothing written', async () => {
    const records = Array.from({ length: 10_001 }, (_, i) => ({
      identities: [{ namespace: 'e', id: String(i) }],
      attributes: {},
    }));
    const res = await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', {
      r: records,
    });
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(ok(await server.gql('{ profiles { totalCount } }')).profiles.totalCount).toBe(0);
  });

  it('still answers after all of that', async () => {
    expect(ok(await server.gql('{ __typename }')).__typename).toBe('Query');
  });
});
