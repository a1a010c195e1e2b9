import type { Audience } from '../../domain/audiences.js';
import { datasetsByIds, type ExportFormat } from '../../domain/exports/datasets.js';
import {
  createExportJob,
  EXPORT_MODES,
  type ExportFileInfo,
  type ExportJob,
  type ExportJobRequest,
  type ExportMetrics,
  type ExportMode,
} from '../../domain/exports/export-job.js';
import { encodeGlobalId } from '../../domain/ids.js';
import { asKind, type Job, jobsByIds, listJobs, requireJob } from '../../domain/jobs/job-store.js';
import type { MembershipStatus } from '../../domain/membership-statuses.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import type { Context } from '../context.js';
import { enumFromDomain } from '../enums.js';
import { decodeId, requireId } from '../ids.js';
import { ExportFormatEnum } from './dataset.js';
import { JobRef, watchJob } from './job.js';
import { AudienceRef, DatasetRef, ExportJobRef, MembershipStatusEnum } from './refs.js';
import { JobFilter, SegmentJobRef } from './segment-job.js';

export const ExportModeEnum = enumFromDomain('ExportMode', 'What an export writes.', EXPORT_MODES, {
  FULL: 'The current members (with the statuses asked for).',
  CHANGES:
    "Only the memberships that were realized or exited since the dataset's last successful export (or changesSince), one row per change. The first export of a dataset is always FULL.",
});

function audienceOf(id: number, ctx: Context): Promise<Audience | undefined> {
  return ctx.loaders.audience.load(id);
}

const ExportSegmentType = builder
  .objectRef<{ audienceId: number; statuses: MembershipStatus[] }>('ExportSegment')
  .implement({
    description: 'An audience an export writes, with the membership statuses it writes.',
    fields: (t) => ({
      audienceId: t.id({
        description: 'Global id of the audience (kept when the audience has been deleted since).',
        resolve: (s) => encodeGlobalId('Audience', s.audienceId),
      }),
      audience: t.field({
        type: AudienceRef,
        nullable: true,
        description: 'The audience; null when it has been deleted since.',
        resolve: async (s, _a, ctx) => (await audienceOf(s.audienceId, ctx)) ?? null,
      }),
      statuses: t.field({
        type: [MembershipStatusEnum],
        description: 'The membership statuses written (FULL exports).',
        resolve: (s) => s.statuses,
      }),
    }),
  });

const ExportFilterType = builder.objectRef<ExportJob>('ExportFilter').implement({
  description: 'Which memberships an export writes.',
  fields: (t) => ({
    segments: t.field({
      type: [ExportSegmentType],
      description: 'The audiences, each with its statuses.',
      resolve: (j) => j.input.audiences,
    }),
    fromIngestTimestamp: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Only profiles ingested (created or updated) at or after this instant.',
      resolve: (j) => j.input.fromIngestTimestamp,
    }),
    emptyAudienceFilter: t.boolean({
      description: 'Files without rows are skipped instead of written empty.',
      resolve: (j) => j.input.emptyAudienceFilter,
    }),
  }),
});

const ExportDestinationType = builder.objectRef<ExportJob>('ExportDestination').implement({
  description: 'Where an export writes.',
  fields: (t) => ({
    dataset: t.field({
      type: DatasetRef,
      nullable: true,
      description: 'The dataset; null once it has been deleted.',
      resolve: async (j, _a, ctx) =>
        (await datasetsByIds(ctx.conn, ctx.sandbox.id, [j.input.datasetId])).get(j.input.datasetId) ?? null,
    }),
    format: t.field({ type: ExportFormatEnum, description: 'The file format.', resolve: (j) => j.input.format }),
    audiencePerFile: t.boolean({
      description: 'One file per audience instead of one combined file.',
      resolve: (j) => j.input.audiencePerFile,
    }),
  }),
});

const ExportFileType = builder.objectRef<ExportFileInfo>('ExportFile').implement({
  description: 'A file an export wrote, as it was renamed to its final name.',
  fields: (t) => ({
    path: t.exposeString('name', { description: 'File name in the dataset (download: Dataset.files.url).' }),
    audienceId: t.exposeID('audienceId', {
      nullable: true,
      description: "Global id of the file's audience; null for the combined file.",
    }),
    rows: t.exposeInt('rows', { description: 'Rows written.' }),
    bytes: t.exposeInt('bytes', { description: 'Size in bytes.' }),
    sha256: t.exposeString('sha256', { description: 'SHA-256 of the bytes, hex.' }),
  }),
});

const NamespaceRowsType = builder.objectRef<{ namespace: string; count: number }>('ExportNamespaceCount').implement({
  description: 'Exported rows whose profile has an identity in one namespace.',
  fields: (t) => ({
    namespace: t.exposeString('namespace', { description: 'The identity namespace, e.g. email.' }),
    count: t.exposeInt('count', { description: 'Rows with an identity there.' }),
  }),
});

const ExportJobMetricsType = builder.objectRef<ExportMetrics>('ExportJobMetrics').implement({
  description: 'What a finished export wrote and how long it took.',
  fields: (t) => ({
    totalExportedProfileCounter: t.exposeInt('totalExportedProfileCounter', {
      description: 'Rows written (a profile in two audiences counts twice).',
    }),
    exportedProfileByNamespaceCounter: t.field({
      type: [NamespaceRowsType],
      description: 'Per identity namespace: rows whose profile has an identity there.',
      resolve: (m) =>
        Object.entries(m.exportedProfileByNamespaceCounter).map(([namespace, count]) => ({ namespace, count })),
    }),
    totalTimeMs: t.exposeInt('totalTimeMs', { description: 'Wall time of the export, in milliseconds.' }),
  }),
});

builder.node(ExportJobRef, {
  description: 'An export of audience members into a dataset (files and a table of rows).',
  interfaces: [JobRef],
  isTypeOf: (j) => (j as Job).kind === 'EXPORT',
  id: { resolve: (j) => j.id },
  loadMany: async (ids, ctx) => {
    const found = await jobsByIds(ctx.conn, ctx.sandbox.id, ids.map(Number), 'EXPORT');
    return ids.map((id) => found.get(Number(id)) ?? null);
  },
  fields: (t) => ({
    filter: t.field({ type: ExportFilterType, description: 'Which memberships it writes.', resolve: (j) => j }),
    fields: t.stringList({
      nullable: true,
      description: 'The attribute paths written; null: all.',
      resolve: (j) => j.input.fields,
    }),
    mode: t.field({
      type: ExportModeEnum,
      description: 'The mode it runs in (a CHANGES request into a dataset without a previous export runs FULL).',
      resolve: (j) => j.result?.mode ?? j.input.mode,
    }),
    changesSince: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Start of the CHANGES window (exclusive); null for FULL or until the job has run.',
      resolve: (j) => j.result?.since ?? j.input.changesSince,
    }),
    at: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'The evaluation instant: the end of a CHANGES window (fixed when the job starts).',
      resolve: (j) => j.input.now ?? j.input.at,
    }),
    evaluateFirst: t.boolean({
      description:
        "A segment job over the export's audiences ran (or runs) first at the export's instant, and the export wrote what it left.",
      resolve: (j) => Boolean(j.input.evaluateFirst),
    }),
    segmentJob: t.field({
      type: SegmentJobRef,
      nullable: true,
      description:
        'With evaluateFirst: the segment job the export waits for (cancelled with it; the export fails if it does not succeed). Null otherwise.',
      resolve: async (j, _a, ctx) =>
        j.afterJobId == null ? null : ((await ctx.loaders.segmentJob.load(j.afterJobId)) ?? null),
    }),
    destination: t.field({ type: ExportDestinationType, description: 'Where it writes.', resolve: (j) => j }),
    metrics: t.field({
      type: ExportJobMetricsType,
      nullable: true,
      description: 'Counts and timings; null until the job has succeeded.',
      resolve: (j) => j.result?.metrics ?? null,
    }),
    files: t.field({
      type: [ExportFileType],
      description: 'The files it wrote (empty until it has succeeded).',
      resolve: (j) => j.result?.files ?? [],
    }),
    manifest: t.field({
      type: ExportFileType,
      nullable: true,
      description: 'The manifest.json it wrote (job, time, files with their hashes); null until it has succeeded.',
      resolve: (j) => j.result?.manifest ?? null,
    }),
    notes: t.stringList({
      description: 'Remarks on the run, e.g. audiences deleted before it ran.',
      resolve: (j) => j.result?.notes ?? [],
    }),
  }),
});

const ExportAudienceInput = builder.inputType('ExportAudienceInput', {
  description: 'An audience to export and the statuses to write.',
  fields: (t) => ({
    audienceId: t.id({ required: true, description: 'The global id of the audience.' }),
    statuses: t.field({
      type: [MembershipStatusEnum],
      description: 'Membership statuses to write in a FULL export (default REALIZED and EXISTING).',
    }),
  }),
});

const ExportDestinationInput = builder.inputType('ExportDestinationInput', {
  description: 'Where an export writes: an existing dataset, or a dataset by name (made when new).',
  fields: (t) => ({
    datasetId: t.id({ description: 'An existing dataset of the same format.' }),
    datasetName: t.string({
      description: 'A dataset name: the dataset of that name (of the same format), or a new one.',
    }),
    format: t.field({ type: ExportFormatEnum, required: true, description: 'The file format.' }),
    audiencePerFile: t.boolean({ description: 'One file per audience instead of one combined file (default false).' }),
  }),
});

export const CreateExportJobInput = builder.inputType('CreateExportJobInput', {
  description: 'What an export writes and where.',
  fields: (t) => ({
    audiences: t.field({
      type: [ExportAudienceInput],
      required: true,
      description: 'The audiences to export (at least one).',
    }),
    fields: t.stringList({
      description:
        'Attribute paths to write (an object path writes every field under it); default all. Identities, status, qualifiedAt and exitedAt are always written.',
    }),
    fromIngestTimestamp: t.field({
      type: 'DateTime',
      description: 'Only profiles ingested (created or updated) at or after this instant.',
    }),
    emptyAudienceFilter: t.boolean({
      description: 'Skip files that would have no rows instead of writing them empty (default false).',
    }),
    mode: t.field({ type: ExportModeEnum, description: 'FULL (default) or CHANGES.' }),
    changesSince: t.field({
      type: 'DateTime',
      description: "CHANGES only: start of the window instead of the dataset's last successful export.",
    }),
    at: t.field({
      type: 'DateTime',
      description:
        'The evaluation instant, the end of a CHANGES window (default: when the job starts; with evaluateFirst: when it is created).',
    }),
    evaluateFirst: t.boolean({
      description:
        "Run a segment job for the audiences that have a definition (DRAFT or PUBLISHED) at the export's instant first, then export its result (default false). Other audiences (external, manual, INACTIVE) are exported as stored.",
    }),
    destination: t.field({ type: ExportDestinationInput, required: true, description: 'Where to write.' }),
  }),
});

/** The GraphQL input of createExportJob (and of an EXPORT schedule) as the domain request. */
export function exportRequestFromInput(input: typeof CreateExportJobInput.$inferInput): ExportJobRequest {
  return {
    audiences: input.audiences.map((a) => ({
      audienceId: requireId(String(a.audienceId), 'Audience'),
      statuses: (a.statuses as MembershipStatus[] | null | undefined) ?? null,
    })),
    fields: input.fields ?? null,
    fromIngestTimestamp: (input.fromIngestTimestamp as number | null | undefined) ?? null,
    emptyAudienceFilter: input.emptyAudienceFilter ?? null,
    mode: (input.mode as ExportMode | null | undefined) ?? null,
    changesSince: (input.changesSince as number | null | undefined) ?? null,
    at: (input.at as number | null | undefined) ?? null,
    evaluateFirst: input.evaluateFirst ?? null,
    destination: {
      datasetId: input.destination.datasetId == null ? null : requireId(String(input.destination.datasetId), 'Dataset'),
      datasetName: input.destination.datasetName ?? null,
      format: input.destination.format as ExportFormat,
      audiencePerFile: input.destination.audiencePerFile ?? null,
    },
  };
}

builder.queryFields((t) => ({
  exportJob: t.field({
    type: ExportJobRef,
    nullable: true,
    description: 'An export job by global id; null when it does not exist in this sandbox.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the job.' }) },
    resolve: async (_r, args, ctx) => {
      const id = decodeId(args.id, 'ExportJob');
      return id === undefined ? null : ((await jobsByIds(ctx.conn, ctx.sandbox.id, [id], 'EXPORT')).get(id) ?? null);
    },
  }),
  exportJobs: t.connection(
    {
      type: ExportJobRef,
      description: 'The export jobs of the sandbox, newest first.',
      args: { filter: t.arg({ type: JobFilter, description: 'Conditions the jobs must meet.' }) },
      complexity: connectionComplexity,
      resolve: async (_r, args, ctx) =>
        toConnection(
          await listJobs(ctx.conn, ctx.sandbox.id, { kinds: ['EXPORT'], statuses: args.filter?.statuses }, args),
        ),
    },
    { name: 'ExportJobConnection', description: 'A page of export jobs.' },
    { name: 'ExportJobEdge', description: 'An export job in a page, with its cursor.' },
  ),
}));

builder.mutationFields((t) => ({
  createExportJob: t.field({
    type: ExportJobRef,
    nullable: true,
    description:
      'Queues an export of audience members into a dataset (watch it with exportJobUpdated); returns the QUEUED job.',
    args: { input: t.arg({ type: CreateExportJobInput, required: true, description: 'What to export and where.' }) },
    resolve: (_r, { input }, ctx) => createExportJob(ctx.app, ctx.sandbox.id, exportRequestFromInput(input)),
  }),
  cancelExportJob: t.field({
    type: ExportJobRef,
    nullable: true,
    description:
      'Cancels a queued or running export (CANCELLED within a second, nothing written); CONFLICT once it has finished. Returns the job.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the job.' }) },
    resolve: async (_r, args, ctx) => {
      const id = requireId(args.id, 'ExportJob');
      await requireJob(ctx.conn, ctx.sandbox.id, id, 'EXPORT', 'ExportJob');
      return asKind(await ctx.app.jobs.cancel(id), 'EXPORT');
    },
  }),
}));

builder.subscriptionField('exportJobUpdated', (t) =>
  t.field({
    type: ExportJobRef,
    description: 'The export now, then every change; completes after it ends.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the job.' }) },
    subscribe: async (_r, args, ctx) => {
      const id = requireId(args.id, 'ExportJob');
      await requireJob(ctx.conn, ctx.sandbox.id, id, 'EXPORT', 'ExportJob');
      return watchJob(ctx, id, 'EXPORT');
    },
    resolve: (job) => job,
  }),
);
