import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseFile } from '../../src/config.js';
import { openDatabase } from '../../src/db/index.js';
import { createExternalAudience } from '../../src/domain/external-audiences/external-audiences.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { segqlArgs } from '../segql-command.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'segql-cli-import-'));
let audienceId = 0;

function segql(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      segqlArgs(...args),
      { cwd: root, env: { ...process.env, SEGQL_DATA_DIR: dataDir }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? -1) : 0;
        resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
      },
    );
  });
}

beforeAll(async () => {
  const conn = openDatabase(databaseFile(dataDir));
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  ingestProfiles(conn, sandboxId, [
    { identities: [{ namespace: 'email', id: 'a@x.com' }], attributes: {} },
    { identities: [{ namespace: 'email', id: 'b@x.com' }], attributes: {} },
  ]);
  audienceId = (
    await createExternalAudience(conn, sandboxId, {
      name: 'Newsletter',
      namespace: 'crm',
      externalId: 'nl-2026',
      fields: [
        { name: 'email', type: 'STRING', identityNamespace: 'email' },
        { name: 'points', type: 'NUMBER', identityNamespace: null },
      ],
    })
  ).audienceId;
  conn.close();
  writeFileSync(join(dataDir, 'list.csv'), 'email,points\na@x.com,1\nb@x.com,two\nc@x.com,3\n');
  writeFileSync(join(dataDir, 'more.csv'), 'email,points\nb@x.com,2\n');
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('segql import', () => {
  it('runs a list into the audience, with progress lines and the bad rows on stderr', async () => {
    const r = await segql(['import', '--audience', 'nl-2026', '--file', join(dataDir, 'list.csv')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('3 rows read, 2 imported, 1 matched a profile, 1 failed\n');
    expect(r.stderr).toContain('line 3: "two" in column "points" is not a NUMBER\n');
    expect(r.stderr).toMatch(/^importing: \d+\/\d+ bytes, 3 rows, 1 failed$/m);
    const appended = await segql([
      'import',
      '--audience',
      'Newsletter',
      '--file',
      join(dataDir, 'more.csv'),
      '--mode',
      'append',
    ]);
    expect(appended.stdout).toBe('1 rows read, 1 imported, 1 matched a profile, 0 failed\n');
    const conn = openDatabase(databaseFile(dataDir));
    const members = conn.sqlite
      .prepare(
        `SELECT i.value AS email, m.status, m.payload FROM memberships m JOIN identities i ON i.profile_id = m.profile_id
         WHERE m.audience_id = ? ORDER BY i.value`,
      )
      .all(audienceId);
    conn.close();
    expect(members).toEqual([
      { email: 'a@x.com', status: 'REALIZED', payload: '{"points":1}' },
      { email: 'b@x.com', status: 'REALIZED', payload: '{"points":2}' },
    ]);
  });

  it('refuses bad usage with one line and exit 2', async () => {
    const cases: [string[], string][] = [
      [['import', '--file', 'x.csv'], 'segql import: --audience is required (see segql import --help)\n'],
      [['import', '--audience', 'nl-2026'], 'segql import: --file is required (see segql import --help)\n'],
      [
        ['import', '--audience', 'nl-2026', '--file', join(dataDir, 'list.csv'), '--mode', 'merge'],
        'segql import: --mode must be replace or append, got "merge"\n',
      ],
      [
        ['import', '--audience', 'nope', '--file', join(dataDir, 'list.csv')],
        'segql import: No external audience has the externalId or name "nope"\n',
      ],
    ];
    const results = await Promise.all(cases.map(([args]) => segql(args)));
    for (const [i, [args, message]] of cases.entries()) {
      const r = results[i]!;
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toBe(message);
      expect(r.stdout).toBe('');
    }
    const unknown = await segql(['import', '--audiences', 'x']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^segql import: Unknown option '--audiences' \(see segql import --help\)\n$/);
  });
});
