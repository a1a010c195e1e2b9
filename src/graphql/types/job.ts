import { topics } from '../../domain/events.js';
import { isTerminal, type Job, type JobKind, jobsByIds } from '../../domain/jobs/job-store.js';
import { builder } from '../builder.js';
import type { Context } from '../context.js';

export const JobKindEnum = builder.enumType('JobKind', {
  values: ['SEGMENT', 'EXPORT', 'PREVIEW', 'INGESTION'] as const,
});
export const JobStatusEnum = builder.enumType('JobStatus', {
  values: ['QUEUED', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'CANCELLING', 'CANCELLED'] as const,
});
export const JobTriggerEnum = builder.enumType('JobTrigger', { values: ['MANUAL', 'SCHEDULE'] as const });

const JobProgressType = builder.objectRef<Job>('JobProgress').implement({
  fields: (t) => ({
    done: t.int({ resolve: (j) => j.progressDone }),
    total: t.int({ nullable: true, resolve: (j) => j.progressTotal }),
    fraction: t.float({
      nullable: true,
      description: 'done / total, 0 to 1; null while the total is unknown.',
      resolve: (j) =>
        j.progressTotal ? Math.min(1, j.progressDone / j.progressTotal) : j.status === 'SUCCEEDED' ? 1 : null,
    }),
  }),
});

/** GraphQL type name of each job kind (also the global id type). */
export const JOB_TYPE_NAMES: Record<JobKind, string> = {
  SEGMENT: 'SegmentJob',
  EXPORT: 'ExportJob',
  PREVIEW: 'Preview',
  INGESTION: 'IngestionRun',
};

export const JobRef = builder.interfaceRef<Job>('Job').implement({
  description: 'Any job on the runner: segment jobs, exports, previews, ingestion runs.',
  interfaces: [builder.nodeInterfaceRef()],
  resolveType: (job) => JOB_TYPE_NAMES[job.kind],
  fields: (t) => ({
    kind: t.field({ type: JobKindEnum, resolve: (j) => j.kind }),
    status: t.field({ type: JobStatusEnum, resolve: (j) => j.status }),
    progress: t.field({ type: JobProgressType, resolve: (j) => j }),
    trigger: t.field({ type: JobTriggerEnum, resolve: (j) => j.trigger }),
    createdAt: t.field({ type: 'DateTime', resolve: (j) => j.createdAt }),
    startedAt: t.field({ type: 'DateTime', nullable: true, resolve: (j) => j.startedAt }),
    finishedAt: t.field({ type: 'DateTime', nullable: true, resolve: (j) => j.finishedAt }),
    error: t.string({ nullable: true, resolve: (j) => j.error }),
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
export async function* watchJob(ctx: Context, id: number, kind: JobKind): AsyncGenerator<Job> {
  const updates = ctx.app.bus.subscribe<Job>(topics.job(id), ctx.signal);
  try {
    const current = jobsByIds(ctx.conn, ctx.sandbox.id, [id], kind).get(id);
    if (!current) return;
    let last = current;
    yield current;
    if (isTerminal(current.status)) return;
    for await (const job of updates) {
      // Changes queued before the current state was read can be older than it.
      if (job.updatedAt < last.updatedAt || (job.updatedAt === last.updatedAt && job.progressDone < last.progressDone))
        continue;
      last = job;
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
    args: { kinds: t.arg({ type: [JobKindEnum] }) },
    subscribe: async function* (_r, args, ctx) {
      const updates = ctx.app.bus.subscribe<Job>(topics.sandboxJobs(ctx.sandbox.id), ctx.signal);
      try {
        for await (const job of updates) if (!args.kinds?.length || args.kinds.includes(job.kind)) yield job;
      } finally {
        updates.close();
      }
    },
    resolve: (job) => job,
  }),
);
