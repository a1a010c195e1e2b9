/**
 * The segment job on PostgreSQL across node processes, as `batch --backend postgres --nodes 1,2,3`
 * times it against the floor (issue 21). The cluster job engine (jobs split into profile-id
 * ranges, claimed under leases by several nodes, staged results turned into transitions by one
 * final write; docs/scale-out.md "Jobs across nodes") is being built on another branch:
 * `runClusterJob` is where it plugs in.
 */
import type { SegmentMetrics } from '../src/domain/segment-jobs/segment-evaluation.js';

export interface ClusterJobInput {
  /** The bench's database: the data set, the reference definitions and their audiences are in it. */
  url: string;
  sandboxId: number;
  /** The evaluation instant: the data set's reference `now`, the one the floor uses. */
  now: number;
  /** The reference definitions, in the plan's (inSegment dependency) order. */
  definitionIds: number[];
  /** How many node processes share the job. */
  nodes: number;
}

export interface ClusterJobRun {
  /** Wall time from enqueueing the job to its SUCCEEDED state, writes included. */
  ms: number;
  /** The job's own metrics, as its jobs row keeps them. */
  metrics: SegmentMetrics;
}

/** Thrown while the cluster job engine is not in this tree; the bench prints `SKIPPED job: …` and goes on. */
export class ClusterJobUnavailable extends Error {}

/**
 * Runs one segment job over `definitionIds` on `nodes` node processes against the database at
 * `url`, and returns its wall time and metrics. It must: enqueue a SEGMENT job for those
 * definitions at `now` the way the product does; start `nodes` node processes (each its own
 * process with its own pool, as in production) that claim the job's ranges until none is left;
 * wait until the job is SUCCEEDED (throwing if it FAILED, with the job's error); stop the
 * processes it started; and return the time from enqueueing to SUCCEEDED with the metrics the
 * jobs row holds. The job writes memberships, history and sizes into the database like any
 * job: the bench resets the bench audiences before each call and checks the memberships
 * against the floor's sets after it.
 */
export async function runClusterJob(input: ClusterJobInput): Promise<ClusterJobRun> {
  throw new ClusterJobUnavailable(
    `the cluster job engine is not built yet (asked for ${input.definitionIds.length} definitions on ${input.nodes} node(s))`,
  );
}
