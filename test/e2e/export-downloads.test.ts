import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApiKey, touchKeyStamp } from '../../src/domain/api-keys.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;
const keys: Record<string, string> = {};

beforeAll(async () => {
  server = await startTestServer();
  const conn = server.app.conn;
  await ensureSandbox(conn, 'other');
  keys.read = (await createApiKey(conn, { name: 'r', sandboxes: ['prod'], scopes: ['read'] })).key;
  keys.write = (await createApiKey(conn, { name: 'w', sandboxes: ['prod'], scopes: ['read', 'write'] })).key;
  keys.other = (await createApiKey(conn, { name: 'o', sandboxes: ['other'], scopes: ['read', 'write', 'admin'] })).key;
  touchKeyStamp(server.dataDir);
});
afterAll(() => server.stop());

const auth = (key: string) => ({ authorization: `Bearer ${key}` });

it('serves a dataset file under the GraphQL access rules: key, scope and sandbox', async () => {
  const w = auth(keys.write!);
  ok(
    await server.gql(
      'mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }',
      { r: [{ identities: [{ namespace: 'email', id: 'a@x' }], attributes: { loyalty: { tier: 'gold' } } }] },
      w,
    ),
  );
  const audience = ok(
    await server.gql('mutation { createAudience(input: { name: "Hand-picked" }) { id } }', undefined, w),
  ).createAudience;
  ok(
    await server.gql(
      'mutation($id: ID!) { addAudienceMembers(audienceId: $id, identities: [{ namespace: "email", id: "a@x" }]) { size } }',
      { id: audience.id },
      w,
    ),
  );
  const job = ok(
    await server.gql(
      'mutation($i: CreateExportJobInput!) { createExportJob(input: $i) { id } }',
      { i: { audiences: [{ audienceId: audience.id }], destination: { datasetName: 'd', format: 'NDJSON' } } },
      w,
    ),
  ).createExportJob;
  let state: any;
  do {
    state = ok(
      await server.gql(
        'query($id: ID!) { exportJob(id: $id) { status files { path sha256 } destination { dataset { id } } } }',
        { id: job.id },
        w,
      ),
    ).exportJob;
  } while (!['SUCCEEDED', 'FAILED'].includes(state.status));
  expect(state.status).toBe('SUCCEEDED');
  const url = `${server.url.replace(/\/graphql$/, '')}/datasets/${encodeURIComponent(state.destination.dataset.id)}/files/${state.files[0].path}`;
  const get = (headers: Record<string, string>) => fetch(url, { headers });

  const served = await get(auth(keys.read!));
  expect(served.status).toBe(200);
  expect(served.headers.get('etag')).toBe(`"${state.files[0].sha256}"`);
  expect(JSON.parse(await served.text())).toMatchObject({
    status: 'REALIZED',
    identities: [{ namespace: 'email', id: 'a@x' }],
  });

  const none = await get({});
  expect(none.status).toBe(401);
  expect((await none.json()).errors[0].extensions.code).toBe('UNAUTHENTICATED');
  // A key of another sandbox, asking for this one: forbidden, as in GraphQL.
  const foreign = await get({ ...auth(keys.other!), 'x-sandbox-name': 'prod' });
  expect(foreign.status).toBe(403);
  expect((await foreign.json()).errors[0].extensions.code).toBe('FORBIDDEN');
  // The same key in its own sandbox: the dataset is not there.
  const ownSandbox = await get({ ...auth(keys.other!), 'x-sandbox-name': 'other' });
  expect(ownSandbox.status).toBe(404);
  expect(await (await get({ ...auth(keys.read!), 'if-none-match': `"${state.files[0].sha256}"` })).status).toBe(304);
});
