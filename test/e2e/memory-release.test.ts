/**
 * After a burst of graphql-ws connections closes and the server has been idle, it compacts its
 * heap once (src/server/memory-release.ts), counted on /metrics; not while they are open, not
 * for a handful, not again without a new burst.
 */
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from './harness.js';

const QUIET_MS = 300;

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ limits: { memoryReleaseQuietMs: QUIET_MS } });
});
afterAll(() => server?.stop());

/** The steps counted and the last compaction's pause in seconds, from /metrics (the scrape is a request: it resets the quiet). */
async function releases(): Promise<{ compact: number; young: number; pause: number }> {
  const text = await (await fetch(server.url.replace(/\/graphql$/, '/metrics'))).text();
  const step = (name: string) =>
    Number(new RegExp(`^segql_memory_releases_total\\{step="${name}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
  return {
    compact: step('compact'),
    young: step('young'),
    pause: Number(/^segql_memory_release_last_pause_seconds (\S+)$/m.exec(text)?.[1]),
  };
}

/** Opens `n` graphql-ws connections, each with one subscription, and resolves once all are acknowledged. */
async function subscribers(n: number) {
  const clients = Array.from({ length: n }, () =>
    createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false }),
  );
  await Promise.all(clients.map((c) => new Promise<void>((resolve) => c.on('connected', () => resolve()))));
  for (const c of clients)
    c.subscribe(
      { query: 'subscription { audienceMembershipChanged { to } }' },
      { next() {}, error() {}, complete() {} },
    );
  return { dispose: () => Promise.all(clients.map((c) => c.dispose())) };
}

const rest = (ms = QUIET_MS * 4) => new Promise((r) => setTimeout(r, ms));

describe('memory release after a burst of connections closes', () => {
  it('runs once after 120 connections close, not for 50, not while they are open', async () => {
    const few = await subscribers(50);
    await few.dispose();
    await rest();
    expect(await releases()).toEqual({ compact: 0, young: 0, pause: 0 });

    const many = await subscribers(120);
    await rest();
    expect((await releases()).compact).toBe(0);

    await many.dispose();
    let after = await releases();
    for (let i = 0; i < 10 && after.young === 0; i++) {
      await rest();
      after = await releases();
    }
    // The compaction first, then the young collection after a further quiet period.
    expect(after).toMatchObject({ compact: 1, young: 1 });
    expect(after.pause).toBeGreaterThan(0);
    expect(after.pause).toBeLessThan(5);

    // The peak is reset by the compaction: the quiet that follows is no new burst.
    await rest();
    expect(await releases()).toMatchObject({ compact: 1, young: 1 });
  });
});
