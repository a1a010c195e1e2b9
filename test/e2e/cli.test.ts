import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { segqlArgs } from '../segql-command.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
const dirs: string[] = [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'segql-cli-'));
  dirs.push(dir);
  return dir;
}

/** Runs a program to its end as its own process; never rejects, the exit code is part of the result. */
function run(file: string, args: string[], dataDir: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        cwd: root,
        env: { ...process.env, SEGQL_DATA_DIR: dataDir, SEGQL_DEMO_PROFILES: '0', PORT: '0', ...env },
        // Generous: five tsx start-ups at once on a loaded 2-core machine have taken over 20 s.
        timeout: 90_000,
      },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? -1) : 0;
        resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
      },
    );
  });
}

const segql = (args: string[], dataDir = freshDir(), env: Record<string, string> = {}) =>
  run(process.execPath, segqlArgs(...args), dataDir, env);

/** One line on stderr, nothing on stdout, exit 2, and no stack trace. */
function expectUsageError(result: Run, mentions: RegExp): void {
  expect(result.code).toBe(2);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(/^[^\n]+\n$/);
  expect(result.stderr).toMatch(mentions);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('segql help and version', { timeout: 200_000 }, () => {
  it('prints usage on stdout and exits 0 for --help, -h and help', async () => {
    const [long, short, word] = await Promise.all([segql(['--help']), segql(['-h']), segql(['help'])]);
    for (const result of [long, short, word]) {
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.stdout).toMatch(/^usage: segql <command>/);
      for (const command of ['serve', 'migrate', 'seed', 'keys']) expect(result.stdout).toContain(`  ${command} `);
    }
    expect(short.stdout).toBe(long.stdout);
    expect(word.stdout).toBe(long.stdout);
  });

  it("prints a command's usage for `<command> --help` and `help <command>` without touching the data directory", async () => {
    const dataDir = freshDir();
    const results = await Promise.all([
      segql(['serve', '--help'], dataDir),
      segql(['migrate', '--help'], dataDir),
      segql(['seed', '--help'], dataDir),
      segql(['keys', 'create', '-h'], dataDir),
      segql(['help', 'seed'], dataDir),
    ]);
    const [serve, migrate, seed, keys, helpSeed] = results;
    for (const result of results) {
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
    }
    expect(serve!.stdout).toMatch(/^usage: segql serve\n/);
    expect(migrate!.stdout).toMatch(/^usage: segql migrate \[--from-sqlite FILE\]\n/);
    expect(seed!.stdout).toMatch(/^usage: segql seed \[--profiles N\]/);
    expect(keys!.stdout).toMatch(/^usage: segql keys create --name NAME/);
    expect(helpSeed!.stdout).toBe(seed!.stdout);
    // No server was started, nothing migrated or seeded: the directory is as it was made.
    expect(readdirSync(dataDir)).toEqual([]);
  });

  it('prints the version from package.json', async () => {
    const result = await segql(['--version']);
    expect(result).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    expect((await segql(['-v'])).stdout).toBe(`${version}\n`);
  });
});

describe('segql usage errors', { timeout: 200_000 }, () => {
  it('refuses a bad number before seeding anything', async () => {
    const dataDir = freshDir();
    const result = await segql(['seed', '--profiles', 'abc'], dataDir);
    expectUsageError(result, /^segql seed: --profiles must be a non-negative integer, got "abc"\n$/);
    expect(existsSync(join(dataDir, 'segql.db'))).toBe(false);
    expectUsageError(await segql(['seed', '--seed', '1e3']), /--seed must be a non-negative integer, got "1e3"/);
  });

  it('refuses unknown flags, commands and actions with exit 2', async () => {
    const dataDir = freshDir();
    const [flag, serveFlag, command, action, missing] = await Promise.all([
      segql(['seed', '--bogus'], dataDir),
      segql(['serve', '--port', '4000'], dataDir),
      segql(['frobnicate'], dataDir),
      segql(['keys', 'rotate'], dataDir),
      segql(['--nope'], dataDir),
    ]);
    expectUsageError(flag, /^segql seed: Unknown option '--bogus' \(see segql seed --help\)\n$/);
    expectUsageError(serveFlag, /^segql serve: Unknown option '--port'/);
    expectUsageError(command, /^segql: unknown command "frobnicate"/);
    expectUsageError(action, /^segql keys: unknown action "rotate"/);
    expectUsageError(missing, /^segql: unknown option "--nope"/);
    // `serve --port` did not start a server on the side.
    expect(existsSync(join(dataDir, 'segql.db'))).toBe(false);
  });

  it('refuses a bad environment variable in one line', async () => {
    expectUsageError(
      await segql(['migrate'], freshDir(), { PORT: 'abc' }),
      /^segql: PORT must be an integer from 0 to 65535, got "abc"\n$/,
    );
  });

  it('serves, seeds and imports on SEGQL_DATABASE_URL or fails on it, never on SQLite instead, and refuses a URL that is not PostgreSQL', async () => {
    const dataDir = freshDir();
    const pg = { SEGQL_DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' };
    const [serve, seed, importList, mysql] = await Promise.all([
      segql(['serve'], dataDir, pg),
      segql(['seed', '--profiles', '1'], dataDir, pg),
      segql(['import', '--audience', 'a', '--file', 'x.csv'], dataDir, pg),
      segql(['migrate'], dataDir, { SEGQL_DATABASE_URL: 'mysql://db/segql' }),
    ]);
    // Each tries the database it was given (nobody listens on port 1) and exits 1.
    for (const tried of [serve, seed]) {
      expect(tried.code).toBe(1);
      expect(tried.stdout + tried.stderr).toMatch(/ECONNREFUSED/);
    }
    // import checks its file before it connects.
    expectUsageError(importList, /^segql import: no file at x\.csv/);
    expectUsageError(mysql, /^segql: SEGQL_DATABASE_URL must start with postgres:\/\/ or postgresql:\/\//);
    // Nothing fell back to SQLite.
    expect(existsSync(join(dataDir, 'segql.db'))).toBe(false);
  });

  it('refuses the PostgreSQL-only commands without SEGQL_DATABASE_URL', async () => {
    const dataDir = freshDir();
    const [work, segment, copy, cancel] = await Promise.all([
      segql(['work'], dataDir),
      segql(['segment', '--all'], dataDir),
      segql(['migrate', '--from-sqlite', join(dataDir, 'segql.db')], dataDir),
      segql(['cancel', '12'], dataDir),
    ]);
    expectUsageError(work, /^segql work: set SEGQL_DATABASE_URL=postgres:\/\/… \(a cluster shares one PostgreSQL\)\n$/);
    expectUsageError(
      segment,
      /^segql segment: set SEGQL_DATABASE_URL=postgres:\/\/… \(on SQLite, use the createSegmentJob mutation\)\n$/,
    );
    expectUsageError(copy, /^segql migrate: --from-sqlite copies into PostgreSQL; set SEGQL_DATABASE_URL/);
    expectUsageError(
      cancel,
      /^segql cancel: set SEGQL_DATABASE_URL=postgres:\/\/… \(on SQLite, use the cancelSegmentJob or cancelExportJob mutation\)\n$/,
    );
    expect(existsSync(join(dataDir, 'segql.db'))).toBe(false);
  });
});

describe('segql keys', { timeout: 200_000 }, () => {
  it('refuses a key for a sandbox that does not exist, and creates none', async () => {
    const dataDir = freshDir();
    const refused = await segql(['keys', 'create', '--name', 'typo', '--sandbox', 'prdo'], dataDir);
    expectUsageError(refused, /^segql keys create: Sandbox "prdo" does not exist/);
    const listed = await segql(['keys', 'list'], dataDir);
    expect(listed).toEqual({ code: 0, stdout: 'ID\tPREFIX\tNAME\tSCOPES\tSANDBOXES\tSTATE\n', stderr: '' });
  });

  it('prints only the key on stdout through `npm run -s segql`, so $(…) captures it', async () => {
    const dataDir = freshDir();
    // The default log level, as a person would run it: no log line may reach stdout.
    const env = { SEGQL_LOG_LEVEL: 'info' };
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const created = await run(
      npm,
      ['run', '-s', 'segql', '--', 'keys', 'create', '--name', 'app', '--scope', 'read,write'],
      dataDir,
      env,
    );
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^segql_[A-Za-z0-9_-]{43}\n$/);
    expect(created.stderr).toMatch(/API key 1 "app" \(read, write\) for prod\. It is shown only now/);
    const listed = await segql(['keys', 'list'], dataDir, env);
    expect(listed.code).toBe(0);
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines).toEqual([
      'ID\tPREFIX\tNAME\tSCOPES\tSANDBOXES\tSTATE',
      `1\t${created.stdout.slice(0, 12)}…\tapp\tread,write\tprod\tactive`,
    ]);
    expectUsageError(await segql(['keys', 'revoke'], dataDir), /^segql keys revoke: give one key id or prefix/);
  });
});
