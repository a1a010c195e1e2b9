/**
 * `npm run bench -- batch [--profiles 1000000] [--events-per-profile 10] [--runs 3]
 *   [--chunk-size 20000] [--phases] [--data-dir .bench-data] [--backend sqlite|postgres]`
 *
 * `--backend postgres` runs the PostgreSQL side instead (bench/batch-postgres.ts, its own options).
 *
 * A whole segment job (`evaluateSegmentPlan`, the code the job worker runs) over the twenty
 * reference definitions on the standard data set, against the floor: the twenty hand-written
 * queries of bench/floor.sql.ts run back to back in one read transaction, each inserting its
 * ids into a temp table, as the job's evaluation phase does (the floor stops there; the job
 * then also writes memberships, history, sizes and its jobs row).
 *
 * The job runs on a scratch copy of the cached data set (SQLite online backup), so its real
 * writes never touch the shared file; between runs the bench audiences' memberships, history
 * and sizes are deleted and the WAL truncated, so every timed run is the same first
 * evaluation. Each timed run then runs two more jobs over the unchanged data and times the
 * second (`steady-ms`): every member is EXISTING and stays so, the daily re-run. Before
 * timing, the floor's sets are checked against the memberships the first job and a steady
 * job wrote (count and id sum per audience); a difference prints MISMATCH and exits non-zero.
 * `--phases` adds one instrumented job run: per-definition evaluation times and the time
 * of each write statement (lines starting `phase `).
 */
import { rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import { DEFAULT_LIMITS } from '../src/config.js';
import { type Connection, openDatabase } from '../src/db/index.js';
import { insertJob, jobById, updateJob } from '../src/domain/jobs/job-store.js';
import { runJobTask } from '../src/domain/jobs/task.js';
import { evaluateSegmentPlan, type SegmentMetrics } from '../src/domain/segment-jobs/segment-evaluation.js';
import { FLOORS, type FloorContext, type FloorQuery } from './floor.sql.js';
import {
  type Dataset,
  dataDirArg,
  intArg,
  loadDefinitions,
  parseArgs,
  prepareDataset,
  report,
  statsOf,
  throughput,
} from './lib.js';
import { createReferenceSegments, type ReferenceSegments } from './reference-segments.js';

const NAME = 'batch';
const CURRENT = "('REALIZED', 'EXISTING')";

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const backend = args.get('backend') ?? 'sqlite';
  // Loaded only when asked for: the SQLite bench needs neither pg nor a server.
  if (backend === 'postgres') return (await import('./batch-postgres.js')).run(args);
  if (backend !== 'sqlite') throw new Error(`--backend must be sqlite or postgres, got "${backend}"`);
  const profiles = intArg(args, 'profiles', 1_000_000);
  const eventsPerProfile = intArg(args, 'events-per-profile', 10);
  const runs = intArg(args, 'runs', 3);
  const chunkSize = intArg(args, 'chunk-size', DEFAULT_LIMITS.segmentChunkSize);
  const phases = args.get('phases') === 'true';

  const dataset = await prepareDataset({ profiles, eventsPerProfile, seed: 42, dataDir: dataDirArg(args) });
  const work = await openWorkCopy(dataset, NAME);
  let failures = 0;
  try {
    const { conn } = work;
    const segments = await createReferenceSegments(conn, dataset, loadDefinitions(), chunkSize);

    // Check pass, also the warm-up (page cache, JIT, the SQL functions): floor, then the job.
    const floorSets = runFloor(conn, segments, true).sets!;
    const first = await runSegmentJob(conn, segments);
    failures += checkSets(conn, segments, floorSets, first.metrics);

    // The steady state a daily job lives in: the third job over unchanged data, where every
    // member is EXISTING and stays so (the second job moved them from REALIZED).
    await runSegmentJob(conn, segments);
    const steady = await runSegmentJob(conn, segments);
    failures += checkSets(conn, segments, floorSets, steady.metrics);

    const jobMs: number[] = [];
    const evalMs: number[] = [];
    const floorMs: number[] = [];
    const steadyMs: number[] = [];
    for (let r = 0; r < runs; r++) {
      // Alternates which side runs first, so neither always inherits the other's warm cache.
      const order = r % 2 === 0 ? (['job', 'floor'] as const) : (['floor', 'job'] as const);
      for (const side of order) {
        if (side === 'floor') floorMs.push(runFloor(conn, segments, false).ms);
        else {
          resetMemberships(conn, segments);
          const job = await runSegmentJob(conn, segments);
          jobMs.push(job.ms);
          evalMs.push(job.metrics.profileSegmentationTimeMs);
          await runSegmentJob(conn, segments);
          steadyMs.push((await runSegmentJob(conn, segments)).ms);
        }
      }
    }

    const perRun = (xs: number[]) => statsOf(xs.map((x, i) => x / floorMs[i]!));
    const js = statsOf(jobMs);
    report(NAME, 'job-ms', js.median, 'ms', js);
    const fs = statsOf(floorMs);
    report(NAME, 'floor-ms', fs.median, 'ms', fs);
    const ratio = perRun(jobMs);
    report(NAME, 'ratio', ratio.median, 'x', ratio);
    // The job runs on one thread (one connection, no worker pool), so per core = per job.
    const evals = throughput(js, profiles * segments.plan.definitions.length);
    report(NAME, 'evals-per-s-per-core', evals.median, 'evaluations/s', evals);
    const es = statsOf(evalMs);
    report(NAME, 'eval-ms', es.median, 'ms', es);
    const evalRatio = perRun(evalMs);
    report(NAME, 'eval-ratio', evalRatio.median, 'x', evalRatio);
    const ws = statsOf(jobMs.map((ms, i) => ms - evalMs[i]!));
    report(NAME, 'write-ms', ws.median, 'ms', ws);
    const ss = statsOf(steadyMs);
    report(NAME, 'steady-ms', ss.median, 'ms', ss);
    const steadyRatio = perRun(steadyMs);
    report(NAME, 'steady-ratio', steadyRatio.median, 'x', steadyRatio);

    if (phases) {
      resetMemberships(conn, segments);
      await printPhases(conn, segments);
    }
  } finally {
    work.close();
  }
  if (failures > 0) console.log(`FAILED ${NAME}: ${failures} check(s) failed (MISMATCH lines above)`);
  return failures > 0 ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// the scratch copy and the reference segments (shared with batch-scale and estimate)

export interface WorkCopy {
  conn: Connection;
  file: string;
  /** Closes the connection and deletes the copy (it is as large as the data set). */
  close(): void;
}

/**
 * A private copy of the cached data set, next to it, made with SQLite's online backup (a
 * consistent snapshot even while another bench has the file open). The pid in the name keeps
 * concurrent benches apart.
 */
export async function openWorkCopy(dataset: Dataset, label: string): Promise<WorkCopy> {
  const file = join(dataset.dataDir, `${basename(dataset.file, '.db')}.${label}-${process.pid}.work.db`);
  removeDatabase(file);
  const source = new Database(dataset.file, { readonly: true, fileMustExist: true });
  try {
    // Large steps: the default of 100 pages per event-loop turn makes a 1 M-profile copy crawl.
    await source.backup(file, { progress: () => 65_536 });
  } finally {
    source.close();
  }
  const conn = openDatabase(file);
  return {
    conn,
    file,
    close() {
      conn.close();
      removeDatabase(file);
    },
  };
}

function removeDatabase(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) rmSync(f, { force: true });
}

export interface JobRun {
  ms: number;
  metrics: SegmentMetrics;
  /** performance.now() at each progress report, with its `done`. */
  progress: { at: number; done: number }[];
  started: number;
}

/** One segment job as the worker runs it: a PROCESSING jobs row, then `evaluateSegmentPlan` through `runJobTask`. */
export async function runSegmentJob(conn: Connection, segments: ReferenceSegments): Promise<JobRun> {
  const { sandboxId, now, plan } = segments;
  const job = await insertJob(conn, sandboxId, 'SEGMENT', {
    definitionIds: plan.definitions.map((d) => d.definitionId),
    all: false,
    at: now,
    now,
  });
  await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
  const progress: { at: number; done: number }[] = [];
  const started = performance.now();
  const { metrics } = runJobTask(
    conn,
    job.id,
    evaluateSegmentPlan,
    { ...plan, jobId: job.id },
    {
      progress: ({ done }) => progress.push({ at: performance.now(), done }),
      cancelled: () => false,
    },
  );
  const ms = performance.now() - started;
  const status = (await jobById(conn, job.id))?.status;
  if (status !== 'SUCCEEDED') throw new Error(`segment job ${job.id} ended ${status}, not SUCCEEDED`);
  return { ms, metrics, progress, started };
}

/**
 * Back to the state before the first job: no memberships, history or sizes for the bench
 * audiences, and an empty WAL, so every timed run does the same writes from the same start.
 */
export function resetMemberships(conn: Connection, segments: ReferenceSegments): void {
  const ids = JSON.stringify(segments.audienceIds);
  const db = conn.sqlite;
  db.transaction(() => {
    db.prepare('DELETE FROM memberships WHERE audience_id IN (SELECT value FROM json_each(?))').run(ids);
    db.prepare('DELETE FROM membership_history WHERE audience_id IN (SELECT value FROM json_each(?))').run(ids);
    db.prepare(
      'UPDATE audiences SET size = 0, last_evaluated_at = NULL WHERE id IN (SELECT value FROM json_each(?))',
    ).run(ids);
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
}

export function floorOf(name: string, ctx: FloorContext): FloorQuery {
  const floor = FLOORS[name];
  if (!floor) throw new Error(`bench/floor.sql.ts has no floor for "${name}"`);
  return floor(ctx);
}

// ---------------------------------------------------------------------------------------------
// the floor

interface SetPrint {
  n: number;
  sum: number;
}

interface FloorRun {
  ms: number;
  /** Per definition, ms of its insert. */
  perDefinition: number[];
  /** audience id → fingerprint of the floor's set, when asked for. */
  sets?: Map<number, SetPrint>;
}

/**
 * The twenty floor queries in the job's order, in one read transaction, each inserting its ids
 * into a temp table named `memberships`: it shadows the stored table (temp is searched first),
 * so the floors of inSegment definitions read the sets computed earlier in the same pass, as
 * the job's own temp shadow makes its compiled SQL do.
 */
export function runFloor(conn: Connection, segments: ReferenceSegments, fingerprint: boolean): FloorRun {
  const db = conn.sqlite;
  const byAudience = new Map(segments.created.map((c) => [c.definition.audienceId, c.reference.name]));
  const perDefinition: number[] = [];
  let sets: Map<number, SetPrint> | undefined;
  db.exec('DROP TABLE IF EXISTS temp.memberships');
  const start = performance.now();
  db.exec('BEGIN');
  try {
    db.exec(
      'CREATE TEMP TABLE memberships (audience_id INTEGER NOT NULL, profile_id INTEGER NOT NULL, status TEXT NOT NULL, PRIMARY KEY (audience_id, profile_id)) WITHOUT ROWID',
    );
    for (const { audienceId } of segments.plan.definitions) {
      const t = performance.now();
      const q = floorOf(byAudience.get(audienceId)!, segments.floorContext);
      db.prepare(`INSERT INTO temp.memberships SELECT ?, id, 'REALIZED' FROM (${q.sql})`).run(audienceId, ...q.params);
      perDefinition.push(performance.now() - t);
    }
  } finally {
    db.exec('COMMIT');
  }
  const ms = performance.now() - start;
  try {
    if (fingerprint) {
      sets = new Map();
      const print = db.prepare(
        'SELECT count(*) AS n, coalesce(sum(profile_id), 0) AS sum FROM temp.memberships WHERE audience_id = ?',
      );
      for (const id of segments.audienceIds) sets.set(id, print.get(id) as SetPrint);
    }
  } finally {
    db.exec('DROP TABLE temp.memberships');
  }
  return { ms, perDefinition, sets };
}

/** The job's memberships (and its qualified counts) against the floor's sets; returns the failures. */
function checkSets(
  conn: Connection,
  segments: ReferenceSegments,
  floorSets: Map<number, SetPrint>,
  metrics: SegmentMetrics,
): number {
  const print = conn.sqlite.prepare(
    `SELECT count(*) AS n, coalesce(sum(profile_id), 0) AS sum FROM main.memberships WHERE audience_id = ? AND status IN ${CURRENT}`,
  );
  const qualified = Object.values(metrics.segmentedProfileCounter);
  const total = qualified.reduce((s, n) => s + n, 0);
  console.log(`rows ${NAME} memberships=${total} (${segments.plan.definitions.length} audiences)`);
  let failures = 0;
  for (const { reference, definition } of segments.created) {
    const job = print.get(definition.audienceId) as SetPrint;
    const floor = floorSets.get(definition.audienceId)!;
    console.log(`rows ${NAME} ${reference.name}=${floor.n} (${((floor.n / segments.profiles) * 100).toFixed(2)} %)`);
    if (job.n !== floor.n || job.sum !== floor.sum) {
      failures++;
      console.log(
        `MISMATCH ${NAME} ${reference.name}: job ${job.n} members (id sum ${job.sum}), floor ${floor.n} (id sum ${floor.sum})`,
      );
    }
  }
  return failures;
}

// ---------------------------------------------------------------------------------------------
// --phases: where the job's time goes

/**
 * One more job with every better-sqlite3 statement call timed (by SQL text), and the time of
 * each definition's evaluation read off the progress reports (a definition is done when
 * `done` reaches a multiple of the profile count), beside its floor query's time.
 */
async function printPhases(conn: Connection, segments: ReferenceSegments): Promise<void> {
  const floor = runFloor(conn, segments, false);
  resetMemberships(conn, segments);
  const timings = new Map<string, { ms: number; calls: number }>();
  const proto = Object.getPrototypeOf(conn.sqlite.prepare('SELECT 1')) as Record<string, unknown>;
  const originals = new Map<string, unknown>();
  for (const method of ['run', 'get', 'all', 'iterate']) {
    const original = proto[method] as (...args: unknown[]) => unknown;
    originals.set(method, original);
    proto[method] = function (this: { source: string }, ...args: unknown[]) {
      const t = performance.now();
      try {
        return original.apply(this, args);
      } finally {
        const key = statementLabel(this.source);
        const entry = timings.get(key) ?? { ms: 0, calls: 0 };
        entry.ms += performance.now() - t;
        entry.calls++;
        timings.set(key, entry);
      }
    };
  }
  let job: JobRun;
  try {
    job = await runSegmentJob(conn, segments);
  } finally {
    for (const [method, original] of originals) proto[method] = original;
  }
  const { profiles } = segments;
  const names = new Map(segments.created.map((c) => [c.definition.audienceId, c.reference.name]));
  const first = job.progress[0]!.at;
  let previous = first;
  segments.plan.definitions.forEach((d, i) => {
    const end = job.progress.find((p) => p.done >= (i + 1) * profiles)?.at ?? previous;
    const ms = end - previous;
    const f = floor.perDefinition[i]!;
    console.log(
      `phase ${NAME} eval-ms.${names.get(d.audienceId)}=${ms.toFixed(1)} floor-ms=${f.toFixed(1)} ratio=${(ms / f).toFixed(2)}`,
    );
    previous = end;
  });
  const evalMs = previous - first;
  console.log(
    `phase ${NAME} job-ms=${job.ms.toFixed(0)} setup-ms=${(first - job.started).toFixed(0)} eval-ms=${evalMs.toFixed(0)} writes-ms=${(job.started + job.ms - previous).toFixed(0)} floor-ms=${floor.ms.toFixed(0)}`,
  );
  for (const [label, t] of [...timings].sort((a, b) => b[1].ms - a[1].ms).slice(0, 16)) {
    console.log(`phase ${NAME} statement ${t.ms.toFixed(0)} ms, ${t.calls} calls: ${label}`);
  }
}

/** A short, distinguishing name for a statement: its start and end (the 20 evaluation inserts share one). */
function statementLabel(source: string): string {
  const s = source.replace(/\s+/g, ' ').trim();
  if (s.startsWith('INSERT INTO temp.job_result'))
    return 'evaluate: INSERT INTO temp.job_result SELECT … (per definition × chunk)';
  return s.length <= 110 ? s : `${s.slice(0, 55)} … ${s.slice(-55)}`;
}
