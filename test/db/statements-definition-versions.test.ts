/**
 * The definition-versions statements (src/domain/definition-versions.ts): both texts give the
 * same rows, the settings as 0 or 1 on both. Runs when SEGQL_TEST_DATABASE_URL names a
 * PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/definition-versions.js';
import { describeOnPostgres, statementsOf } from './statements-harness.js';

describeOnPostgres('definition-versions statements on both databases', 'statements_definition_versions', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('definition-versions');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const key = 'INSERT INTO api_keys (id, name, prefix, key_hash, scopes, created_at)';
      const keyRow = [1, 'ops', 'sk_1', 'hash', '["write"]', 0];
      sqlite.sqlite.prepare(`${key} VALUES (?, ?, ?, ?, ?, ?)`).run(...keyRow);
      await pg.conn.pool.query(`${key} VALUES ($1, $2, $3, $4, $5, $6)`, keyRow);
      for (const runner of [sqlite, postgres]) {
        await runner.run(q('insert'), [1, 7, 1, 'PQL', 'age > 1', 'age > 1', 1, 0, 0, 1_000, 'open']);
        await runner.run(q('insert'), [1, 7, 3, 'PQL', 'age > 2', 'age > 2', 1, 1, 0, 2_000, 'ops']);
        await runner.run(q('insert'), [1, 7, 4, 'JSON', '{}', 'true', 0, 0, 1, 3_000, 'ops']);
        await runner.run(q('insert'), [2, 8, 1, 'PQL', 'true', 'true', 1, 0, 0, 1_000, 'open']);
      }
      const max = Number.MAX_SAFE_INTEGER;
      const min = Number.MIN_SAFE_INTEGER;
      for (const [name, params] of [
        ['actorName', [1]],
        ['actorName', [2]],
        ['atVersion', [1, 7, 3]],
        ['atVersion', [1, 7, 0]],
        ['atInstant', [1, 7, 2_500]],
        ['oldest', [1, 7]],
        ['oldest', [1, 8]],
        ['previous', [1, 7, 4]],
        ['pageForward', [1, 7, max, min, 21]],
        ['pageForward', [1, 7, 4, min, 2]],
        ['pageBackward', [1, 7, max, 1, 21]],
        ['count', [1, 7]],
      ] as const) {
        const rows = await sqlite.all(q(name), params);
        expect(await postgres.all(q(name), params), name).toEqual(rows);
      }
      expect(await postgres.get(q('atInstant'), [1, 7, 2_500])).toEqual({
        sandboxId: 1,
        definitionId: 7,
        version: 3,
        expressionFormat: 'PQL',
        expressionValue: 'age > 2',
        expressionText: 'age > 2',
        evalBatch: 1,
        evalStreaming: 1,
        evalEdge: 0,
        changedAt: 2_000,
        changedBy: 'ops',
      });
      expect(await sqlite.get(q('count'), [1, 7])).toEqual({ n: 3 });
      expect(await postgres.get(q('actorName'), [1])).toEqual({ name: 'ops' });
    } finally {
      sqlite.close();
    }
  });
});
