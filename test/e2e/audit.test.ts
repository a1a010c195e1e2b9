import { auditServer } from 'graphql-http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

it('passes every MUST of the GraphQL-over-HTTP audit (graphql-http auditServer)', async () => {
  const results = await auditServer({ url: server.url });
  const failedMusts = results.filter((r) => r.id && r.name.startsWith('MUST') && r.status !== 'ok');
  expect(failedMusts.map((r) => `${r.name}: ${'reason' in r ? r.reason : ''}`)).toEqual([]);
  expect(results.filter((r) => r.name.startsWith('MUST')).length).toBeGreaterThanOrEqual(10);
  expect(results.filter((r) => r.status === 'error')).toEqual([]);
});
