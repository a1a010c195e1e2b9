import { DEFAULT_LIMITS } from '../config.js';
import type { Connection } from '../db/index.js';
import type { Store } from '../db/store.js';
import { ingestEvents } from './event-ingest.js';
import { ingestEventsPooled, ingestProfilesPooled } from './pooled-ingest.js';
import { type EventInput, type IngestResult, ingestProfiles, type ProfileRecord } from './profile-ingest.js';
import { readCatalog } from './profile-schema.js';

/**
 * Deterministic demo data (`segql seed`): the same seed and reference day give the same
 * store. Distributions are shaped like a retailer's: skewed countries and loyalty tiers, ages
 * 18–85, a long tail of purchase counts, events over the last 120 days with a daily and
 * weekly rhythm (evenings and weekends busier).
 */
interface SeedOptions {
  profiles: number;
  eventsPerProfile: number;
  seed: number;
  /** Reference instant; events fall in the 120 days before it. Default: today 00:00 UTC. */
  now?: number;
  /** Called after each batch with (profiles done, total). */
  onProgress?: (done: number, total: number) => void;
}

interface SeedResult {
  profiles: number;
  events: number;
  ms: number;
}

/** mulberry32: tiny, fast, good enough for synthetic data, and stable across platforms. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Weighted<T> = [T, number][];

function picker<T>(items: Weighted<T>): (r: number) => T {
  const total = items.reduce((s, [, w]) => s + w, 0);
  let running = 0;
  const cumulative = items.map(([v, w]) => {
    running += w;
    return [v, running / total] as const;
  });
  return (r) => {
    for (const [v, c] of cumulative) if (r < c) return v;
    return cumulative[cumulative.length - 1]![0];
  };
}

const COUNTRIES = picker<[string, string[]]>([
  [['US', ['New York', 'Austin', 'Seattle', 'Chicago', 'Denver']], 34],
  [['GB', ['London', 'Leeds', 'Bristol']], 11],
  [['DE', ['Berlin', 'Hamburg', 'München']], 10],
  [['FR', ['Paris', 'Lyon', 'Marseille']], 8],
  [['CA', ['Toronto', 'Montréal', 'Vancouver']], 7],
  [['SE', ['Stockholm', 'Göteborg', 'Malmö']], 6],
  [['NO', ['Oslo', 'Bergen']], 4],
  [['ES', ['Madrid', 'Barcelona', 'Sevilla']], 5],
  [['JP', ['Tokyo', 'Osaka']], 5],
  [['BR', ['São Paulo', 'Rio de Janeiro']], 5],
  [['AU', ['Sydney', 'Melbourne']], 5],
]);
const TIERS = picker<string>([
  ['bronze', 50],
  ['silver', 28],
  ['gold', 16],
  ['platinum', 6],
]);
const FIRST = [
  'Ann',
  'Erik',
  'Sofia',
  'Liam',
  'Emma',
  'Noah',
  'Olivia',
  'Lucas',
  'Åsa',
  'Jürgen',
  'Zoë',
  'Mateo',
  'Yuki',
  'Chloé',
  'Omar',
];
const LAST = [
  'Smith',
  'Andersson',
  'Müller',
  'García',
  'Dubois',
  'Rossi',
  'Tanaka',
  'Silva',
  'Nguyen',
  'Johansson',
  'Brown',
];
const CATEGORIES = ['shoes', 'outdoor', 'electronics', 'books', 'beauty', 'kitchen', 'toys', 'sports', 'garden'];
const EVENT_TYPES = picker<string>([
  ['web.webpagedetails.pageViews', 55],
  ['commerce.productViews', 22],
  ['commerce.productListAdds', 10],
  ['commerce.purchases', 7],
  ['commerce.checkouts', 4],
  ['decisioning.propositionDisplay', 2],
]);
const CHANNELS = picker<string>([
  ['web', 60],
  ['mobile', 30],
  ['email', 10],
]);
const CURRENCY: Record<string, string> = {
  US: 'USD',
  GB: 'GBP',
  SE: 'SEK',
  NO: 'NOK',
  JP: 'JPY',
  BR: 'BRL',
  AU: 'AUD',
  CA: 'CAD',
};
const DAY = 86_400_000;
/** Relative traffic by hour of day (UTC): quiet nights, busy evenings. */
const HOURS = picker<number>(
  Array.from({ length: 24 }, (_, h): [number, number] => [h, h < 6 ? 1 : h < 17 ? 4 : h < 22 ? 7 : 3]),
);

function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

function makeProfile(i: number, r: () => number, now: number): ProfileRecord {
  const [country, cities] = COUNTRIES(r());
  const first = FIRST[Math.floor(r() * FIRST.length)]!;
  const last = LAST[Math.floor(r() * LAST.length)]!;
  const age = Math.min(85, Math.max(18, Math.round(41 + 14 * normal(r))));
  const birth = now - age * 365.25 * DAY - Math.floor(r() * 365) * DAY;
  const joined = now - Math.floor(r() * 5 * 365) * DAY;
  const identities = [{ namespace: 'email', id: `user${i}@example.com` }];
  if (r() < 0.8) identities.push({ namespace: 'crmId', id: `C-${100000 + i}` });
  if (r() < 0.4) identities.push({ namespace: 'phone', id: `+1555${String(i).padStart(7, '0')}` });
  const categories = CATEGORIES.filter(() => r() < 0.25);
  return {
    identities,
    attributes: {
      person: {
        name: { firstName: first, lastName: last },
        birthDate: new Date(birth - (birth % DAY)).toISOString(),
        gender: r() < 0.49 ? 'female' : r() < 0.96 ? 'male' : 'nonbinary',
      },
      personalEmail: { address: `user${i}@example.com` },
      homeAddress: {
        city: cities[Math.floor(r() * cities.length)]!,
        countryCode: country,
        postalCode: String(10000 + Math.floor(r() * 89999)),
      },
      loyalty: {
        tier: TIERS(r()),
        // Long tail: most members have few points, a few have very many.
        points: Math.round(Math.exp(5 + 1.6 * normal(r))),
        joinDate: new Date(joined).toISOString(),
      },
      preferences: { categories },
      consents: { marketing: { email: r() < 0.62 } },
      createdAt: new Date(joined).toISOString(),
    },
  };
}

function eventCount(r: () => number, mean: number): number {
  // Geometric-ish long tail around the mean: many light users, some heavy ones.
  if (mean <= 0) return 0;
  return Math.min(mean * 20, Math.floor(-Math.log(1 - r()) * mean));
}

function makeEvent(i: number, n: number, email: string, country: string, r: () => number, now: number): EventInput {
  let dayOffset = Math.floor(r() * 120);
  const weekday = new Date(now - dayOffset * DAY).getUTCDay();
  const weekend = weekday === 0 || weekday === 6;
  // Weekends are busier: a weekday draw is re-drawn once with some probability.
  if (!weekend && r() < 0.2) dayOffset = Math.floor(r() * 120);
  const ts = now - (dayOffset + 1) * DAY + HOURS(r()) * 3_600_000 + Math.floor(r() * 3_600_000);
  const eventType = EVENT_TYPES(r());
  const data: Record<string, unknown> = { channel: CHANNELS(r()) };
  if (eventType.startsWith('commerce.')) {
    const category = CATEGORIES[Math.floor(r() * CATEGORIES.length)]!;
    const quantity = 1 + Math.floor(-Math.log(1 - r()) * 0.7);
    const price = Math.round(Math.exp(3.2 + 0.9 * normal(r)) * 100) / 100;
    data.productListItems = [
      {
        SKU: `${category.slice(0, 2).toUpperCase()}-${Math.floor(r() * 500)}`,
        name: `${category} item`,
        category,
        quantity,
        priceTotal: price,
      },
    ];
    if (eventType === 'commerce.purchases') {
      data.commerce = {
        order: { priceTotal: Math.round(price * quantity * 100) / 100, currencyCode: CURRENCY[country] ?? 'EUR' },
      };
    }
  } else if (eventType === 'web.webpagedetails.pageViews') {
    const page = ['home', 'search', 'category', 'product', 'cart', 'account'][Math.floor(r() * 6)]!;
    data.web = { webPageDetails: { name: page, URL: `https://shop.example.com/${page}` } };
  } else {
    data.marketing = { campaignId: `CMP-${Math.floor(r() * 40)}` };
  }
  return {
    id: `seed-${i}-${n}`,
    identity: { namespace: 'email', id: email },
    timestamp: new Date(ts).toISOString(),
    eventType,
    data,
  };
}

/** One batch of demo data: a request's worth of profiles, and their events in requests' worth. */
interface DemoBatch {
  records: ProfileRecord[];
  events: EventInput[][];
  /** Profiles done once this batch is written. */
  done: number;
}

/** The demo data in batches of the API's maximum size, the same for both databases. */
function* demoBatches(options: SeedOptions, now: number): Generator<DemoBatch> {
  const r = prng(options.seed);
  const batch = DEFAULT_LIMITS.maxBatch;
  for (let start = 0; start < options.profiles; start += batch) {
    const end = Math.min(options.profiles, start + batch);
    const records: ProfileRecord[] = [];
    const pending: EventInput[] = [];
    for (let i = start; i < end; i++) {
      const record = makeProfile(i, r, now);
      records.push(record);
      const country = (record.attributes as { homeAddress: { countryCode: string } }).homeAddress.countryCode;
      const n = eventCount(r, options.eventsPerProfile);
      for (let k = 0; k < n; k++) pending.push(makeEvent(i, k, record.identities[0]!.id, country, r, now));
    }
    const events: EventInput[][] = [];
    for (let k = 0; k < pending.length; k += batch) events.push(pending.slice(k, k + batch));
    yield { records, events, done: end };
  }
}

/** Today 00:00 UTC, the default reference instant. */
const today = () => Date.now() - (Date.now() % DAY);

function checked(result: IngestResult, what: string): number {
  if (result.rejected > 0) throw new Error(`seed produced invalid ${what}: ${result.errors[0]?.message}`);
  return result.accepted;
}

/** Seeds profiles and events through the same ingest code as the API, in batches of the API's maximum size. */
export function seedDemoData(conn: Connection, sandboxId: number, options: SeedOptions): SeedResult {
  const started = Date.now();
  const now = options.now ?? today();
  let events = 0;
  for (const batch of demoBatches(options, now)) {
    checked(ingestProfiles(conn, sandboxId, batch.records, { now }), 'profiles');
    for (const chunk of batch.events) events += checked(ingestEvents(conn, sandboxId, chunk, { now }), 'events');
    options.onProgress?.(batch.done, options.profiles);
  }
  return { profiles: options.profiles, events, ms: Date.now() - started };
}

/**
 * seedDemoData on any store (a PostgreSQL cluster's): the same data through the pooled ingest,
 * one unit per request as the API's ingests on a serving node write them.
 */
export async function seedDemoDataOn(store: Store, sandboxId: number, options: SeedOptions): Promise<SeedResult> {
  const started = Date.now();
  const now = options.now ?? today();
  const catalog = await readCatalog(store, sandboxId);
  let events = 0;
  for (const batch of demoBatches(options, now)) {
    checked((await ingestProfilesPooled(store, sandboxId, batch.records, { catalog, now })).result, 'profiles');
    for (const chunk of batch.events) {
      events += checked((await ingestEventsPooled(store, sandboxId, chunk, { catalog, now })).result, 'events');
    }
    options.onProgress?.(batch.done, options.profiles);
  }
  return { profiles: options.profiles, events, ms: Date.now() - started };
}
