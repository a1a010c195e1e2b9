/**
 * `npm run bench -- estimate [--profiles 1000000] [--events-per-profile 10] [--runs 3]
 *   [--only a,b] [--calibrate age-30-44] [--trials 100] [--sample 10000] [--data-dir .bench-data]`
 *
 * Previews (`runPreviewTask`, the code the job worker runs) of each reference definition with
 * the default sample (the whole store up to 1 M profiles), on a scratch copy of the standard
 * data set where one segment job has first written the memberships inSegment reads:
 *
 * - `first-2pct-ms.<name>`: from the call until the first progress report whose running 95 %
 *   interval has a half-width ((high − low) / 2) of at most 2 % of the population;
 * - `full-ratio.<name>`: time to the full-sample estimate (the progress report that carries
 *   the exact estimate, before the preview stores its rows) over the time of the definition's
 *   floor query from bench/floor.sql.ts returning its ids to JS (`.pluck().all()`, as the
 *   preview collects them), timed back to back, order alternating by run; `full-ms` /
 *   `floor-ms` beside it, and `stored-ms`: until the task returned (rows stored, job SUCCEEDED);
 * - `coverage`: `--trials` previews of `--calibrate` with `--sample` profiles and seeds
 *   1…trials; how many 95 % intervals hold the true size (the floor's row count).
 *
 * The full-sample estimate must equal the floor's count (it is exact); a difference prints
 * MISMATCH and exits non-zero.
 */
import type { Connection } from '../src/db/index.js';
import { insertJob, updateJob } from '../src/domain/jobs/job-store.js';
import { runJobTask } from '../src/domain/jobs/task.js';
import type { Estimate } from '../src/domain/previews/estimate.js';
import { runPreviewTask } from '../src/domain/previews/preview-sampling.js';
import { floorOf, openWorkCopy, runSegmentJob } from './batch.bench.js';
import { dataDirArg, intArg, loadDefinitions, parseArgs, prepareDataset, report, statsOf } from './lib.js';
import { createReferenceSegments, type ReferenceSegments } from './reference-segments.js';

const NAME = 'estimate';
const CONFIDENCE = 0.95;
/** The target's interval: a half-width of at most 2 % of the population. */
const HALF_WIDTH_SHARE = 0.02;
const FIRST_TARGET_MS = 1000;

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const profiles = intArg(args, 'profiles', 1_000_000);
  const eventsPerProfile = intArg(args, 'events-per-profile', 10);
  const runs = intArg(args, 'runs', 3);
  const trials = intArg(args, 'trials', 100);
  const sample = intArg(args, 'sample', 10_000);
  const only = args
    .get('only')
    ?.split(',')
    .filter((s) => s !== '');
  const calibrate = args.get('calibrate') ?? 'age-30-44';

  const definitions = loadDefinitions();
  for (const name of [...(only ?? []), calibrate]) {
    if (!definitions.some((d) => d.name === name)) throw new Error(`no reference definition named "${name}"`);
  }
  const dataset = await prepareDataset({ profiles, eventsPerProfile, seed: 42, dataDir: dataDirArg(args) });
  const work = await openWorkCopy(dataset, NAME);
  let failures = 0;
  try {
    const { conn } = work;
    const segments = await createReferenceSegments(conn, dataset, definitions);
    // inSegment reads stored memberships: one real job writes them for every reference audience.
    await runSegmentJob(conn, segments);

    const selected = segments.created.filter((c) => !only || only.includes(c.reference.name));
    const firstMs: number[] = [];
    const fullMs: number[][] = [];
    const floorMs: number[][] = [];
    for (const { reference, definition } of selected) {
      const name = reference.name;
      const floor = floorStatement(conn, segments, name);
      // Untimed warm-up of both sides (page cache, JIT of the SQL functions), also the exactness check.
      const trueSize = floor.all().length;
      const check = await preview(conn, segments, definition.expressionText, null, 1);
      if (!check.estimate.exact || check.estimate.estimatedSize !== trueSize) {
        failures++;
        console.log(
          `MISMATCH ${NAME} ${name}: full preview ${check.estimate.estimatedSize} (exact ${check.estimate.exact}), floor ${trueSize}`,
        );
      }
      const first: number[] = [];
      const full: number[] = [];
      const stored: number[] = [];
      const floors: number[] = [];
      for (let r = 0; r < runs; r++) {
        const timeFloor = () => {
          const t = performance.now();
          floor.all();
          floors.push(performance.now() - t);
        };
        if (r % 2 === 1) timeFloor();
        const p = await preview(conn, segments, definition.expressionText, null, r + 2);
        first.push(p.firstWithinMs);
        full.push(p.fullMs);
        stored.push(p.storedMs);
        if (r % 2 === 0) timeFloor();
      }
      const fs = statsOf(first);
      report(NAME, `first-2pct-ms.${name}`, fs.median, 'ms', fs);
      const ratio = statsOf(full.map((ms, i) => ms / floors[i]!));
      report(NAME, `full-ratio.${name}`, ratio.median, 'x', ratio);
      const fulls = statsOf(full);
      report(NAME, `full-ms.${name}`, fulls.median, 'ms', fulls);
      const storedStats = statsOf(stored);
      report(NAME, `stored-ms.${name}`, storedStats.median, 'ms', storedStats);
      const floorStats = statsOf(floors);
      report(NAME, `floor-ms.${name}`, floorStats.median, 'ms', floorStats);
      firstMs.push(fs.median);
      fullMs.push(full);
      floorMs.push(floors);
    }
    if (selected.length > 0) {
      const worst = firstMs.reduce((w, ms, i) => (ms > firstMs[w]! ? i : w), 0);
      const within = firstMs.filter((ms) => ms <= FIRST_TARGET_MS).length;
      console.log(
        `summary ${NAME} first-2pct-ms: worst ${firstMs[worst]!.toFixed(0)} ms (${selected[worst]!.reference.name}), ${within}/${firstMs.length} within ${FIRST_TARGET_MS} ms`,
      );
      const sum = (per: number[][], r: number) => per.reduce((s, xs) => s + xs[r]!, 0);
      const total = statsOf(Array.from({ length: runs }, (_, r) => sum(fullMs, r) / sum(floorMs, r)));
      report(NAME, 'full-ratio', total.median, 'x', total);
    }

    failures += await calibration(conn, segments, calibrate, trials, sample);
  } finally {
    work.close();
  }
  if (failures > 0) console.log(`FAILED ${NAME}: ${failures} check(s) failed (MISMATCH lines above)`);
  return failures > 0 ? 1 : 0;
}

/** The floor query of a definition as a prepared statement returning its ids. */
function floorStatement(conn: Connection, segments: ReferenceSegments, name: string): { all(): unknown[] } {
  const q = floorOf(name, segments.floorContext);
  const stmt = conn.sqlite.prepare(q.sql).pluck();
  return { all: () => stmt.all(...q.params) };
}

interface PreviewRun {
  estimate: Estimate;
  firstWithinMs: number;
  fullMs: number;
  /** Until the task returned: the qualifying profiles stored and the job SUCCEEDED. */
  storedMs: number;
}

/**
 * One preview as the worker runs it (a PROCESSING jobs row, then `runPreviewTask` through `runJobTask`), timing its
 * progress reports. Its stored rows are deleted afterwards (untimed) so the file does not grow.
 */
async function preview(
  conn: Connection,
  segments: ReferenceSegments,
  expressionText: string,
  sampleSize: number | null,
  seed: number,
): Promise<PreviewRun> {
  const { sandboxId, now } = segments;
  const job = await insertJob(conn, sandboxId, 'PREVIEW', {
    expression: { format: 'PQL_TEXT', value: expressionText },
    expressionText,
    definitionId: null,
    sampleSize,
    confidenceLevel: CONFIDENCE,
    at: now,
    seed,
  });
  await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
  let firstWithinMs = Number.NaN;
  let fullMs = Number.NaN;
  const start = performance.now();
  const { estimate } = runJobTask(
    conn,
    job.id,
    runPreviewTask,
    { jobId: job.id, sandboxId, now, expressionText, sampleSize, confidenceLevel: CONFIDENCE, seed },
    {
      progress: ({ estimate: e }) => {
        const at = performance.now() - start;
        const half = (e.confidenceInterval.high - e.confidenceInterval.low) / 2;
        if (Number.isNaN(firstWithinMs) && half <= HALF_WIDTH_SHARE * e.totalProfiles) firstWithinMs = at;
        if (e.exact && Number.isNaN(fullMs)) fullMs = at;
      },
      cancelled: () => false,
    },
  );
  // The full-sample estimate is the progress report that carries it (exact: with the whole store it
  // comes from a final scan); storing the qualifying profiles and finishing the job come after.
  const storedMs = performance.now() - start;
  if (Number.isNaN(fullMs)) fullMs = storedMs;
  conn.sqlite.prepare('DELETE FROM preview_results WHERE job_id = ?').run(job.id);
  return { estimate, firstWithinMs, fullMs, storedMs };
}

/**
 * Seeded previews of one definition with a fixed sample size; the true size is the floor's
 * count. Prints the coverage (intervals holding the true size) and context on the intervals.
 */
async function calibration(
  conn: Connection,
  segments: ReferenceSegments,
  name: string,
  trials: number,
  sample: number,
): Promise<number> {
  const created = segments.created.find((c) => c.reference.name === name)!;
  const trueSize = floorStatement(conn, segments, name).all().length;
  let covered = 0;
  const halfWidths: number[] = [];
  const errors: number[] = [];
  const ms: number[] = [];
  for (let seed = 1; seed <= trials; seed++) {
    const t = performance.now();
    const { estimate } = await preview(conn, segments, created.definition.expressionText, sample, seed);
    ms.push(performance.now() - t);
    const { low, high } = estimate.confidenceInterval;
    if (low <= trueSize && trueSize <= high) covered++;
    halfWidths.push((high - low) / 2 / segments.profiles);
    errors.push((estimate.estimatedSize - trueSize) / segments.profiles);
  }
  const hw = statsOf(halfWidths);
  const err = statsOf(errors);
  const mean = errors.reduce((s, e) => s + e, 0) / errors.length;
  console.log(
    `calibration ${NAME} ${name}: true size ${trueSize} of ${segments.profiles}; sample ${Math.min(sample, segments.profiles)}, seeds 1…${trials}; ` +
      `half-width median ${(hw.median * 100).toFixed(3)} % of the population; error mean ${(mean * 100).toFixed(3)} %, ` +
      `min ${(err.min * 100).toFixed(3)} %, max ${(err.max * 100).toFixed(3)} %`,
  );
  // A count over the trials, not a median: min and max are the value itself.
  report(NAME, 'coverage', covered, `/${trials}`, { n: trials, min: covered, max: covered });
  const pms = statsOf(ms);
  report(NAME, 'calibration-preview-ms', pms.median, 'ms', pms);
  return 0;
}
