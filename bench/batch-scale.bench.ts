/**
 * `npm run bench -- batch-scale [--sizes 100000,300000,1000000] [--events-per-profile 10]
 *   [--runs 3] [--chunk-size 20000] [--data-dir .bench-data]`
 *
 * The `batch` bench's segment job (twenty reference definitions, real writes on a scratch copy,
 * memberships reset between runs) at each size of the standard data set, one size after the
 * other, after one untimed warm-up job per size. `job-ms.<size>` and `eval-ms.<size>` (the job's
 * `profileSegmentationTimeMs`) per size; `growth-<largest>-over-<smallest>` is the ratio of the
 * median job times (min/max: the extremes of the runs crossed), linear growth being the size ratio.
 */
import { DEFAULT_LIMITS } from '../src/config.js';
import { openWorkCopy, resetMemberships, runSegmentJob } from './batch.bench.js';
import { dataDirArg, intArg, loadDefinitions, parseArgs, prepareDataset, report, type Stats, statsOf } from './lib.js';
import { createReferenceSegments } from './reference-segments.js';

const NAME = 'batch-scale';

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const sizes = (args.get('sizes') ?? '100000,300000,1000000').split(',').map((s) => {
    const n = Number(s.replace(/_/g, ''));
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--sizes must be positive integers, got "${s}"`);
    return n;
  });
  if (sizes.length < 2) throw new Error('--sizes needs at least two sizes');
  const eventsPerProfile = intArg(args, 'events-per-profile', 10);
  const runs = intArg(args, 'runs', 3);
  const chunkSize = intArg(args, 'chunk-size', DEFAULT_LIMITS.segmentChunkSize);
  const dataDir = dataDirArg(args);
  const definitions = loadDefinitions();

  const jobStats = new Map<number, Stats>();
  for (const profiles of sizes) {
    const dataset = await prepareDataset({ profiles, eventsPerProfile, seed: 42, dataDir });
    // One copy at a time: at 1 M profiles a copy is several GB of disk and page cache.
    const work = await openWorkCopy(dataset, NAME);
    try {
      const segments = await createReferenceSegments(work.conn, dataset, definitions, chunkSize);
      await runSegmentJob(work.conn, segments);
      const jobMs: number[] = [];
      const evalMs: number[] = [];
      for (let r = 0; r < runs; r++) {
        resetMemberships(work.conn, segments);
        const job = await runSegmentJob(work.conn, segments);
        jobMs.push(job.ms);
        evalMs.push(job.metrics.profileSegmentationTimeMs);
      }
      const js = statsOf(jobMs);
      report(NAME, `job-ms.${label(profiles)}`, js.median, 'ms', js);
      const es = statsOf(evalMs);
      report(NAME, `eval-ms.${label(profiles)}`, es.median, 'ms', es);
      jobStats.set(profiles, js);
    } finally {
      work.close();
    }
  }
  const small = Math.min(...sizes);
  const large = Math.max(...sizes);
  const a = jobStats.get(small)!;
  const b = jobStats.get(large)!;
  report(NAME, `growth-${label(large)}-over-${label(small)}`, b.median / a.median, 'x', {
    n: runs,
    min: b.min / a.max,
    max: b.max / a.min,
  });
  console.log(`context ${NAME} size ratio ${label(large)}/${label(small)} = ${(large / small).toFixed(2)}`);
  return 0;
}

/** 100000 → 100k, 1000000 → 1m: the size in figure names. */
function label(profiles: number): string {
  if (profiles % 1_000_000 === 0) return `${profiles / 1_000_000}m`;
  if (profiles % 1_000 === 0) return `${profiles / 1_000}k`;
  return String(profiles);
}
