import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, touchKeyStamp } from '../../src/domain/api-keys.js';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

const GRAPHQL_RESPONSE = 'application/graphql-response+json';

async function post(body: BodyInit, headers: Record<string, string> = {}) {
  const res = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: GRAPHQL_RESPONSE, ...headers },
    body,
    duplex: 'half',
  } as RequestInit);
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as any };
}

/** A body sent in 64 KiB chunks with no Content-Length (Transfer-Encoding: chunked). */
function chunkedBody(bytes: number): ReadableStream<Uint8Array> {
  const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      sent += chunk.length;
      controller.enqueue(chunk);
    },
  });
}

describe('body limits hold without Content-Length', () => {
  it('a chunked 20 MiB body with the limit at 1 MiB → 413 PAYLOAD_TOO_LARGE, reading stopped near the limit', async () => {
    const { status, body } = await post(chunkedBody(20 * 1024 * 1024));
    expect(status).toBe(413);
    const error = body.errors[0];
    expect(error.extensions).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 1024 * 1024 });
    expect(error.extensions.received).toBeGreaterThan(1024 * 1024);
    expect(error.extensions.received).toBeLessThan(2 * 1024 * 1024);
    expect(error.message).toContain('limit of 1048576 bytes');
    expect(error.message).toContain('without Content-Length');
  });

  it('a declared 2 MiB body → 413 PAYLOAD_TOO_LARGE with the declared size', async () => {
    const padding = 'x'.repeat(2 * 1024 * 1024);
    const { status, body } = await post(JSON.stringify({ query: '{ __typename }', variables: { padding } }));
    expect(status).toBe(413);
    expect(body.errors[0].extensions).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 1024 * 1024 });
    expect(body.errors[0].extensions.actual).toBeGreaterThan(2 * 1024 * 1024);
  });

  it('a chunked body under the limit is served, and the server keeps serving after a refusal', async () => {
    const query = new TextEncoder().encode(JSON.stringify({ query: '{ __typename }' }));
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(query.slice(0, 5));
        controller.enqueue(query.slice(5));
        controller.close();
      },
    });
    const { status, body } = await post(stream);
    expect(status).toBe(200);
    expect(body).toEqual({ data: { __typename: 'Query' } });
  });
});

describe('every error has a documented code', () => {
  it('a text/plain POST → 415 with a JSON body naming the accepted content types', async () => {
    const { status, type, body } = await post('{ __typename }', { 'content-type': 'text/plain' });
    expect(status).toBe(415);
    expect(type).toContain('application/json');
    expect(body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(body.errors[0].message).toContain('"text/plain"');
    expect(body.errors[0].message).toContain('application/json');
  });

  it('a GraphQL syntax error → BAD_USER_INPUT with the position in the message', async () => {
    const res = await server.gql('{ profiles { ');
    expect(res.status).toBe(400);
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.errors?.[0]?.message).toBe('Syntax Error: Expected Name, found <EOF>. (line 1, column 14)');
  });

  it('two operations and no operationName → BAD_USER_INPUT saying to give one', async () => {
    const res = await server.gql('query A { __typename } query B { __typename }');
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.errors?.[0]?.message).toContain('operationName');
  });

  it('a validation failure → BAD_USER_INPUT', async () => {
    const res = await server.gql('query($a: Int) { __typename }  query { __typename }');
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('a literal nested 5,000 deep → BAD_USER_INPUT before parsing, and the server stays up', async () => {
    const deep = `${'['.repeat(5000)}1${']'.repeat(5000)}`;
    const res = await server.gql(`{ validatePql(expression: "true", format: ${deep}) { valid } }`);
    expect(res.status).toBe(400);
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit: 200 });
    expect(res.errors?.[0]?.message).toContain('more than 200 deep');
    expect(ok(await server.gql('{ __typename }'))).toEqual({ __typename: 'Query' });
  });

  it('a document of more than 100,000 tokens → BAD_USER_INPUT', async () => {
    const res = await server.gql(`{ ${'a '.repeat(100_001)}}`);
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit: 100_000 });
  });

  it('nodes(ids:) with 501 ids → BAD_USER_INPUT naming the maximum', async () => {
    const ids = Array.from({ length: 501 }, (_, i) => Buffer.from(`Audience:${i + 1}`).toString('base64'));
    const res = await server.gql('query($ids: [ID!]!) { nodes(ids: $ids) { id } }', { ids });
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'ids', limit: 500 });
    expect(res.errors?.[0]?.message).toBe('"ids" takes at most 500 ids, got 501');
  });

  it('nodes(ids:) with 40,000 ids (the review\'s "too many SQL variables") → BAD_USER_INPUT, not INTERNAL', async () => {
    const ids = Array.from({ length: 40_000 }, (_, i) => Buffer.from(`Audience:${i + 1}`).toString('base64'));
    const res = await server.gql('query($ids: [ID!]!) { nodes(ids: $ids) { id } }', { ids });
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'ids', limit: 500 });
    expect(res.errors?.[0]?.message).toBe('"ids" takes at most 500 ids, got 40000');
  });

  it('nodes(ids:) answers null at the position of each id that names nothing, the rest resolve', async () => {
    const { createAudience } = ok(await server.gql('mutation { createAudience(input: { name: "nodes-a" }) { id } }'));
    const b64 = (text: string) => Buffer.from(text).toString('base64');
    const ids = ['not an id', createAudience.id, b64('Nope:1'), b64('PageInfo:1'), b64('Audience:999999'), '%%'];
    const res = ok(await server.gql('query($ids: [ID!]!) { nodes(ids: $ids) { id __typename } }', { ids }));
    expect(res.nodes).toEqual([null, { id: createAudience.id, __typename: 'Audience' }, null, null, null, null]);
  });

  it('evaluateProfile with an unknown audience id → NOT_FOUND naming the id', async () => {
    ok(
      await server.gql(
        'mutation { ingestProfiles(records: [{ identities: [{ namespace: "email", id: "eval@x.io" }], attributes: {} }]) { accepted } }',
      ),
    );
    const unknown = Buffer.from('Audience:424242').toString('base64');
    const res = await server.gql(
      'query($ids: [ID!]) { evaluateProfile(identity: { namespace: "email", id: "eval@x.io" }, audienceIds: $ids) { qualifies } }',
      { ids: [unknown] },
    );
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'NOT_FOUND', id: unknown });
    expect(res.errors?.[0]?.message).toContain(unknown);
  });
});

describe('an operation refused as a whole answers 401/403', () => {
  let readKey: string;
  beforeAll(async () => {
    readKey = (await createApiKey(server.app.conn, { name: 'reader', sandboxes: ['prod'], scopes: ['read'] })).key;
    touchKeyStamp(server.dataDir);
  });

  it('no key → 401 UNAUTHENTICATED for application/graphql-response+json, 200 for application/json', async () => {
    const strict = await server.gql('{ __typename }');
    expect(strict.status).toBe(401);
    expect(strict.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const plain = await server.gql('{ __typename }', undefined, { accept: 'application/json' });
    expect(plain.status).toBe(200);
    expect(plain.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('a read key sending a mutation → 403 FORBIDDEN', async () => {
    const res = await server.gql('mutation { createAudience(input: { name: "nope" }) { id } }', undefined, {
      authorization: `Bearer ${readKey}`,
    });
    expect(res.status).toBe(403);
    expect(res.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(Object.values(res.data ?? {}).every((v) => v === null)).toBe(true);
  });

  it('a read key in a sandbox it does not have → 403 FORBIDDEN', async () => {
    const res = await server.gql('{ __typename }', undefined, {
      authorization: `Bearer ${readKey}`,
      'x-sandbox-name': 'elsewhere',
    });
    expect(res.status).toBe(403);
    expect(res.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('a read key reading → 200 with data', async () => {
    const res = await server.gql('{ __typename }', undefined, { authorization: `Bearer ${readKey}` });
    expect(res.status).toBe(200);
    expect(res.data).toEqual({ __typename: 'Query' });
  });
});
