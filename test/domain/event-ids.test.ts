import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { timeOrderedId } from '../../src/domain/event-ids.js';
import { ingestEvents } from '../../src/domain/event-ingest.js';
import { DEFAULT_SANDBOX, ensureSandbox } from '../../src/domain/sandboxes.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('ids of events sent without one', () => {
  it('are UUIDs of version 7 that carry their instant and sort by it', () => {
    const at = Date.parse('2026-12-07T07:30:00.123Z');
    const id = timeOrderedId(at);
    expect(id).toMatch(V7);
    // The first 48 bits are the time in milliseconds.
    expect(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(at);
    const ids = Array.from({ length: 1000 }, (_, i) => timeOrderedId(at + Math.floor(i / 10)));
    expect(new Set(ids).size).toBe(1000);
    // Later instants sort after earlier ones (as text, as the index keeps them).
    const firsts = ids.filter((_, i) => i % 10 === 0);
    expect([...firsts].sort()).toEqual(firsts);
    expect(timeOrderedId(at + 1) > timeOrderedId(at)).toBe(true);
  });

  it('land at the end of the event-id index, not on a page of their own each', async () => {
    const conn = openDatabase(':memory:');
    try {
      const sandboxId = (await ensureSandbox(conn, DEFAULT_SANDBOX)).id;
      const events = (n: number) =>
        Array.from({ length: n }, (_, i) => ({
          identity: { namespace: 'email', id: `p${i % 50}@x` },
          eventType: 'web.pageViews',
          timestamp: '2026-12-07T07:30:00Z',
        }));
      const first = ingestEvents(conn, sandboxId, events(300));
      // Ids are stamped with the clock when prepared: the second request in a later millisecond.
      await new Promise((r) => setTimeout(r, 3));
      const second = ingestEvents(conn, sandboxId, events(300));
      expect([first.accepted, second.accepted]).toEqual([300, 300]);
      const rows = conn.sqlite.prepare('SELECT id, event_id AS eventId FROM events ORDER BY id').all() as {
        id: number;
        eventId: string;
      }[];
      expect(rows).toHaveLength(600);
      for (const row of rows) expect(row.eventId).toMatch(V7);
      // Every id of the second request sorts after every id of the first.
      const [a, b] = [rows.slice(0, 300).map((r) => r.eventId), rows.slice(300).map((r) => r.eventId)];
      expect([...b].sort()[0]! > [...a].sort().at(-1)!).toBe(true);
    } finally {
      conn.close();
    }
  });
});
