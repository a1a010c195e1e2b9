/**
 * audiencesByIds (src/domain/audiences.ts), what every request's audience loader runs: the
 * sandbox's audiences among the ids asked for, found by id rather than by walking the sandbox.
 */
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { madeStatements } from '../../src/db/statement.js';
import { audiencesByIds, createManualAudience } from '../../src/domain/audiences.js';
import { DEFAULT_SANDBOX, ensureSandbox } from '../../src/domain/sandboxes.js';

const conn = openDatabase(':memory:');
const sandboxId = (await ensureSandbox(conn, DEFAULT_SANDBOX)).id;
const other = (await ensureSandbox(conn, 'other')).id;
const mine: number[] = [];
const theirs: number[] = [];
for (let i = 0; i < 40; i++) {
  mine.push((await createManualAudience(conn, sandboxId, { name: `mine ${i}` }, 1_000)).id);
  theirs.push((await createManualAudience(conn, other, { name: `theirs ${i}` }, 1_000)).id);
}

describe('audiencesByIds', () => {
  it("gives the sandbox's audiences among the ids, and nothing of another sandbox or unknown", async () => {
    const asked = [mine[3]!, theirs[3]!, mine[17]!, 999_999, mine[39]!];
    const found = await audiencesByIds(conn, sandboxId, asked);
    expect([...found.keys()].sort((a, b) => a - b)).toEqual([mine[3], mine[17], mine[39]]);
    expect(found.get(mine[17]!)).toMatchObject({ id: mine[17], sandboxId, name: 'mine 17' });
    expect((await audiencesByIds(conn, other, asked)).size).toBe(1);
  });

  it('looks the ids up by primary key instead of walking the sandbox', () => {
    const statement = madeStatements().find((s) => s.name === 'audiences.byIds')!;
    const plan = conn.sqlite
      .prepare(`EXPLAIN QUERY PLAN ${statement.sqlite}`)
      .all(sandboxId, JSON.stringify(mine.slice(0, 3)))
      .map((row) => (row as { detail: string }).detail);
    expect(plan.find((d) => d.includes(' audiences '))).toMatch(/SEARCH audiences USING INTEGER PRIMARY KEY/);
  });
});
