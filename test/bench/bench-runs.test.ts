import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { benchEnv } from '../segql-command.js';

// Smoke test of the bench entry points on a tiny data set in a temporary data directory: they
// run end to end through `bench/run.ts` (as `npm run bench` does), check their own results, and
// print the result-line format of docs/performance.md. The figures themselves mean nothing here.

const root = fileURLToPath(new URL('../..', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'segql-bench-'));
const TINY = ['--profiles', '500', '--events-per-profile', '3', '--runs', '1', '--data-dir', dataDir];

/** `bench <name> <figure>=<value> <unit> (n=<runs>, median; min <v>, max <v>)` */
const RESULT = /^bench (\S+) (\S+)=(-?[\d.e+-]+|NaN|Infinity) (\S+) \(n=(\d+), median; min (\S+), max (\S+)\)$/;

function bench(name: string, extra: string[] = []): { code: number | null; lines: string[]; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', name, ...TINY, ...extra], {
    cwd: root,
    encoding: 'utf8',
    // Each takes 2–6 s alone; beside the other test projects on two busy cores the import bench
    // passed 15 s. A hung bench still fails here, before the test's own limit below.
    timeout: 80_000,
    env: benchEnv(),
  });
  return { code: r.status, lines: r.stdout.split('\n').filter((l) => l !== ''), stderr: r.stderr };
}

/** figure → value of the `bench <name> …` lines, after checking every such line against the format. */
function figures(name: string, lines: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of lines.filter((l) => l.startsWith('bench '))) {
    const m = RESULT.exec(line);
    expect(m, line).not.toBeNull();
    expect(m![1], line).toBe(name);
    out.set(m![2]!, Number(m![3]));
  }
  return out;
}

afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

describe('bench entry points on a tiny data set', { timeout: 90_000 }, () => {
  it('batch: a segment job against the floor, every set equal, all figures in the result format', () => {
    const { code, lines, stderr } = bench('batch');
    expect(code, `${lines.join('\n')}\n${stderr}`).toBe(0);
    expect(lines.some((l) => l.startsWith('MISMATCH'))).toBe(false);
    const f = figures('batch', lines);
    for (const figure of [
      'job-ms',
      'floor-ms',
      'ratio',
      'evals-per-s-per-core',
      'eval-ms',
      'eval-ratio',
      'write-ms',
      'steady-ms',
      'steady-ratio',
    ]) {
      expect(f.get(figure), figure).toBeGreaterThan(0);
    }
    // The scratch copy is deleted; only the cached data set and its sidecar stay.
    expect(readdirSync(dataDir).filter((f) => f.includes('.work.db'))).toEqual([]);
  });

  it('estimate: previews of every definition, exact at full sample, and a coverage count', () => {
    const { code, lines, stderr } = bench('estimate', ['--trials', '10', '--sample', '100']);
    expect(code, `${lines.join('\n')}\n${stderr}`).toBe(0);
    expect(lines.some((l) => l.startsWith('MISMATCH'))).toBe(false);
    const f = figures('estimate', lines);
    for (const name of ['nordics', 'buyers-30d', 'view-add-buy', 'vip-mix', 'tier-weighted-points']) {
      for (const figure of ['first-2pct-ms', 'full-ratio', 'full-ms', 'floor-ms']) {
        expect(f.get(`${figure}.${name}`), `${figure}.${name}`).toBeGreaterThan(0);
      }
    }
    expect(f.get('full-ratio')).toBeGreaterThan(0);
    const coverage = lines.find((l) => l.startsWith('bench estimate coverage='));
    expect(coverage).toMatch(/^bench estimate coverage=(\d+) \/10 \(n=10, /);
    // A 95 % interval misses 10 times out of 10 only if the interval is broken.
    expect(f.get('coverage')).toBeGreaterThanOrEqual(5);
  });

  it('export: an export against its floor, the same rows, and memory figures', () => {
    const { code, lines, stderr } = bench('export', ['--format', 'CSV']);
    expect(code, `${lines.join('\n')}\n${stderr}`).toBe(0);
    expect(lines.some((l) => l.startsWith('MISMATCH'))).toBe(false);
    expect(lines).toContain('rows export=500 small=100 format=CSV');
    const f = figures('export', lines);
    for (const figure of ['export-ms', 'rows-per-s', 'floor-ms', 'ratio'])
      expect(f.get(figure), figure).toBeGreaterThan(0);
    expect(f.has('rss-growth-mb')).toBe(true);
    expect(readdirSync(dataDir).filter((f) => f.includes('.work.db') || f.startsWith('export-'))).toEqual([]);
  });

  it('explain dryrun: a dry run of every definition against its floor, counts equal to SQL', () => {
    const { code, lines, stderr } = bench('explain', ['--parts', 'dryrun', '--dryrun-runs', '1']);
    expect(code, `${lines.join('\n')}\n${stderr}`).toBe(0);
    expect(lines.some((l) => l.startsWith('MISMATCH'))).toBe(false);
    const f = figures('explain', lines);
    const counts = lines.filter((l) => l.startsWith('counts explain dryrun '));
    for (const name of ['nordics', 'buyers-30d', 'view-add-buy', 'vip-mix', 'tier-weighted-points']) {
      for (const figure of ['dryrun-ratio', 'dryrun-ms', 'dryrun-floor-ms']) {
        expect(f.get(`${figure}.${name}`), `${figure}.${name}`).toBeGreaterThan(0);
      }
      // The dry run's exact counts and a direct SQL count of the floor's ids against the members.
      const line = counts.find((l) => l.startsWith(`counts explain dryrun ${name}: `));
      const m = /: join (\d+) leave (\d+) stay (\d+); sql join (\d+) leave (\d+) stay (\d+)$/.exec(line ?? '');
      expect(m, name).not.toBeNull();
      expect(m!.slice(1, 4), name).toEqual(m!.slice(4, 7));
    }
    // The changed memberships make every side occur somewhere.
    const totals = [1, 2, 3].map((i) =>
      counts.reduce((s, l) => s + Number(/: join (\d+) leave (\d+) stay (\d+);/.exec(l)![i]), 0),
    );
    expect(totals.every((t) => t > 0)).toBe(true);
    expect(readdirSync(dataDir).filter((f) => f.includes('.work.db'))).toEqual([]);
  });

  it('import: a list uploaded over HTTP into an external audience, every row counted', () => {
    const { code, lines, stderr } = bench('import', ['--rows', '3000']);
    expect(code, `${lines.join('\n')}\n${stderr}`).toBe(0);
    expect(lines.some((l) => l.startsWith('MISMATCH'))).toBe(false);
    const f = figures('import', lines);
    expect(f.get('rows-per-s')).toBeGreaterThan(0);
    expect(f.has('rss-growth-mb')).toBe(true);
    expect(lines.find((l) => l.startsWith('context import run 1: '))).toMatch(
      /read 3000, imported 3000, matched 500, failed 0$/,
    );
  });

  it("stream-writer: the ingest thread's work in process, against a checkout (here itself) taking the same groups", () => {
    const { code, lines, stderr } = bench('stream-writer', [
      ...['--definitions', '10', '--groups', '4', '--warmup', '2', '--runs', '2', '--compare', root],
    ]);
    expect(code, `${lines.join('\n')}\n${stderr}`).toBe(0);
    expect(lines.some((l) => l.startsWith('MISMATCH'))).toBe(false);
    const f = figures('stream-writer', lines);
    for (const figure of ['cpu-us-per-event', 'wall-us-per-event', 'changes-per-event']) {
      expect(f.has(figure), figure).toBe(true);
      expect(f.has(`compare.${figure}`), figure).toBe(true);
    }
    expect(f.get('wall-us-per-event')).toBeGreaterThan(0);
    // The same code on the same groups writes the same changes.
    expect(f.get('changes-per-event')).toBe(f.get('compare.changes-per-event'));
    expect(f.has('wall-ratio')).toBe(true);
  });

  it('stream-pages: the b-trees a streaming commit writes, read back from the log', () => {
    const { code, lines, stderr } = bench('stream-pages', [
      ...['--definitions', '10', '--group', '50', '--groups', '3', '--warmup', '2'],
    ]);
    expect(code, `${lines.join('\n')}\n${stderr}`).toBe(0);
    const f = figures('stream-pages', lines);
    expect(f.get('pages-per-commit')).toBeGreaterThan(0);
    // The figures are printed to three significant digits.
    expect(f.get('pages-per-event')).toBeCloseTo(f.get('pages-per-commit')! / 50, 1);
    const trees = new Map(
      lines
        .filter((l) => l.startsWith('pages stream-pages '))
        .map((l) => l.slice('pages stream-pages '.length).split('=') as [string, string]),
    );
    // Every event goes into the table and its per-profile index; no status index is kept.
    expect(Number(trees.get('events'))).toBeGreaterThan(0);
    expect(Number(trees.get('events_profile_type_ts'))).toBeGreaterThan(0);
    expect(trees.has('memberships_audience_status')).toBe(false);
    const perCommit = [...trees.values()].reduce((sum, n) => sum + Number(n), 0);
    // Each tree's figure is rounded to a tenth.
    expect(Math.abs(perCommit - f.get('pages-per-commit')!)).toBeLessThanOrEqual(0.05 * trees.size);
  });
});
