/**
 * The EventBus transport between nodes (SEGQL_REDIS_URL): one Redis pub/sub channel per topic,
 * `<prefix><topic>`, through yoga's Redis event target over ioredis. The payloads published
 * together (a commit's changes) travel as one message, in an envelope naming the node that sent it, so a node skips its own (its subscribers had them in
 * process already). Redis pub/sub delivers to whoever is subscribed at that moment and keeps
 * nothing: what a node misses while Redis is away is lost, as a subscriber that falls behind
 * loses its oldest payloads; the bus's bounded queue and `lagged` count apply to remote
 * payloads exactly as to local ones.
 */
import { randomUUID } from 'node:crypto';
import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { EventTransport } from './events.js';

interface Envelope {
  /** The node that published it. */
  from: string;
  /** Published together, delivered together. */
  payloads: readonly unknown[];
}

/** How long a readiness round trip may take before Redis counts as unavailable. */
const PING_TIMEOUT_MS = 2_000;

export function redisTransport(options: { url: string; prefix: string; log: Logger }): EventTransport {
  const { url, prefix, log } = options;
  const node = randomUUID();
  // Pub/sub needs a connection of its own: a subscribed connection can run no other command.
  const publisher = new Redis(url, { maxRetriesPerRequest: 2 });
  const subscriber = new Redis(url);
  let lastError = '';
  for (const client of [publisher, subscriber]) {
    // Without a listener ioredis prints every reconnect failure to stderr; log each new reason once.
    client.on('error', (err: Error) => {
      if (err.message === lastError) return;
      lastError = err.message;
      log.warn({ err }, 'redis: connection failed; retrying (subscriptions see no other node meanwhile)');
    });
    client.on('ready', () => {
      if (lastError !== '') log.info('redis: connected again');
      lastError = '';
    });
  }
  const target = createRedisEventTarget<CustomEvent<Envelope>>({
    publishClient: publisher,
    subscribeClient: subscriber,
  });
  return {
    publish(topic, payloads) {
      const envelope: Envelope = { from: node, payloads };
      // Straight through ioredis, not target.dispatchEvent: that drops the publish's promise, and
      // a Redis outage would then be an unhandled rejection (a crash) instead of a lost event.
      publisher.publish(prefix + topic, JSON.stringify(envelope)).catch((err: Error) => {
        log.warn({ err, topic }, 'redis: an event could not be published to the other nodes');
      });
    },
    listen(topic, deliver) {
      const listener = (event: CustomEvent<Envelope>) => {
        const envelope = event.detail;
        if (envelope && envelope.from !== node && Array.isArray(envelope.payloads)) deliver(envelope.payloads);
      };
      target.addEventListener(prefix + topic, listener);
      return () => target.removeEventListener(prefix + topic, listener);
    },
    async ping() {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
      });
      try {
        await Promise.race([publisher.ping(), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      await Promise.allSettled([publisher.quit(), subscriber.quit()]);
      publisher.disconnect();
      subscriber.disconnect();
    },
  };
}
