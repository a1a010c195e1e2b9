import { type Delivery, endWith, mapDeliveries, topics } from '../../domain/events.js';
import { type Job, type JobOf, jobsByIds } from '../../domain/jobs/job-store.js';
import {
  isTerminal,
  JOB_KINDS,
  JOB_STATUSES,
  JOB_TRIGGERS,
  type JobKind,
  type TypedJobKind,
} from '../../domain/jobs/job-types.js';
import { builder } from '../builder.js';
import { type Context, renewLoaders } from '../context.js';
import { enumFromDomain } from '../enums.js';

const JobKindEnum = enumFromDomain('JobKind', 'What a job does.', JOB_KINDS, {
  SEGMENT: 'Evaluates segment definitions into memberships.',
  EXPORT: 'Writes an audience out as a dataset.',
  PREVIEW: 'Estimates the size of an expression from a sample.',
  INGESTION: 'Reads an uploaded file into an external audience.',
  DEFINITION_CHANGE_PREVIEW: 'A dry run of a definition change: who would join or leave.',
});
export const JobStatusEnum = enumFromDomain('JobStatus', 'Where a job is in its life.', JOB_STATUSES, {
  QUEUED: 'Waiting for the runner.',
  PROCESSING: 'Running.',
  SUCCEEDED: 'Finished; its results are in.',
  FAILED: 'Stopped on an error (see error); nothing of it was written.',
  CANCELLING: 'A cancel was asked for; it stops at its next check.',
  CANCELLED: 'Stopped by a cancel; nothing of it was written.',
});
const JobTriggerEnum = enumFromDomain('JobTrigger', 'What started a job.', JOB_TRIGGERS, {
  MANUAL: 'A request through the API.',
  SCHEDULE: 'A schedule.',
});

const JobProgressType = builder.objectRef<Job>('JobProgress').implement({
  description: 'How far a job has got.',
  fields: (t) => ({
    done: t.int({ description: 'Units of work done (profiles, rows).', resolve: (j) => j.progressDone }),
    total: t.int({
      nullable: true,
      description: 'Units of work in all; null while unknown.',
      resolve: (j) => j.progressTotal,
    }),
    fraction: t.float({
      nullable: true,
      description: 'done / total, 0 to 1; null while the total is unknown.',
      resolve: (j) =>
        j.progressTotal ? Math.min(1, j.progressDone / j.progressTotal) : j.status === 'SUCCEEDED' ? 1 : null,
    }),
  }),
});

/** GraphQL type name of each job kind (also the global id type). */
const JOB_TYPE_NAMES: Record<JobKind, string> = {
  SEGMENT: 'SegmentJob',
  EXPORT: 'ExportJob',
  PREVIEW: 'Preview',
  INGESTION: 'IngestionRun',
  DEFINITION_CHANGE_PREVIEW: 'DefinitionChangePreview',
};

export const JobRef = builder.interfaceRef<Job>('Job').implement({
  description: 'Any job on the runner: segment jobs, exports, previews, ingestion runs.',
  interfaces: [builder.nodeInterfaceRef()],
  resolveType: (job) => JOB_TYPE_NAMES[job.kind],
  fields: (t) => ({
    kind: t.field({ type: JobKindEnum, description: 'What the job does.', resolve: (j) => j.kind }),
    status: t.field({ type: JobStatusEnum, description: 'Where it is in its life.', resolve: (j) => j.status }),
    progress: t.field({ type: JobProgressType, description: 'How far it has got.', resolve: (j) => j }),
    trigger: t.field({ type: JobTriggerEnum, description: 'What started it.', resolve: (j) => j.trigger }),
    createdAt: t.field({ type: 'DateTime', description: 'When it was queued.', resolve: (j) => j.createdAt }),
    startedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the runner last started it; null while queued.',
      resolve: (j) => j.startedAt,
    }),
    finishedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When it reached SUCCEEDED, FAILED or CANCELLED.',
      resolve: (j) => j.finishedAt,
    }),
    error: t.string({ nullable: true, description: 'Why it FAILED; null otherwise.', resolve: (j) => j.error }),
    attempts: t.int({
      description: 'How many times the runner started it (more than 1 after a crash).',
      resolve: (j) => j.attempts,
    }),
  }),
});

/**
 * The job's current state, then every change, ending after a terminal state. The listener is
 * attached before the current state is read, so no change in between is lost.
 */
export function watchJob<K extends TypedJobKind>(ctx: Context, id: number, kind: K): AsyncGenerator<JobOf<K>> {
  const updates = ctx.app.bus.subscribe<JobOf<K>>(topics.job(id), ctx.signal);
  return endWith(jobStates(ctx, updates, id, kind), updates);
}

async function* jobStates<K extends TypedJobKind>(
  ctx: Context,
  updates: AsyncIterableIterator<Delivery<JobOf<K>>> & { close(): void },
  id: number,
  kind: K,
): AsyncGenerator<JobOf<K>> {
  try {
    const current = (await jobsByIds(ctx.conn, ctx.sandbox.id, [id], kind)).get(id);
    if (!current) return;
    let last = current;
    yield current;
    if (isTerminal(current.status)) return;
    // A watcher that fell behind lost the oldest states only: what it gets next is newer.
    for await (const { payload: job } of updates) {
      // Changes queued before the current state was read can be older than it.
      if (job.updatedAt < last.updatedAt || (job.updatedAt === last.updatedAt && job.progressDone < last.progressDone))
        continue;
      last = job;
      renewLoaders(ctx, job);
      yield job;
      if (isTerminal(job.status)) return;
    }
  } finally {
    updates.close();
  }
}

builder.subscriptionField('jobEvents', (t) =>
  t.field({
    type: JobRef,
    description: 'Every state or progress change of any job in this sandbox (optionally only some kinds).',
    args: { kinds: t.arg({ type: [JobKindEnum], description: 'Only jobs of these kinds (default: all).' }) },
    subscribe: (_r, args, ctx) => {
      const updates = ctx.app.bus.subscribe<Job>(topics.sandboxJobs(ctx.sandbox.id), ctx.signal);
      const kinds = args.kinds?.length ? args.kinds : undefined;
      return mapDeliveries(updates, ({ payload: job }) => {
        if (kinds && !kinds.includes(job.kind)) return undefined;
        renewLoaders(ctx, job);
        return job;
      });
    },
    resolve: (job) => job,
  }),
);
