import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { openSampler } from '../../src/domain/previews/preview-samplers.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';

/** A store whose sandboxes' profile ids interleave (every `sandboxes`-th id belongs to one sandbox). */
async function interleaved(sandboxes: number, perSandbox: number) {
  const conn = openDatabase(':memory:');
  const ids: number[] = [];
  for (let k = 0; k < sandboxes; k++) ids.push((await ensureSandbox(conn, `s${k}`)).id);
  for (let i = 0; i < perSandbox; i++) {
    for (const [k, sandboxId] of ids.entries()) {
      ingestProfiles(conn, sandboxId, [
        { identities: [{ namespace: 'e', id: `${k}-${i}` }], attributes: { loyalty: { points: i } } },
      ]);
    }
  }
  return { conn, sandboxId: ids[0]! };
}

// Qualifies when points is even: half the profiles.
const EVEN = { sql: "coalesce((json_extract(p.attributes, '$.loyalty.points') % 2) = 0, 0)", params: [] };

describe('preview samplers', () => {
  for (const [label, sandboxes] of [
    ['dense ids (permuting the id range)', 2],
    ['sparse ids (numbering the profiles)', 3],
  ] as const) {
    it(`reads every profile of the sandbox exactly once, in seeded random order: ${label}`, async () => {
      const { conn, sandboxId } = await interleaved(sandboxes, 300);
      const mine = new Set(
        conn.sqlite.prepare('SELECT id FROM profiles WHERE sandbox_id = ?').pluck().all(sandboxId) as number[],
      );
      const order = (seed: number) => {
        conn.sqlite.exec('BEGIN');
        const sampler = openSampler(conn, sandboxId, seed, EVEN);
        expect(sampler.population).toBe(300);
        let read = 0;
        const hits: number[] = [];
        for (const size of [7, 50, 100, 1000]) {
          const chunk = sampler.next(size);
          read += chunk.read;
          hits.push(...chunk.hits);
        }
        sampler.close();
        conn.sqlite.exec('COMMIT');
        return { read, hits };
      };
      const a = order(1);
      expect(a.read).toBe(300);
      expect(a.hits.every((id) => mine.has(id))).toBe(true);
      expect(new Set(a.hits).size).toBe(150);
      expect(order(1).hits).toEqual(a.hits);
      expect(order(2).hits).not.toEqual(a.hits);
      expect([...a.hits].sort((x, y) => x - y)).not.toEqual(a.hits);
      conn.close();
    });
  }
});
