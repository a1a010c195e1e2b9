import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { seedDemoData } from '../../src/domain/demo-data.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';

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
