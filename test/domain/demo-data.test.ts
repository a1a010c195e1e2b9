import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import type { Store } from '../../src/db/store.js';
import { seedDemoData, seedDemoDataOn } from '../../src/domain/demo-data.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { describeOnPostgres } from '../db/statements-harness.js';
import { eventRows, identityRows, storedEvents, storedProfiles } from '../db/stored-rows.js';

async function seeded(seed: number) {
  const conn = openDatabase(':memory:');
  const sandbox = await ensureSandbox(conn, 'prod');
  const result = seedDemoData(conn, sandbox.id, {
    profiles: 300,
    eventsPerProfile: 5,
    seed,
    now: Date.UTC(2026, 10, 28),
  });
  const dump = conn.sqlite
    .prepare(
      `SELECT p.id, json(p.attributes) AS a, (SELECT group_concat(namespace || ':' || value) FROM identities i WHERE i.profile_id = p.id) AS ids,
              (SELECT group_concat(e.event_type || '@' || e.ts || json(e.payload), '|') FROM events e WHERE e.profile_id = p.id) AS ev
       FROM profiles p ORDER BY p.id`,
    )
    .all();
  conn.close();
  return { result, dump };
}

describe('demo data', () => {
  it('is the same store for the same seed and different for another', async () => {
    const a = await seeded(42);
    const b = await seeded(42);
    const c = await seeded(7);
    expect(a.dump).toEqual(b.dump);
    expect(a.dump).not.toEqual(c.dump);
    expect(a.result.profiles).toBe(300);
    expect(a.result.events).toBeGreaterThan(600);
  });

  it('puts every event within the 120 days before the reference day, shaped like a shop', async () => {
    const conn = openDatabase(':memory:');
    const sandbox = await ensureSandbox(conn, 'prod');
    const now = Date.UTC(2026, 10, 28);
    seedDemoData(conn, sandbox.id, { profiles: 2000, eventsPerProfile: 10, seed: 42, now });
    const span = conn.sqlite.prepare('SELECT min(ts) AS lo, max(ts) AS hi FROM events').get() as {
      lo: number;
      hi: number;
    };
    expect(span.lo).toBeGreaterThanOrEqual(now - 121 * 86_400_000);
    expect(span.hi).toBeLessThan(now);
    const tiers = conn.sqlite
      .prepare(
        "SELECT json_extract(attributes, '$.loyalty.tier') AS t, count(*) AS n FROM profiles GROUP BY t ORDER BY n DESC",
      )
      .all() as { t: string; n: number }[];
    expect(tiers.map((t) => t.t)).toEqual(['bronze', 'silver', 'gold', 'platinum']);
    const purchases = conn.sqlite
      .prepare("SELECT count(*) AS n FROM events WHERE event_type = 'commerce.purchases'")
      .get() as { n: number };
    const all = conn.sqlite.prepare('SELECT count(*) AS n FROM events').get() as { n: number };
    expect(purchases.n / all.n).toBeGreaterThan(0.04);
    expect(purchases.n / all.n).toBeLessThan(0.1);
    conn.close();
  });
});

/** What a seeded store holds, read the same way on either database (ids and JSON key order aside). */
async function storedDemo(store: Store) {
  const profiles = await storedProfiles(store);
  const identities = await store.all<{ namespace: string; value: string; profileId: number }>(identityRows);
  const events = await storedEvents(store, eventRows);
  const index = new Map(profiles.map((p, i) => [p.id, i]));
  return {
    profiles: profiles.map((p) => ({ ...p, id: index.get(p.id) })),
    identities: identities.map((i) => ({ ...i, profileId: index.get(i.profileId) })),
    events: events.map(({ id: _id, ...e }) => ({ ...e, profileId: index.get(e.profileId) })),
  };
}

const SEED = { profiles: 250, eventsPerProfile: 4, seed: 42, now: Date.UTC(2026, 10, 28) };

describe('demo data on any store', () => {
  it('seeds through the pooled ingest exactly what the synchronous seed writes', async () => {
    const reference = openDatabase(':memory:');
    const pooled = openDatabase(':memory:');
    try {
      const expected = seedDemoData(reference, (await ensureSandbox(reference, 'prod')).id, SEED);
      const progress: number[] = [];
      const result = await seedDemoDataOn(pooled, (await ensureSandbox(pooled, 'prod')).id, {
        ...SEED,
        onProgress: (done) => progress.push(done),
      });
      expect(result.events).toBe(expected.events);
      expect(progress.at(-1)).toBe(250);
      const stored = await storedDemo(pooled);
      expect(stored.profiles).toHaveLength(250);
      expect(stored.events).toHaveLength(expected.events);
      expect(stored).toEqual(await storedDemo(reference));
    } finally {
      reference.close();
      pooled.close();
    }
  });
});

describeOnPostgres('demo data on PostgreSQL', 'demo_data', (pg) => {
  it('seeds the store the synchronous seed writes on SQLite', async () => {
    const reference = openDatabase(':memory:');
    try {
      const expected = seedDemoData(reference, (await ensureSandbox(reference, 'prod')).id, SEED);
      const result = await seedDemoDataOn(pg.conn, (await ensureSandbox(pg.conn, 'prod')).id, SEED);
      expect(result.events).toBe(expected.events);
      expect(await storedDemo(pg.conn)).toEqual(await storedDemo(reference));
    } finally {
      reference.close();
    }
  });
});
