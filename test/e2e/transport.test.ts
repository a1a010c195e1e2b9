import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { e2eBackend, ok, readSse, startTestServer, type TestServer } from './harness.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

describe('transports', () => {
  it('answers a subscription round trip over graphql-ws on /graphql', async () => {
    const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, lazy: true, retryAttempts: 0 });
    const times: string[] = [];
    await new Promise<void>((resolve, reject) => {
      client.subscribe(
        { query: 'subscription { heartbeat(intervalMs: 20, count: 3) }' },
        { next: (msg) => times.push((msg.data as any).heartbeat), error: reject, complete: resolve },
      );
    });
    await client.dispose();
    expect(times).toHaveLength(3);
    expect(Date.parse(times[2]!)).toBeGreaterThanOrEqual(Date.parse(times[0]!));
  });

  it('selects the sandbox from connectionParams and refuses an unknown one', async () => {
    const client = createClient({
      url: server.wsUrl,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { 'x-sandbox-name': 'missing' },
    });
    const result = await new Promise<any>((resolve) => {
      client.subscribe({ query: '{ profiles { totalCount } }' }, { next: resolve, error: resolve, complete: () => {} });
    });
    await client.dispose();
    const errors = Array.isArray(result) ? result : result.errors;
    expect(errors[0].extensions.code).toBe('NOT_FOUND');
  });

  it('streams the same subscription over SSE', async () => {
    const res = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: 'subscription { heartbeat(intervalMs: 20, count: 3) }' }),
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const payloads = await readSse(res);
    expect(payloads).toHaveLength(3);
    expect(typeof payloads[0].data.heartbeat).toBe('string');
  });

  it('serves GraphiQL with its assets inline (works offline)', async () => {
    const res = await fetch(server.url, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('SegQL');
    expect(html.length).toBeGreaterThan(100_000);
    expect(html).not.toMatch(/<script[^>]+src="https?:\/\//);
    expect(html).not.toMatch(/<link[^>]+href="https?:\/\//);
    expect(html).not.toContain('unpkg.com');
  });

  it('reports health, readiness and Prometheus metrics', async () => {
    expect(await (await fetch(server.url.replace('/graphql', '/healthz'))).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(server.url.replace('/graphql', '/readyz'))).json()).toEqual({ status: 'ok' });
    ok(await server.gql('{ profiles { totalCount } }'));
    const text = await (await fetch(server.url.replace('/graphql', '/metrics'))).text();
    expect(text).toMatch(/segql_http_requests_total\{route="\/graphql",status="200"\} \d+/);
    expect(text).toContain('segql_http_request_duration_seconds_bucket');
    expect(Number(/segql_sql_statements_total (\d+)/.exec(text)?.[1])).toBeGreaterThan(0);
    expect(text).toContain('segql_active_subscriptions');
    expect(text).toContain('# TYPE segql_jobs gauge');
    await server.gql(
      'mutation { ingestEvents(events: [{ identity: { namespace: "email", id: "m@x.io" }, timestamp: "2026-01-01T00:00:00Z", eventType: "x" }]) { accepted } }',
    );
    const after = await (await fetch(server.url.replace('/graphql', '/metrics'))).text();
    expect(after).toContain('segql_ingested_records_total{kind="event",outcome="accepted"} 1');
    // The log's frames went out a commit at a time (docs/storage.md "WAL writes"); on PostgreSQL
    // the series stay at 0.
    const counted = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(after)?.[1]);
    const frames = counted('segql_sqlite_wal_frames_coalesced_total');
    const writes = counted('segql_sqlite_wal_coalesced_writes_total');
    if (e2eBackend() === 'sqlite') {
      expect(frames).toBeGreaterThan(0);
      expect(writes).toBeGreaterThan(0);
      expect(writes).toBeLessThan(frames);
    } else {
      expect(Number.isFinite(frames) && Number.isFinite(writes)).toBe(true);
    }
  });

  it('counts an open subscription in segql_active_subscriptions', async () => {
    const metric = async () =>
      Number(
        /segql_active_subscriptions (\d+)/.exec(
          await (await fetch(server.url.replace('/graphql', '/metrics'))).text(),
        )?.[1],
      );
    const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
    let seen = 0;
    const stop = client.subscribe(
      { query: 'subscription { heartbeat(intervalMs: 50) }' },
      { next: () => seen++, error: () => {}, complete: () => {} },
    );
    while (seen === 0) await new Promise((r) => setTimeout(r, 10));
    expect(await metric()).toBe(1);
    stop();
    await client.dispose();
    await new Promise((r) => setTimeout(r, 100));
    expect(await metric()).toBe(0);
  });

  it('gives every response a request id', async () => {
    const res = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"query":"{ __typename }"}',
    });
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
