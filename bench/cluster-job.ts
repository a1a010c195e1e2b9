/**
 * A segment job on N cluster nodes, for `batch --backend postgres`: N `segql work` processes
 * against one PostgreSQL database, started and ready before the clock starts, then one job over
 * the given definitions, timed from its enqueue to its SUCCEEDED row. The nodes stay up between
 * runs of the same N (`ClusterNodes.run` again) and stop with `close()`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { enqueueClusterSegmentJob } from '../src/domain/cluster/cluster-segment-job.js';
import type { SegmentMetrics } from '../src/domain/segment-jobs/segment-evaluation.js';
import { ROOT } from './lib.js';

export interface ClusterJobRun {
  ms: number;
  metrics: SegmentMetrics;
  /** Ranges each node evaluated, by node name. */
  rangesByNode: Record<string, number>;
}

export interface ClusterNodes {
  run(sandboxId: number, definitionIds: number[], at: number): Promise<ClusterJobRun>;
  close(): Promise<void>;
}

interface NodeLine {
  msg: string;
  node?: string;
  range?: { jobId: number };
  end?: string;
}

/** Starts `count` node processes; `rangeProfiles` sets how finely a job is cut. */
export async function startClusterNodes(url: string, count: number, rangeProfiles: number): Promise<ClusterNodes> {
  const children: { name: string; child: ChildProcess; lines: NodeLine[] }[] = [];
  for (let i = 1; i <= count; i++) {
    const name = `bench-node-${i}`;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', 'work', '--node', name, '--range-profiles', String(rangeProfiles)],
      {
        cwd: ROOT,
        env: { ...process.env, SEGQL_DATABASE_URL: url, SEGQL_LOG_LEVEL: 'info' },
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
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const waitFor = async (what: string, done: () => boolean | Promise<boolean>, ms: number) => {
    const deadline = Date.now() + ms;
    while (!(await done())) {
      if (children.some((c) => c.child.exitCode !== null)) throw new Error(`${what}: a node process exited`);
      if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitFor(
    'nodes ready',
    () => children.every((c) => c.lines.some((l) => l.msg === 'cluster node started')),
    60_000,
  );
  return {
    async run(sandboxId, definitionIds, at) {
      const started = performance.now();
      const jobId = await enqueueClusterSegmentJob(pool, sandboxId, { definitionIds, all: false, at });
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
    async close() {
      for (const c of children) c.child.kill('SIGTERM');
      await Promise.all(
        children.map((c) => (c.child.exitCode !== null ? undefined : new Promise((r) => c.child.once('exit', r)))),
      );
      await pool.end();
    },
  };
}
