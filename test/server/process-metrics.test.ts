import { readdirSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { collectProcessMetrics } from '../../src/process-metrics.js';

/** Node's own count of active handles (not in its typings). */
const activeHandles = () => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;

/** The value of a sample in Prometheus text (`name` with its labels, as written). */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('process metrics', () => {
  let server: Server | undefined;
  const sockets: Socket[] = [];
  afterEach(async () => {
    // Closed, not only destroyed: a closing handle is still listed as active.
    await Promise.all(sockets.splice(0).map((s) => new Promise((resolve) => s.once('close', resolve).destroy())));
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    server = undefined;
  });

  /** `n` client sockets connected to a server of this process (2n descriptors and handles). */
  const open = async (n: number) => {
    server = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    for (let i = 0; i < n; i++)
      sockets.push(
        await new Promise<Socket>((resolve) =>
          connect(port, '127.0.0.1', function (this: Socket) {
            resolve(this);
          }),
        ),
      );
    while (sockets.length < 2 * n) await new Promise((r) => setTimeout(r, 5));
  };

  it('keeps the default names, one of each, with the values prom-client gave', async () => {
    await open(1);
    const registry = new Registry();
    collectProcessMetrics(registry, 'p_');
    const text = await registry.metrics();
    for (const name of [
      'p_process_open_fds',
      'p_nodejs_active_handles_total',
      'p_nodejs_active_resources_total',
      'p_nodejs_heap_size_used_bytes',
      'p_process_cpu_seconds_total',
    ])
      expect(
        text.split('\n').filter((l) => l === `# TYPE ${name} gauge` || l === `# TYPE ${name} counter`),
      ).toHaveLength(1);
    expect(text).toMatch(/^p_nodejs_active_handles\{type="Server"\} \d+$/m);
  });

  it.runIf(process.platform === 'linux')('counts open descriptors at each scrape', async () => {
    const registry = new Registry();
    collectProcessMetrics(registry, 'p_');
    const before = sample(await registry.metrics(), 'p_process_open_fds')!;
    expect(Math.abs(before - (readdirSync('/proc/self/fd').length - 1))).toBeLessThanOrEqual(2);
    await open(50);
    const after = sample(await registry.metrics(), 'p_process_open_fds')!;
    // The listener and 50 connections, both ends in this process.
    expect(after - before).toBeGreaterThanOrEqual(101);
    expect(after - before).toBeLessThanOrEqual(103);
  });

  it('lists the active handles and resources at most once per refresh period', async () => {
    const registry = new Registry();
    collectProcessMetrics(registry, 'p_', 60_000);
    const first = await registry.metrics();
    const handles = sample(first, 'p_nodejs_active_handles_total')!;
    expect(Math.abs(handles - activeHandles())).toBeLessThanOrEqual(2);
    await open(20);
    // Within the period the scrape serves the listing it has.
    expect(sample(await registry.metrics(), 'p_nodejs_active_handles_total')).toBe(handles);

    const fresh = new Registry();
    collectProcessMetrics(fresh, 'p_', 0);
    const text = await fresh.metrics();
    expect(sample(text, 'p_nodejs_active_handles_total')! - handles).toBeGreaterThanOrEqual(40);
    // The scrape's own descriptor listing is among the resources while it reads, and a request or
    // timer of the test runner may come or go between the scrape and this listing (a loaded
    // machine saw it): near, not equal.
    const resources = sample(text, 'p_nodejs_active_resources_total')! - process.getActiveResourcesInfo().length;
    expect(Math.abs(resources)).toBeLessThanOrEqual(3);
    expect(sample(text, 'p_nodejs_active_handles{type="Socket"}')).toBeGreaterThanOrEqual(40);
  });
});
