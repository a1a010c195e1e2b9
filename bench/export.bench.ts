/**
 * `npm run bench -- export [--profiles 500000] [--events-per-profile 0] [--runs 3]
 *   [--format NDJSON] [--mmap 0] [--data-dir .bench-data]`
 *
 * A whole export (`runExport`, the code the job worker runs) of one audience holding every
 * profile of the standard data set, against the floor: one hand-written SQL statement that
 * builds the same JSON line per member, read by a cursor in one read transaction and written
 * to a file through a 1 MiB buffer (the floor stops there; the export also hashes, fsyncs, marks
 * where every 1,000th row starts for the API and records its files). Before timing, the export's row count and the
 * floor's are compared (MISMATCH otherwise). Memory: an export of the first fifth of the
 * profiles, then of all, each measured as its peak RSS above the RSS it started at (sampled at
 * every progress report); `rss-growth-mb` is the full export's peak minus the small one's.
 * The reading connection's page cache and memory map count in RSS as they fill with the file
 * (up to the configured 256 MiB cache and 1 GiB map), so the bench also runs with `--mmap 0`
 * to show the export's own memory.
 */
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Connection } from '../src/db/index.js';
import { createManualAudience } from '../src/domain/audiences.js';
import type { ExportFormat } from '../src/domain/exports/datasets.js';
import { insertDataset } from '../src/domain/exports/datasets.js';
import { exportJobKind } from '../src/domain/exports/export-job.js';
import { runExport } from '../src/domain/exports/export-task.js';
import { encodeGlobalId } from '../src/domain/ids.js';
import type { JobServices } from '../src/domain/jobs/job-services.js';
import { insertJob, updateJob } from '../src/domain/jobs/job-store.js';
import { runJobTask } from '../src/domain/jobs/task.js';
import { openWorkCopy } from './batch.bench.js';
import { dataDirArg, intArg, parseArgs, prepareDataset, report, statsOf, throughput } from './lib.js';

const NAME = 'export';

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const profiles = intArg(args, 'profiles', 500_000);
  const eventsPerProfile = intArg(args, 'events-per-profile', 0);
  const runs = intArg(args, 'runs', 3);
  const format = (args.get('format') ?? 'NDJSON') as ExportFormat;
  const dataset = await prepareDataset({ profiles, eventsPerProfile, seed: 42, dataDir: dataDirArg(args) });
  const work = await openWorkCopy(dataset, NAME);
  if (args.get('mmap') === '0') {
    work.conn.sqlite.pragma('mmap_size = 0');
    work.conn.sqlite.pragma('cache_size = -16384');
  }
  const outDir = join(dataset.dataDir, `export-${process.pid}`);
  let failures = 0;
  try {
    const { conn } = work;
    const sandboxId = dataset.sandboxId;
    const small = await audienceOf(conn, sandboxId, 'bench-export-small', Math.floor(profiles / 5));
    const all = await audienceOf(conn, sandboxId, 'bench-export-all', profiles);
    const smallRun = await exportOnce(conn, sandboxId, small, format, outDir);
    const first = await exportOnce(conn, sandboxId, all, format, outDir);
    const rssSmall = smallRun.peakRssGrowthMb;
    const rssAll = first.peakRssGrowthMb;
    const floorRows = floor(conn, all, join(outDir, 'floor.ndjson'));
    if (first.rows !== profiles || floorRows.rows !== profiles || smallRun.rows !== Math.floor(profiles / 5)) {
      console.log(`MISMATCH export rows ${first.rows}, floor rows ${floorRows.rows}, expected ${profiles}`);
      failures++;
    }
    console.log(`rows export=${first.rows} small=${smallRun.rows} format=${format}`);

    const exportMs: number[] = [];
    const floorMs: number[] = [];
    const exportCpu: number[] = [];
    const floorCpu: number[] = [];
    for (let r = 0; r < runs; r++) {
      const order = r % 2 === 0 ? (['export', 'floor'] as const) : (['floor', 'export'] as const);
      for (const side of order) {
        const run =
          side === 'floor'
            ? floor(conn, all, join(outDir, 'floor.ndjson'))
            : await exportOnce(conn, sandboxId, all, format, outDir);
        (side === 'floor' ? floorMs : exportMs).push(run.ms);
        (side === 'floor' ? floorCpu : exportCpu).push(run.cpuMs);
      }
    }
    const es = statsOf(exportMs);
    report(NAME, 'export-ms', es.median, 'ms', es);
    const rows = throughput(es, profiles);
    report(NAME, 'rows-per-s', rows.median, 'rows/s', rows);
    const fs = statsOf(floorMs);
    report(NAME, 'floor-ms', fs.median, 'ms', fs);
    const ratio = statsOf(exportMs.map((x, i) => x / floorMs[i]!));
    report(NAME, 'ratio', ratio.median, 'x', ratio);
    // CPU time of this process: what each side computed, less sensitive than wall time to other
    // processes on a shared machine (it leaves out waiting for the disk, fsync included).
    const cpuRatio = statsOf(exportCpu.map((x, i) => x / floorCpu[i]!));
    report(NAME, 'ratio-cpu', cpuRatio.median, 'x', cpuRatio);
    const one = { n: 1, min: 0, max: 0 };
    const growth = rssAll - rssSmall;
    report(NAME, 'rss-growth-mb', growth, 'MB', { ...one, min: growth, max: growth });
    report(NAME, 'rss-small-mb', rssSmall, 'MB', { ...one, min: rssSmall, max: rssSmall });
    report(NAME, 'rss-all-mb', rssAll, 'MB', { ...one, min: rssAll, max: rssAll });
  } finally {
    rmSync(outDir, { recursive: true, force: true });
    work.close();
  }
  if (failures > 0) console.log(`FAILED ${NAME}: ${failures} check(s) failed (MISMATCH lines above)`);
  return failures > 0 ? 1 : 0;
}

/** User and system CPU time of the process since `start`, in milliseconds. */
function cpuMsSince(start: NodeJS.CpuUsage): number {
  const { user, system } = process.cpuUsage(start);
  return (user + system) / 1000;
}

const rssMb = () => process.memoryUsage.rss() / 2 ** 20;

/** A manual audience of the first `n` profiles, every one REALIZED. */
async function audienceOf(conn: Connection, sandboxId: number, name: string, n: number): Promise<number> {
  const audience = await createManualAudience(conn, sandboxId, { name });
  conn.sqlite
    .prepare(
      `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at)
       SELECT ?, ?, id, 'REALIZED', 1, 1 FROM profiles WHERE sandbox_id = ? ORDER BY id LIMIT ?`,
    )
    .run(sandboxId, audience.id, sandboxId, n);
  return audience.id;
}

/** One export job run to its end in this thread, as the worker runs it. */
async function exportOnce(
  conn: Connection,
  sandboxId: number,
  audienceId: number,
  format: ExportFormat,
  dataDir: string,
): Promise<{ ms: number; cpuMs: number; rows: number; peakRssGrowthMb: number }> {
  const dataset = await insertDataset(conn, sandboxId, `bench-${Date.now()}-${Math.random()}`, format);
  const job = await insertJob(conn, sandboxId, 'EXPORT', {
    audiences: [{ audienceId, statuses: ['REALIZED', 'EXISTING'] }],
    fields: null,
    fromIngestTimestamp: null,
    emptyAudienceFilter: false,
    mode: 'FULL',
    changesSince: null,
    datasetId: dataset.id,
    format,
    audiencePerFile: false,
    evaluateFirst: false,
    at: null,
  });
  const started = await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
  // The kind's plan reads only the connection and the data directory.
  const plan = await exportJobKind.plan(started as never, Date.now(), { conn, dataDir } as JobServices);
  // Peak RSS over the run, sampled at every progress report (every 50 ms), above where it started.
  const rss0 = rssMb();
  let peak = rss0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const result = runJobTask(conn, job.id, runExport, plan, {
    progress: () => {
      peak = Math.max(peak, rssMb());
    },
    cancelled: () => false,
  });
  const ms = performance.now() - t0;
  const cpuMs = cpuMsSince(cpu0);
  peak = Math.max(peak, rssMb());
  return { ms, cpuMs, rows: result.metrics.totalExportedProfileCounter, peakRssGrowthMb: peak - rss0 };
}

/** The floor: the same lines from one SQL statement, streamed to a file. */
function floor(conn: Connection, audienceId: number, file: string): { ms: number; cpuMs: number; rows: number } {
  const gid = encodeGlobalId('Audience', audienceId);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const stmt = conn.sqlite
    .prepare(
      `SELECT json_object('audienceId', ?, 'identities',
         (SELECT json_group_array(json_object('namespace', i.namespace, 'id', i.value)) FROM identities i WHERE i.profile_id = p.id),
         'status', m.status, 'qualifiedAt', strftime('%Y-%m-%dT%H:%M:%fZ', m.qualified_at / 1000.0, 'unixepoch'),
         'exitedAt', m.exited_at, 'attributes', json(p.attributes))
       FROM memberships m JOIN profiles p ON p.id = m.profile_id
       WHERE m.audience_id = ? AND m.status IN ('REALIZED', 'EXISTING') ORDER BY m.profile_id`,
    )
    .pluck();
  const fd = openSync(file, 'w');
  let rows = 0;
  let batch = '';
  conn.sqlite.exec('BEGIN');
  try {
    for (const line of stmt.iterate(gid, audienceId) as IterableIterator<string>) {
      batch += `${line}\n`;
      rows++;
      if (batch.length >= 1 << 20) {
        writeSync(fd, batch);
        batch = '';
      }
    }
    if (batch) writeSync(fd, batch);
  } finally {
    conn.sqlite.exec('COMMIT');
    closeSync(fd);
  }
  return { ms: performance.now() - t0, cpuMs: cpuMsSince(cpu0), rows };
}
