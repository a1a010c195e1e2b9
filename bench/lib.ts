/**
 * What the benchmarks share (docs/performance.md): timing with warm-up and medians, the one
 * result-line format, the cached standard data set and the reference definitions.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../src/db/index.js';
import { seedDemoData } from '../src/domain/demo-data.js';
import { ensureSandbox } from '../src/domain/sandboxes.js';

/** Repository root, resolved from this file so `npm run bench` works from any cwd. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DATA_DIR = join(ROOT, '.bench-data');
const DEFINITIONS_FILE = join(ROOT, 'bench', 'definitions.pql');
const DAY = 86_400_000;

/**
 * The arguments that make `node` run `segql args…`: from source through tsx, as `npm start`
 * runs it, unless SEGQL_BENCH_BUILD names a build of src/ (test/build.ts), whose `src/cli.js`
 * then runs. The tests' smoke runs of the benches set it to the run's build: a node started from
 * source spent 3.0 s of CPU before it answered against 1.3 s built (2-core machine), and a smoke
 * run starts several. A bench's figures are those of the code `npm start` runs: leave it unset.
 */
export function segqlNodeArgs(...args: string[]): string[] {
  const build = process.env.SEGQL_BENCH_BUILD;
  return build ? [join(build, 'src', 'cli.js'), ...args] : ['--import', 'tsx', 'src/cli.ts', ...args];
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  n: number;
}

export interface MeasureOptions {
  runs: number;
  warmup: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median, min and max of samples already taken (in the unit of the figure they report). */
export function statsOf(values: readonly number[]): Stats {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values), n: values.length };
}

/** Milliseconds of each of `runs` calls of `fn`, after `warmup` untimed calls (JIT, page cache). */
export function sampleTimes(fn: () => unknown, { runs, warmup }: MeasureOptions): number[] {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    times.push(performance.now() - start);
  }
  return times;
}

/** The statistics of `sampleTimes`. */
export function measure(fn: () => unknown, options: MeasureOptions): Stats {
  return statsOf(sampleTimes(fn, options));
}

/** `measure` for asynchronous work (servers, subscriptions). */
export async function measureAsync(fn: () => Promise<unknown>, { runs, warmup }: MeasureOptions): Promise<Stats> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
  }
  return statsOf(times);
}

/** Items per second from the milliseconds a batch of `items` took; the slowest run is the minimum. */
export function throughput(ms: Stats, items: number): Stats {
  const perSecond = (t: number) => (items * 1000) / t;
  return { median: perSecond(ms.median), min: perSecond(ms.max), max: perSecond(ms.min), n: ms.n };
}

/** Three significant figures is all a noisy shared machine supports; integers stay whole. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  if (abs >= 1000) return String(Math.round(v));
  return String(Number(v.toPrecision(3)));
}

/** Prints the one result-line format of docs/performance.md and returns it. */
export function report(
  name: string,
  figure: string,
  value: number,
  unit: string,
  stats: Pick<Stats, 'n' | 'min' | 'max'>,
): string {
  const line = `bench ${name} ${figure}=${formatValue(value)} ${unit} (n=${stats.n}, median; min ${formatValue(stats.min)}, max ${formatValue(stats.max)})`;
  console.log(line);
  return line;
}

// ---------------------------------------------------------------------------------------------
// the standard data set

export interface DatasetOptions {
  profiles: number;
  eventsPerProfile: number;
  seed: number;
}

/** `prepareDataset` options: the data set, and where its cached files live. */
export interface PrepareOptions extends DatasetOptions {
  /** Directory of the cached files; default `.bench-data/` (the smoke tests pass a temporary one). */
  dataDir?: string;
}

export interface Dataset extends DatasetOptions {
  file: string;
  /** The directory holding `file`: benches put their scratch copies next to it. */
  dataDir: string;
  /** The reference instant the data was seeded against: every window of a bench must use it. */
  now: number;
  sandboxId: number;
  events: number;
  /** True when this call seeded the file (so the first run's timings include a cold cache). */
  fresh: boolean;
  /** When the file was seeded (ISO): tells one seeding of the same parameters from another. */
  seededAt: string;
}

interface Sidecar extends DatasetOptions {
  now: number;
  sandboxId: number;
  events: number;
  seededAt: string;
}

/** Today 00:00 UTC: the seeding reference of a new data set. */
export function todayUtc(at = Date.now()): number {
  return at - (at % DAY);
}

/**
 * The standard data set in `.bench-data/<profiles>-<events>-<seed>.db`, seeded once and reused.
 * The sidecar JSON records the reference `now` it was seeded with, so a later run (another day)
 * keeps evaluating windows against the same instant and still hits the data. The sidecar is
 * written last and the database renamed into place only when complete, so an interrupted
 * seeding is redone instead of reused.
 */
export async function prepareDataset(prepare: PrepareOptions, log: (line: string) => void = logErr): Promise<Dataset> {
  const { dataDir = DATA_DIR, ...options } = prepare;
  const key = `${options.profiles}-${options.eventsPerProfile}-${options.seed}`;
  const file = join(dataDir, `${key}.db`);
  const sidecarFile = join(dataDir, `${key}.json`);
  const cached = readSidecar(sidecarFile, options);
  if (cached && existsSync(file)) return { ...options, ...cachedFields(cached), file, dataDir, fresh: false };

  mkdirSync(dataDir, { recursive: true });
  const tmp = join(dataDir, `${key}.seeding.db`);
  for (const f of [file, `${file}-wal`, `${file}-shm`, sidecarFile, tmp, `${tmp}-wal`, `${tmp}-shm`]) {
    rmSync(f, { force: true });
  }
  const now = todayUtc();
  log(`seeding ${options.profiles} profiles × ~${options.eventsPerProfile} events (seed ${options.seed}) → ${file}`);
  const conn = openDatabase(tmp);
  let sandboxId: number;
  let events: number;
  try {
    sandboxId = (await ensureSandbox(conn, 'prod')).id;
    let lastLog = Date.now();
    const result = seedDemoData(conn, sandboxId, {
      ...options,
      now,
      onProgress: (done, total) => {
        if (Date.now() - lastLog > 5000 || done === total) {
          lastLog = Date.now();
          log(`seeding: ${done}/${total} profiles`);
        }
      },
    });
    events = result.events;
    log(`seeded ${result.profiles} profiles and ${events} events in ${(result.ms / 1000).toFixed(1)} s`);
    // Fold the WAL into the file so the renamed database is self-contained.
    conn.sqlite.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    conn.close();
  }
  renameSync(tmp, file);
  rmSync(`${tmp}-wal`, { force: true });
  rmSync(`${tmp}-shm`, { force: true });
  const sidecar: Sidecar = { ...options, now, sandboxId, events, seededAt: new Date().toISOString() };
  writeFileSync(sidecarFile, `${JSON.stringify(sidecar, null, 2)}\n`);
  return { ...options, now, sandboxId, events, file, dataDir, fresh: true, seededAt: sidecar.seededAt };
}

function cachedFields(s: Sidecar): Pick<Dataset, 'now' | 'sandboxId' | 'events' | 'seededAt'> {
  return { now: s.now, sandboxId: s.sandboxId, events: s.events, seededAt: s.seededAt };
}

function readSidecar(file: string, options: DatasetOptions): Sidecar | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as Partial<Sidecar>;
    const matches =
      s.profiles === options.profiles &&
      s.eventsPerProfile === options.eventsPerProfile &&
      s.seed === options.seed &&
      typeof s.now === 'number' &&
      typeof s.sandboxId === 'number' &&
      typeof s.events === 'number' &&
      typeof s.seededAt === 'string';
    return matches ? (s as Sidecar) : undefined;
  } catch {
    return undefined;
  }
}

function logErr(line: string): void {
  process.stderr.write(`${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// the reference definitions

export interface Definition {
  name: string;
  text: string;
  /** 1-based line in bench/definitions.pql, for error messages. */
  line: number;
}

/**
 * Parses the definitions file format: one definition per line, each preceded by a
 * `# name: <short-name>` comment; other `#` lines and blank lines are ignored.
 */
export function parseDefinitions(source: string): Definition[] {
  const out: Definition[] = [];
  let pending: string | undefined;
  source.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s*name:\s*(\S+)\s*$/.exec(line);
      if (m) {
        if (pending !== undefined) throw new Error(`definitions.pql:${i + 1}: "${pending}" has no definition line`);
        pending = m[1]!;
      }
      return;
    }
    if (pending === undefined) throw new Error(`definitions.pql:${i + 1}: a definition without a "# name:" line`);
    if (out.some((d) => d.name === pending)) throw new Error(`definitions.pql:${i + 1}: duplicate name "${pending}"`);
    out.push({ name: pending, text: line, line: i + 1 });
    pending = undefined;
  });
  if (pending !== undefined) throw new Error(`definitions.pql: "${pending}" has no definition line`);
  return out;
}

export function loadDefinitions(file = DEFINITIONS_FILE): Definition[] {
  return parseDefinitions(readFileSync(file, 'utf8'));
}

/** `--name value` options after the bench name; flags without a value are "true". */
export function parseArgs(args: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"`);
    const eq = a.indexOf('=');
    if (eq > 0) out.set(a.slice(2, eq), a.slice(eq + 1));
    else if (i + 1 < args.length && !args[i + 1]!.startsWith('--')) out.set(a.slice(2), args[++i]!);
    else out.set(a.slice(2), 'true');
  }
  return out;
}

/** `--data-dir <path>`: where `prepareDataset` keeps its files (default `.bench-data/`). */
export function dataDirArg(args: Map<string, string>): string {
  const v = args.get('data-dir');
  return v === undefined ? DATA_DIR : resolve(v);
}

export function intArg(args: Map<string, string>, name: string, fallback: number): number {
  const v = args.get(name);
  if (v === undefined) return fallback;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got "${v}"`);
  return n;
}
