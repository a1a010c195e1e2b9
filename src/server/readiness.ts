/**
 * /readyz: whether this node can serve. The database answers a round trip and is not damaged,
 * and, when events go through Redis (SEGQL_REDIS_URL), Redis answers too: a node cut off from
 * Redis would serve subscriptions that never see the other nodes, so a load balancer should
 * take it out. A failure names which dependency failed and why.
 */
import type { EventTransport } from '../domain/events.js';
import type { DatabaseHealth } from './health.js';

export interface Readiness {
  status: 200 | 503;
  body: { status: 'ok' } | { status: 'damaged' | 'unavailable'; failed: string[]; reason: string };
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function createReadiness(deps: { health: DatabaseHealth; transport?: EventTransport }) {
  return async (): Promise<Readiness> => {
    const failures: [string, string][] = [];
    try {
      await deps.health.check();
    } catch (err) {
      failures.push(['database', message(err)]);
    }
    const damage = deps.health.damage();
    if (damage !== undefined) return { status: 503, body: { status: 'damaged', failed: ['database'], reason: damage } };
    if (deps.transport) {
      try {
        await deps.transport.ping();
      } catch (err) {
        failures.push(['redis', message(err)]);
      }
    }
    if (failures.length === 0) return { status: 200, body: { status: 'ok' } };
    return {
      status: 503,
      body: {
        status: 'unavailable',
        failed: failures.map(([name]) => name),
        reason: failures.map(([name, why]) => `${name}: ${why}`).join('; '),
      },
    };
  };
}
