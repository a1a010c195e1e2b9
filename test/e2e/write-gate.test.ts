/**
 * A mutation that arrives while a job's worker thread writes its results waits for it without
 * holding the event loop (db/write-gate.ts, graphql/write-gate-plugin.ts): the server answers
 * other requests meanwhile, and the mutation succeeds once the worker has committed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTypeScriptWorker } from '../../src/domain/jobs/worker-thread.js';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.stop();
});

describe('mutations and a job writing its results', () => {
  it('waits for the job’s write lock while /healthz keeps answering', async () => {
    const conn = server.sqlite;
    const worker = startTypeScriptWorker(new URL('../db/write-gate-worker.ts', import.meta.url).href, {
      file: conn.sqlite.name,
      gate: conn.writeGate.buffer,
      holdMs: 1_000,
    });
    const steps: string[] = [];
    const reached = (step: string) =>
      new Promise<void>((resolve) =>
        worker.on('message', (m: string) => {
          if (m === step) resolve();
        }),
      );
    worker.on('message', (m: string) => steps.push(m));
    const done = reached('done');
    await reached('holding');
    try {
      const mutation = server
        .gql('mutation { createFolder(input: { name: "Written after the job" }) { id name } }')
        .then((res) => {
          steps.push('mutation answered');
          return res;
        });
      // While the worker holds the lock, health checks are answered: nothing spins in SQLite.
      let answered = 0;
      while (!steps.includes('done')) {
        const res = await fetch(`${server.url.replace(/\/graphql$/, '')}/healthz`);
        if (res.ok && !steps.includes('done')) answered++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await done;
      const created = ok(await mutation);
      expect(created.createFolder.name).toBe('Written after the job');
      // 'done' follows the thread's close, which can come after the mutation's answer on a busy
      // box; 'committed' is sent before the thread lets the write gate go.
      expect(steps.indexOf('committed')).toBeGreaterThanOrEqual(0);
      expect(steps.indexOf('committed')).toBeLessThan(steps.indexOf('mutation answered'));
      expect(answered).toBeGreaterThanOrEqual(5);
    } finally {
      await worker.terminate();
    }
  });
});
