import type { Store } from '../../db/store.js';
import { definitionsByIds } from '../definitions.js';
import { badInput, notFound } from '../errors.js';
import { internalId } from '../ids.js';
import { createSegmentJob } from '../segment-jobs/segment-job.js';
import { registerScheduleType } from './schedule-types.js';

const FIELD = 'input.properties.segments';
const SHAPE = 'BATCH_SEGMENTATION properties are { "segments": ["*"] } or { "segments": [<segment definition ids>] }';

/** The definitions a BATCH_SEGMENTATION schedule evaluates: all batch-enabled ones, or these ids. */
type Segments = { all: true } | { all: false; definitionIds: number[] };

/**
 * The definitions a BATCH_SEGMENTATION schedule's properties name, read from their shape alone
 * (whether they still exist is the caller's to check): the cluster's scheduler reads them so too.
 */
export function parseSegments(properties: unknown): Segments {
  if (typeof properties !== 'object' || properties === null || Array.isArray(properties)) throw badInput(SHAPE, FIELD);
  const extra = Object.keys(properties).filter((k) => k !== 'segments');
  if (extra.length > 0) throw badInput(`${SHAPE}; unknown ${extra.map((k) => `"${k}"`).join(', ')}`, FIELD);
  const segments = (properties as { segments?: unknown }).segments;
  if (!Array.isArray(segments) || segments.length === 0 || !segments.every((s) => typeof s === 'string')) {
    throw badInput(SHAPE, FIELD);
  }
  if (segments.includes('*')) {
    if (segments.length > 1) throw badInput('"*" already means every definition; give it alone', FIELD);
    return { all: true };
  }
  const ids = segments.map((gid: string, i) => {
    const id = internalId(gid, 'SegmentDefinition');
    if (id === undefined) throw notFound(`No SegmentDefinition with id "${gid}" in this sandbox (${FIELD}[${i}])`, gid);
    return id;
  });
  return { all: false, definitionIds: [...new Set(ids)] };
}

async function readSegments(conn: Store, sandboxId: number, properties: unknown): Promise<Segments> {
  const segments = parseSegments(properties);
  if (segments.all) return segments;
  const found = await definitionsByIds(conn, sandboxId, segments.definitionIds);
  const missing = segments.definitionIds.find((id) => !found.has(id));
  if (missing !== undefined) {
    const gid = (properties as { segments: string[] }).segments.find(
      (g) => internalId(g, 'SegmentDefinition') === missing,
    )!;
    const i = (properties as { segments: string[] }).segments.indexOf(gid);
    throw notFound(`No SegmentDefinition with id "${gid}" in this sandbox (${FIELD}[${i}])`, gid);
  }
  return segments;
}

registerScheduleType('BATCH_SEGMENTATION', {
  async validate(conn, sandboxId, properties) {
    const segments = await readSegments(conn, sandboxId, properties);
    if (segments.all) return { audienceIds: [] };
    const found = await definitionsByIds(conn, sandboxId, segments.definitionIds);
    return { audienceIds: [...found.values()].map((d) => d.audienceId) };
  },
  async start(app, sandboxId, properties, options) {
    const segments = await readSegments(app.conn, sandboxId, properties);
    return createSegmentJob(
      app,
      sandboxId,
      segments.all ? { all: true } : { definitionIds: segments.definitionIds },
      options,
    );
  },
});
