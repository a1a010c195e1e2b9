/**
 * Statements by name (src/db/statement.ts): every statement the domain has written for both
 * databases prepares against each migrated schema, and the two texts of a statement give the
 * same rows for the same parameters. The PostgreSQL half runs when SEGQL_TEST_DATABASE_URL names
 * a server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import { madeStatements, type Statement } from '../../src/db/statement.js';
import { freshPgDatabase, type PgTestDatabase, pgAdminUrl } from './pg-test-database.js';

const domain = fileURLToPath(new URL('../../src/domain', import.meta.url));

/** Loads every domain module that makes statements (only those: others start threads on import). */
async function loadStatements(): Promise<readonly Statement[]> {
  const files = readdirSync(domain, { recursive: true })
    .map(String)
    .filter(
      (f) =>
        f.endsWith('.ts') && readFileSync(join(domain, f), 'utf8').match(/from '(\.\.\/)+db\/statement\.js'/) !== null,
    );
  for (const f of files) await import(pathToFileURL(join(domain, f)).href);
  return madeStatements();
}

describe('statements by name on SQLite', () => {
  it('prepares every SQLite text against the migrated schema', async () => {
    const list = await loadStatements();
    expect(list.map((s) => s.name)).toContain('folders.byIds');
    const conn = openDatabase(':memory:');
    try {
      for (const s of list) expect(() => conn.sqlite.prepare(s.sqlite), s.name).not.toThrow();
    } finally {
      conn.close();
    }
  });
});

describe.runIf(pgAdminUrl === undefined)('statements by name on PostgreSQL', () => {
  it.skip('skipped: set SEGQL_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to prepare the PostgreSQL texts', () => {});
});

describe.runIf(pgAdminUrl !== undefined)('statements by name on PostgreSQL', () => {
  let pg: PgTestDatabase;
  beforeAll(async () => {
    pg = await freshPgDatabase('statements');
  });
  afterAll(async () => {
    await pg?.drop();
  });

  it('prepares every PostgreSQL text against the migrated schema', async () => {
    const list = await loadStatements();
    const client = await pg.conn.pool.connect();
    try {
      for (const [i, s] of list.entries()) {
        await expect(client.query(`PREPARE segql_check_${i} AS ${s.postgres}`), s.name).resolves.toBeDefined();
        await client.query(`DEALLOCATE segql_check_${i}`);
      }
    } finally {
      client.release();
    }
  });

  it('gives the same rows from both texts of the folders statements', async () => {
    const list = await loadStatements();
    const byName = new Map(list.map((s) => [s.name, s]));
    const q = (name: string) => byName.get(`folders.${name}`)!;
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const sandbox = [1, 'prod', 0];
      sqlite.sqlite.prepare('INSERT INTO sandboxes (id, name, created_at) VALUES (?, ?, ?)').run(...sandbox);
      await pg.conn.pool.query('INSERT INTO sandboxes (id, name, created_at) VALUES ($1, $2, $3)', sandbox);
      for (const runner of [sqlite, postgres]) {
        const root = await runner.get<{ id: number }>(q('insert'), [1, 'Marketing', null, 1_000]);
        await runner.get(q('insert'), [1, 'Nordics', root!.id, 2_000]);
      }
      for (const [name, params] of [
        ['ofSandbox', [1]],
        ['byIds', [1, JSON.stringify([1, 2, 3])]],
        ['byIds', [1, '[]']],
      ] as const) {
        const rows = await sqlite.all(q(name), params);
        expect(await postgres.all(q(name), params), name).toEqual(rows);
      }
      expect(await sqlite.all(q('ofSandbox'), [1])).toEqual([
        { id: 1, sandboxId: 1, name: 'Marketing', parentId: null, createdAt: 1_000 },
        { id: 2, sandboxId: 1, name: 'Nordics', parentId: 1, createdAt: 2_000 },
      ]);
    } finally {
      sqlite.close();
    }
  });
});
