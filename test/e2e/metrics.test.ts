import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, startTestServer, type TestServer } from './harness.js';

describe('/metrics counts ingestion', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.stop());

  const counter = async (kind: string, outcome: string) => {
    const text = await (await fetch(server.url.replace(/\/graphql$/, '/metrics'))).text();
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`segql_ingested_records_total{kind="${kind}",outcome="${outcome}"}`));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };

  it('moves the profile and event counters by what each ingest accepted, rejected and deduplicated', async () => {
    ok(
      await server.gql('mutation($r: [ProfileInput!]!) { ingestProfiles(records: $r) { accepted } }', {
        r: [
          { identities: [{ namespace: 'email', id: 'm1@x' }], attributes: {} },
          { identities: [{ namespace: 'email', id: 'm2@x' }], attributes: { nope: 1 } },
        ],
      }),
    );
    expect(await counter('profile', 'accepted')).toBe(1);
    expect(await counter('profile', 'rejected')).toBe(1);
    const event = {
      id: 'e1',
      identity: { namespace: 'email', id: 'm1@x' },
      eventType: 'web.view',
      timestamp: '2026-01-01T00:00:00Z',
    };
    for (let i = 0; i < 2; i++) {
      ok(await server.gql('mutation($e: [EventInput!]!) { ingestEvents(events: $e) { accepted } }', { e: [event] }));
    }
    expect(await counter('event', 'accepted')).toBe(1);
    expect(await counter('event', 'duplicate')).toBe(1);
  });
});

describe('/metrics shows event-loop stalls', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.stop());

  const gauge = async () => {
    const text = await (await fetch(server.url.replace(/\/graphql$/, '/metrics'))).text();
    return Number(/^segql_event_loop_delay_max_seconds (\S+)$/m.exec(text)?.[1]);
  };

  it('serves the longest event-loop delay since the previous scrape, in seconds', async () => {
    // Its value is a timing and is read by the subs bench, in a server process of its own.
    const first = await gauge();
    const second = await gauge();
    for (const value of [first, second]) {
      expect(Number.isFinite(value)).toBe(true);
      expect(value).toBeGreaterThanOrEqual(0);
    }
  });
});
