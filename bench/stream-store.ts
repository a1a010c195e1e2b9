/**
 * The store the streaming benches work on (`stream`, `stream-writer`): demo profiles with 10
 * events each, and streaming definitions over them — attribute tests, and typed event counts over
 * windows of 1 to 24 hours, so events stamped now change memberships.
 */
import { openDatabase } from '../src/db/index.js';
import { createSegmentDefinition } from '../src/domain/definitions.js';
import { prng, seedDemoData } from '../src/domain/demo-data.js';
import { DEFAULT_SANDBOX, ensureSandbox } from '../src/domain/sandboxes.js';

/** Streaming-eligible definitions over the demo data: attribute tests and windowed event counts. */
function definitionTexts(n: number): string[] {
  const out: string[] = [];
  const countries = ['US', 'GB', 'DE', 'FR', 'CA', 'SE', 'NO', 'ES', 'JP', 'BR', 'AU'];
  const types = ['web.webpagedetails.pageViews', 'commerce.productViews', 'commerce.purchases', 'commerce.checkouts'];
  for (let i = 0; out.length < n; i++) {
    switch (i % 5) {
      case 0:
        out.push(`loyalty.points >= ${100 * (i + 1)}`);
        break;
      case 1:
        out.push(`homeAddress.countryCode = "${countries[i % countries.length]}"`);
        break;
      case 2:
        out.push(`loyalty.tier = "gold" and loyalty.points > ${50 * i}`);
        break;
      default: {
        const type = types[i % types.length]!;
        const hours = [1, 6, 24][i % 3]!;
        out.push(
          `xEvent[eventType = "${type}" and timestamp occurs <= ${hours} hours before now].count() >= ${1 + (i % 2)}`,
        );
      }
    }
  }
  return out;
}

/** Seeds `file` (a new database) with `profiles` demo profiles and `definitions` streaming definitions; the sandbox's id. */
export async function seedStreamStore(
  file: string,
  options: { profiles: number; definitions: number },
): Promise<number> {
  const seed = openDatabase(file);
  try {
    const sandboxId = (await ensureSandbox(seed, DEFAULT_SANDBOX)).id;
    seedDemoData(seed, sandboxId, { profiles: options.profiles, eventsPerProfile: 10, seed: 42 });
    for (const [i, value] of definitionTexts(options.definitions).entries()) {
      await createSegmentDefinition(seed, sandboxId, {
        name: `stream-${i}`,
        expression: { format: 'PQL_TEXT', value },
        evaluationInfo: { batch: true, streaming: true, edge: false },
        lifecycleState: 'PUBLISHED',
      });
    }
    return sandboxId;
  } finally {
    seed.close();
  }
}

/**
 * The events of one ingest request as the stream benches send them: random demo profiles, stamped
 * now. `payloadItems` > 0 gives each that many `productListItems` of the demo catalogue (~120
 * bytes of JSON each), for a payload the size of a real commerce event's; their content draws
 * nothing from `random`, so the events are the same ones either way.
 */
export function streamEvents(
  random: () => number,
  options: {
    size: number;
    profiles: number;
    firstId: number;
    prefix: string;
    now?: string;
    randomIds?: boolean;
    payloadItems?: number;
  },
): { id: string; identity: { namespace: string; id: string }; timestamp: string; eventType: string; data: object }[] {
  const now = options.now ?? new Date().toISOString();
  const items = options.payloadItems ?? 0;
  return Array.from({ length: options.size }, (_, i) => ({
    id: `${options.prefix}${options.randomIds ? randomHex(random) : options.firstId + i}`,
    identity: { namespace: 'email', id: `user${Math.floor(random() * options.profiles)}@example.com` },
    timestamp: now,
    eventType: random() < 0.5 ? 'commerce.productViews' : 'commerce.purchases',
    data:
      items === 0
        ? { channel: 'web' }
        : { channel: 'web', productListItems: productListItems(options.firstId + i, items) },
  }));
}

/** `n` product lines for event `i`, shaped as the demo data's. */
function productListItems(i: number, n: number): object[] {
  return Array.from({ length: n }, (_, k) => ({
    SKU: `AP-${(i * 7 + k * 13) % 500}`,
    name: `apparel item number ${k + 1} of the order`,
    category: 'apparel',
    quantity: 1 + ((i + k) % 3),
    priceTotal: 10 + ((i * 31 + k * 17) % 9000) / 100,
  }));
}

/** 128 random bits as 32 hex digits, from `random`: an id as a producer's UUIDs fall, anywhere in the index. */
function randomHex(random: () => number): string {
  let hex = '';
  for (let k = 0; k < 4; k++)
    hex += Math.floor(random() * 0x1_0000_0000)
      .toString(16)
      .padStart(8, '0');
  return hex;
}

export { prng };
