/**
 * The command line on PostgreSQL (src/cli.ts): two `segql serve` nodes started together on an
 * empty database seed its "prod" sandbox once between them (SEGQL_DEMO_PROFILES); `segql seed`
 * writes demo data into a sandbox of the cluster; `segql import` stages a list under the data
 * directory the nodes share, queues the run and reports it once a node has run it, bad rows by
 * line. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPgDatabase, type PgTestDatabase, pgAdminUrl } from '../db/pg-test-database.js';
import { segqlArgs } from '../segql-command.js';
import { killSpawned, type ServerProcess, spawnServer } from './process.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

function segql(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      segqlArgs(...args),
      { cwd: root, env: { ...process.env, SEGQL_DEMO_PROFILES: '0', ...env }, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? -1) : 0;
        resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
      },
    );
  });
}

async function gql<T>(server: ServerProcess, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: T; errors?: unknown };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data!;
}

describe.runIf(pgAdminUrl === undefined)('the command line on PostgreSQL', () => {
  it.skip('skipped: set SEGQL_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)', () => {});
});

describe.runIf(pgAdminUrl !== undefined)('the command line on PostgreSQL', { timeout: 240_000 }, () => {
  let db: PgTestDatabase | undefined;
  // Made in beforeAll: a suite that does not run still has its body run to collect its tests.
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'segql-cli-pg-'));
  });
  afterAll(async () => {
    killSpawned();
    await db?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('seeds an empty cluster once, seeds a sandbox on demand, and imports a list through the nodes', async () => {
    db = await freshPgDatabase('cli_postgres');
    const env = { SEGQL_DATABASE_URL: db.url, SEGQL_DATA_DIR: dataDir };
    const count = async (sql: string, params: unknown[] = []) =>
      Number((await db!.conn.pool.query<{ n: string }>(sql, params)).rows[0]!.n);

    // Two nodes at once on an empty database: one seeds while the other waits, then finds it seeded.
    const [node1] = await Promise.all([
      spawnServer(dataDir, { ...env, SEGQL_DEMO_PROFILES: '40' }),
      spawnServer(dataDir, { ...env, SEGQL_DEMO_PROFILES: '40' }),
    ]);
    const prodProfiles = `SELECT count(*) AS n FROM profiles p JOIN sandboxes s ON s.id = p.sandbox_id WHERE s.name = $1`;
    expect(await count(prodProfiles, ['prod'])).toBe(40);
    expect(await count('SELECT count(*) AS n FROM events')).toBeGreaterThan(40);

    const seeded = await segql(['seed', '--profiles', '12', '--events-per-profile', '2', '--sandbox', 'dev'], env);
    expect(seeded.code).toBe(0);
    expect(await count(prodProfiles, ['dev'])).toBe(12);
    expect(await count(prodProfiles, ['prod'])).toBe(40);

    await gql(
      node1!,
      `mutation ($input: CreateExternalAudienceInput!) { createExternalAudience(input: $input) { id } }`,
      {
        input: {
          name: 'crm list',
          namespace: 'crm',
          fields: [
            { name: 'email', type: 'STRING', identityNamespace: 'email' },
            { name: 'points', type: 'NUMBER' },
          ],
        },
      },
    );
    const list = join(dataDir, 'list.csv');
    // Two demo profiles, one address no profile has yet, and a bad number on line 5.
    writeFileSync(
      list,
      'email,points\nuser1@example.com,5\nuser2@example.com,7\nnew@example.com,1\nuser3@example.com,x\n',
    );
    const imported = await segql(['import', '--audience', 'crm list', '--file', list], env);
    expect(imported.stderr).toMatch(/^run \S+ \(\d+\) queued for the nodes$/m);
    expect(imported.stderr).toMatch(/^line 5: .+$/m);
    expect(imported.stdout).toBe('4 rows read, 3 imported, 2 matched a profile, 1 failed\n');
    expect(imported.code).toBe(0);
    const members = await db.conn.pool.query<{ email: string; points: number }>(
      `SELECT i.value AS email, CAST(m.payload ->> 'points' AS integer) AS points FROM memberships m
       JOIN audiences a ON a.id = m.audience_id JOIN identities i ON i.profile_id = m.profile_id
       WHERE a.name = 'crm list' AND m.status = 'REALIZED' AND i.namespace = 'email' ORDER BY i.value`,
    );
    expect(members.rows).toEqual([
      { email: 'user1@example.com', points: 5 },
      { email: 'user2@example.com', points: 7 },
    ]);

    // An audience the cluster does not have is a usage error, as on SQLite.
    const unknown = await segql(['import', '--audience', 'nope', '--file', list], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/No external audience has the externalId or name "nope"/);
  });
});
