import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPgDatabase, type PgTestDatabase, pgAdminUrl } from '../db/pg-test-database.js';
import { benchEnv } from '../segql-command.js';

// Smoke test of `npm run bench -- batch --backend postgres` on a tiny data set in a fresh
// database: it loads the data once, checks the floor against the compiled PQL, prints its
// figures in the result-line format of docs/performance.md, and reports the job on N nodes
// (or says why it skipped it). The figures themselves mean nothing here.

const root = fileURLToPath(new URL('../..', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'segql-bench-pg-'));

/** `bench <name> <figure>=<value> <unit> (n=<runs>, median; min <v>, max <v>)` */
const RESULT = /^bench batch-postgres (\S+)=(-?[\d.e+-]+) (\S+) \(n=(\d+), median; min (\S+), max (\S+)\)$/;

function bench(
  url: string,
  nodes: string[],
): { code: number | null; lines: string[]; figures: Map<string, number>; output: string } {
  const args = ['--profiles', '300', '--events-per-profile', '3', '--runs', '1', '--data-dir', dataDir, ...nodes];
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'bench/run.ts', 'batch', '--backend', 'postgres', '--pg-url', url, ...args],
    { cwd: root, encoding: 'utf8', timeout: 60_000, env: benchEnv() },
  );
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  const figures = new Map<string, number>();
  for (const line of lines.filter((l) => l.startsWith('bench '))) {
    const m = RESULT.exec(line);
    expect(m, line).not.toBeNull();
    figures.set(m![1]!, Number(m![2]));
  }
  return { code: r.status, lines, figures, output: `${r.stdout}\n${r.stderr}` };
}

describe.skipIf(!pgAdminUrl)('batch --backend postgres on a tiny data set', () => {
  let db: PgTestDatabase;

  beforeAll(async () => {
    db = await freshPgDatabase('batch_postgres');
  });

  afterAll(async () => {
    await db?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('loads once, agrees with the floor on every audience, and reports its figures', () => {
    const first = bench(db.url, ['--nodes', '1,2']);
    expect(first.code, first.output).toBe(0);
    expect(
      first.lines.some((l) => l.startsWith('MISMATCH')),
      first.output,
    ).toBe(false);
    expect(first.figures.get('load-ms')).toBeGreaterThan(0);
    for (const figure of ['floor-ms', 'compiled-ms', 'compiled-ratio']) {
      expect(first.figures.get(figure), figure).toBeGreaterThan(0);
    }
    expect(first.lines.filter((l) => l.startsWith('rows batch-postgres '))).toHaveLength(27);
    expect(first.lines.filter((l) => /^phase batch-postgres \S+ floor-ms=[\d.]+ compiled-ms=/.test(l))).toHaveLength(
      27,
    );
    // The job on N nodes: timed against the floor once the cluster engine is in, skipped (once, with why) before.
    const skipped = first.lines.filter((l) => l.startsWith('SKIPPED job: '));
    if (skipped.length > 0) expect(skipped).toHaveLength(1);
    else {
      for (const n of [1, 2]) {
        for (const figure of ['job-ms', 'ratio', 'rerun-ms', 'steady-ms', 'steady-ratio']) {
          expect(first.figures.get(`${figure}.nodes-${n}`), `${figure}.nodes-${n}`).toBeGreaterThan(0);
        }
        // A first evaluation and two re-runs per node count, on the same node processes.
        expect(first.lines.filter((l) => l.startsWith(`phase batch-postgres job on ${n} node(s)`))).toHaveLength(1);
        expect(first.lines.filter((l) => l.startsWith(`phase batch-postgres re-run on ${n} node(s)`))).toHaveLength(2);
      }
    }

    // The second run reuses the database's copy of the data set (no jobs this time).
    const second = bench(db.url, []);
    expect(second.code, second.output).toBe(0);
    expect(second.figures.has('load-ms')).toBe(false);
    expect(second.figures.get('compiled-ms')).toBeGreaterThan(0);
  }, 120_000);
});
