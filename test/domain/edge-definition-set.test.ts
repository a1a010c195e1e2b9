import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Connection, openDatabase } from '../../src/db/index.js';
import {
  createSegmentDefinition,
  deleteSegmentDefinition,
  updateSegmentDefinition,
} from '../../src/domain/definitions.js';
import { evaluateProfile } from '../../src/domain/evaluation.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';

const NOW = Date.parse('2026-11-28T12:00:00Z');
const ann = { namespace: 'email', id: 'ann@x.se' };
const dir = mkdtempSync(join(tmpdir(), 'segql-edge-set-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function edge(conn: Connection, sandboxId: number, name: string, value: string) {
  return createSegmentDefinition(conn, sandboxId, {
    name,
    expression: { format: 'PQL_TEXT', value },
    evaluationInfo: { batch: true, streaming: false, edge: true },
    lifecycleState: 'PUBLISHED',
  });
}

const qualifying = (conn: Connection, sandboxId: number) =>
  evaluateProfile(conn, sandboxId, ann, { at: NOW }).audienceIds.sort((a, b) => a - b);

describe("a sandbox's edge definitions, kept per connection", () => {
  // The writer is one connection and the reader another, as the main thread and a query thread
  // are: the reader learns of the writer's commits only through the file.
  const file = join(dir, 'segql.db');
  const writer = openDatabase(file);
  const reader = openDatabase(file);
  afterAll(() => {
    reader.close();
    writer.close();
  });

  it('runs an edited expression, drops a deleted or paused definition, and keeps sandboxes apart', async () => {
    const prod = (await ensureSandbox(writer, 'prod')).id;
    const test = (await ensureSandbox(writer, 'test')).id;
    for (const sandboxId of [prod, test]) {
      ingestProfiles(writer, sandboxId, [
        { identities: [ann], attributes: { loyalty: { tier: 'gold', points: 900 } } },
      ]);
    }
    const gold = await edge(writer, prod, 'gold', 'loyalty.tier = "gold"');
    const rich = await edge(writer, prod, 'rich', 'loyalty.points > 5000');
    const many = await edge(writer, prod, 'many', 'loyalty.points > 100');
    expect(qualifying(reader, prod)).toEqual([gold.audienceId, many.audienceId]);
    expect(qualifying(reader, test)).toEqual([]);
    expect(reader.cache.names()).toContain('edge definition sets');

    await updateSegmentDefinition(writer, prod, rich.id, {
      expression: { format: 'PQL_TEXT', value: 'loyalty.points > 500' },
    });
    expect(qualifying(reader, prod)).toEqual([gold.audienceId, rich.audienceId, many.audienceId]);

    await deleteSegmentDefinition(writer, prod, gold.id);
    expect(qualifying(reader, prod)).toEqual([rich.audienceId, many.audienceId]);

    await updateSegmentDefinition(writer, prod, many.id, { lifecycleState: 'INACTIVE' });
    expect(qualifying(reader, prod)).toEqual([rich.audienceId]);
    await updateSegmentDefinition(writer, prod, rich.id, {
      evaluationInfo: { batch: true, streaming: false, edge: false },
    });
    expect(qualifying(reader, prod)).toEqual([]);

    const there = await edge(writer, test, 'gold there', 'loyalty.tier = "gold"');
    expect(qualifying(reader, test)).toEqual([there.audienceId]);
    expect(qualifying(reader, prod)).toEqual([]);
  });

  it("sees the connection's own writes as well", async () => {
    const own = (await ensureSandbox(reader, 'own')).id;
    ingestProfiles(reader, own, [{ identities: [ann], attributes: { loyalty: { points: 10 } } }]);
    const low = await edge(reader, own, 'low', 'loyalty.points < 50');
    expect(qualifying(reader, own)).toEqual([low.audienceId]);
    await updateSegmentDefinition(reader, own, low.id, {
      expression: { format: 'PQL_TEXT', value: 'loyalty.points < 5' },
    });
    expect(qualifying(reader, own)).toEqual([]);
  });
});
