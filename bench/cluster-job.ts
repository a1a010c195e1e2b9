/**
 * The segment job on PostgreSQL across node processes, as `batch --backend postgres --nodes 1,2,3`
 * times it against the floor (issue 21): N `segql work` processes against the bench's database,
 * started and ready before any clock starts, then jobs over the given definitions, each timed from
 * its enqueue to its SUCCEEDED row (docs/scale-out.md "Jobs across nodes").
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { enqueueClusterSegmentJob } from '../src/domain/cluster/cluster-segment-job.js';
import type { SegmentMetrics } from '../src/domain/segment-jobs/segment-evaluation.js';
import { ROOT, segqlNodeArgs } from './lib.js';

export interface ClusterNodesInput {
  /** The bench's database: the data set, the reference definitions and their audiences are in it. */
  url: string;
  sandboxId: number;
  /** How many node processes share each job. */
  nodes: number;
}

export interface ClusterJobRun {
  /** Wall time from enqueueing the job to its SUCCEEDED state, writes included. */
  ms: number;
  /** The job's own metrics, as its jobs row keeps them. */
  metrics: SegmentMetrics;
  /** Ranges each node evaluated, by node name. */
  rangesByNode: Record<string, number>;
}

/** Node processes started once and ready, for the jobs of one node count. */
export interface ClusterNodes {
  /**
   * Runs one segment job over `definitionIds` (in the plan's inSegment dependency order) at the
   * evaluation instant `now` (the data set's, the floor's) and returns its wall time and metrics.
   */
  runJob(definitionIds: number[], now: number): Promise<ClusterJobRun>;
  stop(): Promise<void>;
}

/** Ranges per job: a dozen, so three nodes get four each and none waits long for the last one. */
const RANGES_PER_JOB = 12;

interface NodeLine {
  msg: string;
  range?: { jobId: number };
}

/**
 * Starts `nodes` node processes and waits until each has connected, so that no job's clock
 * counts their start; the same processes run every job until `stop`.
 */
export async function startClusterNodes(input: ClusterNodesInput): Promise<ClusterNodes> {
  const pool = new pg.Pool({ connectionString: input.url, max: 2 });
  const children: { name: string; child: ChildProcess; lines: NodeLine[] }[] = [];
  const stop = async () => {
    for (const c of children) c.child.kill('SIGTERM');
    await Promise.all(
      children.map((c) => (c.child.exitCode !== null ? undefined : new Promise((r) => c.child.once('exit', r)))),
    );
    await pool.end();
  };
  const waitFor = async (what: string, done: () => boolean | Promise<boolean>, ms: number) => {
    const deadline = Date.now() + ms;
    while (!(await done())) {
      if (children.some((c) => c.child.exitCode !== null)) throw new Error(`${what}: a node process exited`);
      if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    const profiles = (
      await pool.query<{ n: number }>('SELECT count(*) AS n FROM profiles WHERE sandbox_id = $1', [input.sandboxId])
    ).rows[0]!.n;
    const rangeProfiles = Math.max(1_000, Math.ceil(profiles / RANGES_PER_JOB));
    for (let i = 1; i <= input.nodes; i++) {
      const name = `bench-node-${i}`;
      const child = spawn(
        process.execPath,
        segqlNodeArgs('work', '--node', name, '--range-profiles', String(rangeProfiles)),
        {
          cwd: ROOT,
          env: { ...process.env, SEGQL_DATABASE_URL: input.url, SEGQL_LOG_LEVEL: 'info' },
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      const entry = { name, child, lines: [] as NodeLine[] };
      createInterface({ input: child.stdout! }).on('line', (text) => {
        try {
          entry.lines.push(JSON.parse(text) as NodeLine);
        } catch {
          // not a log line
        }
      });
      children.push(entry);
    }
    await waitFor(
      'nodes ready',
      () => children.every((c) => c.lines.some((l) => l.msg === 'cluster node started')),
      60_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    async runJob(definitionIds, now) {
      const started = performance.now();
      const jobId = await enqueueClusterSegmentJob(pool, input.sandboxId, { definitionIds, all: false, at: now });
      let row: { status: string; error: string | null; result: { metrics: SegmentMetrics } | null } | undefined;
      await waitFor(
        `job ${jobId}`,
        async () => {
          row = (await pool.query('SELECT status, error, result FROM jobs WHERE id = $1', [jobId])).rows[0];
          return row !== undefined && ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(row.status);
        },
        3_600_000,
      );
      const ms = performance.now() - started;
      if (row!.status !== 'SUCCEEDED') throw new Error(`cluster job ${jobId} ended ${row!.status}: ${row!.error}`);
      const rangesByNode: Record<string, number> = {};
      for (const c of children) {
        rangesByNode[c.name] = c.lines.filter((l) => l.msg === 'range-claimed' && l.range?.jobId === jobId).length;
      }
      return { ms, metrics: row!.result!.metrics, rangesByNode };
    },
    stop,
  };
}
