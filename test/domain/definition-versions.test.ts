import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { actorName, definitionVersionAt, listDefinitionVersions } from '../../src/domain/definition-versions.js';
import {
  createSegmentDefinition,
  deleteSegmentDefinition,
  updateSegmentDefinition,
} from '../../src/domain/definitions.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';

describe('definition versions', () => {
  it('names the key that made a change, keeps a version per expression or settings change only, and goes with the definition', async () => {
    const conn = openDatabase(':memory:');
    const { id: sandboxId } = await ensureSandbox(conn, 'prod');
    conn.sqlite
      .prepare(
        "INSERT INTO api_keys (id, name, prefix, key_hash, scopes, created_at) VALUES (7, 'ops', 'segql_ab', 'h', '[\"write\"]', 0)",
      )
      .run();
    expect(await actorName(conn, 7)).toBe('ops');
    expect(await actorName(conn, null)).toBe('open');

    const def = await createSegmentDefinition(
      conn,
      sandboxId,
      { name: 'Gold', expression: { format: 'PQL_TEXT', value: 'loyalty.tier = "gold"' }, changedBy: 'ops' },
      1_000,
    );
    // A rename keeps no version; a settings change and an expression change do.
    await updateSegmentDefinition(conn, sandboxId, def.id, { name: 'Gold tier', changedBy: 'ops' }, 1, 2_000);
    await updateSegmentDefinition(
      conn,
      sandboxId,
      def.id,
      { evaluationInfo: { streaming: true }, changedBy: 'app' },
      2,
      3_000,
    );
    await updateSegmentDefinition(
      conn,
      sandboxId,
      def.id,
      { expression: { format: 'PQL_TEXT', value: 'loyalty.tier in ["gold", "platinum"]' } },
      3,
      4_000,
    );
    const page = await listDefinitionVersions(conn, sandboxId, def.id, { first: 10 });
    expect(page.items.map((v) => [v.version, v.changedBy, v.changedAt, v.evaluationInfo.streaming])).toEqual([
      [4, 'open', 4_000, true],
      [3, 'app', 3_000, true],
      [1, 'ops', 1_000, false],
    ]);
    // Only the settings moved in version 3: the PQL diff has no changed lines.
    expect(page.items[1]!.diff.split('\n').filter((l) => /^[-+][^-+]/.test(l))).toEqual([]);
    expect(page.items[0]!.diff).toContain('+loyalty.tier in ["gold", "platinum"]');
    // The version in force at a definition version that kept none (2, the rename) is the one before.
    expect((await definitionVersionAt(conn, sandboxId, def.id, { version: 2 }))?.version).toBe(1);
    expect((await definitionVersionAt(conn, sandboxId, def.id, { at: 3_500 }))?.version).toBe(3);
    expect((await definitionVersionAt(conn, sandboxId, def.id, { at: 10 }))?.version).toBe(1);

    await deleteSegmentDefinition(conn, sandboxId, def.id);
    expect(conn.sqlite.prepare('SELECT count(*) FROM definition_versions').pluck().get()).toBe(0);
    conn.close();
  });
});
