/**
 * The twenty reference definitions made through the domain code, with the plan a segment job
 * would run: what the batch benches (SQLite and PostgreSQL) evaluate.
 */
import { DEFAULT_LIMITS } from '../src/config.js';
import type { Connection } from '../src/db/index.js';
import { createSegmentDefinition, type SegmentDefinition } from '../src/domain/definitions.js';
import type { SegmentPlan } from '../src/domain/segment-jobs/segment-evaluation.js';
import { orderedPlan } from '../src/domain/segment-jobs/segment-job.js';
import type { FloorContext } from './floor.sql.js';
import type { Dataset, Definition } from './lib.js';

export interface ReferenceSegments {
  sandboxId: number;
  now: number;
  profiles: number;
  /** Reference definitions in file order, with the definition each became. */
  created: { reference: Definition; definition: SegmentDefinition }[];
  /** The job's plan without its jobId: dependency order, as `buildPlan` makes it. */
  plan: Omit<SegmentPlan, 'jobId'>;
  audienceIds: number[];
  floorContext: FloorContext;
}

/**
 * Creates the twenty reference definitions (and their audiences) through the domain code,
 * in file order, which is a dependency order, and builds the plan the job handler would.
 */
export async function createReferenceSegments(
  conn: Connection,
  dataset: Dataset,
  definitions: readonly Definition[],
  chunkSize: number = DEFAULT_LIMITS.segmentChunkSize,
): Promise<ReferenceSegments> {
  const { sandboxId, now } = dataset;
  const created: ReferenceSegments['created'] = [];
  for (const reference of definitions) {
    created.push({
      reference,
      definition: await createSegmentDefinition(
        conn,
        sandboxId,
        {
          name: reference.name,
          expression: { format: 'PQL_TEXT', value: reference.text },
          lifecycleState: 'PUBLISHED',
        },
        now,
      ),
    });
  }
  const all = created.map((c) => c.definition);
  // The handler's own plan builder; the jobId is set per run.
  const { jobId: _jobId, ...plan } = await orderedPlan(conn, sandboxId, all, { jobId: 0, now, chunkSize, notes: [] });
  const byName = new Map(created.map((c) => [c.reference.name, c.definition.audienceId]));
  return {
    sandboxId,
    now,
    profiles: dataset.profiles,
    created,
    plan,
    audienceIds: all.map((d) => d.audienceId),
    floorContext: {
      sandboxId,
      now,
      audience: (name) => {
        const id = byName.get(name);
        if (id === undefined) throw new Error(`floor needs audience "${name}", which is not a reference definition`);
        return id;
      },
    },
  };
}
