import {
  createExternalAudience,
  deleteExternalAudience,
  EXTERNAL_FIELD_TYPES,
  type ExternalAudience,
  type ExternalAudienceField,
  externalAudienceOfAudience,
  externalAudiencesByIds,
  findExternalAudience,
  updateExternalAudience,
} from '../../domain/external-audiences/external-audiences.js';
import {
  INGESTION_MODES,
  type IngestionError,
  type IngestionRun,
  listIngestionErrors,
  listIngestionRuns,
  startIngestionRun,
} from '../../domain/external-audiences/ingestion-run.js';
import { asKind, type Job, jobsByIds, requireJob } from '../../domain/jobs/job-store.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { enumFromDomain } from '../enums.js';
import { decodeId, requireId } from '../ids.js';
import { JobRef, watchJob } from './job.js';
import { AudienceRef, LifecycleStateEnum } from './refs.js';

const ExternalFieldTypeEnum = enumFromDomain(
  'ExternalAudienceFieldType',
  'The type of a column of an external audience list.',
  EXTERNAL_FIELD_TYPES,
  {
    STRING: 'Text, as written.',
    NUMBER: 'A decimal number (CSV: 12, -3.5, 1e3).',
    BOOLEAN: 'true or false (CSV also 1 or 0).',
    DATE: 'An ISO-8601 date (2026-11-28) or datetime.',
  },
);

const IngestionModeEnum = enumFromDomain('IngestionMode', 'How a run changes the audience.', INGESTION_MODES, {
  REPLACE: 'The list becomes the whole audience: members not in it exit.',
  APPEND: 'The list adds members; the others stay.',
});

const ExternalAudienceFieldType = builder.objectRef<ExternalAudienceField>('ExternalAudienceField').implement({
  description: 'A column of the lists imported into an external audience.',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'The column name (the CSV header, or the NDJSON key).' }),
    type: t.field({ type: ExternalFieldTypeEnum, description: 'What its values are.', resolve: (f) => f.type }),
    identityNamespace: t.exposeString('identityNamespace', {
      nullable: true,
      description: 'Set on the one column that says who each row is: the identity namespace of its values.',
    }),
  }),
});

const IngestionErrorType = builder.objectRef<IngestionError>('IngestionError').implement({
  description: 'A row of the list that was not imported.',
  fields: (t) => ({
    line: t.exposeInt('line', { description: 'Its line in the file (1 is the CSV header).' }),
    message: t.exposeString('message', { description: 'Why it was not imported.' }),
  }),
});

export const ExternalAudienceRef = builder.objectRef<ExternalAudience>('ExternalAudience');
export const IngestionRunRef = builder.objectRef<IngestionRun>('IngestionRun');

/** A web stream's chunks as an async iterable (read one at a time: the file is never held whole). */
async function* chunksOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

const counts = (j: IngestionRun) =>
  j.result ?? { recordsRead: 0, recordsImported: 0, recordsMatched: 0, recordsFailed: 0 };

builder.node(IngestionRunRef, {
  description:
    'An uploaded list read into an external audience (progress in bytes of the file). Ends SUCCEEDED, also when some rows failed, or FAILED when no row was usable.',
  interfaces: [JobRef],
  isTypeOf: (j) => (j as Job).kind === 'INGESTION',
  id: { resolve: (j) => j.id },
  loadMany: async (ids, ctx) => {
    const found = await jobsByIds(ctx.conn, ctx.sandbox.id, ids.map(Number), 'INGESTION');
    return ids.map((id) => found.get(Number(id)) ?? null);
  },
  fields: (t) => ({
    externalAudience: t.field({
      type: ExternalAudienceRef,
      nullable: true,
      description: 'The audience the list goes into; null once it is deleted.',
      resolve: async (j, _a, ctx) =>
        (await externalAudiencesByIds(ctx.conn, ctx.sandbox.id, [j.input.externalAudienceId])).get(
          j.input.externalAudienceId,
        ) ?? null,
    }),
    mode: t.field({ type: IngestionModeEnum, description: 'REPLACE or APPEND.', resolve: (j) => j.input.mode }),
    fileName: t.string({
      nullable: true,
      description: 'The uploaded file name; null for rows given inline.',
      resolve: (j) => j.input.fileName,
    }),
    bytes: t.int({ description: 'Size of the list in bytes.', resolve: (j) => j.input.bytes }),
    recordsRead: t.int({
      description: 'Rows read (the CSV header not counted).',
      resolve: (j) => counts(j).recordsRead,
    }),
    recordsImported: t.int({
      description: 'Rows that fit the fields and were kept, matched to a profile or not.',
      resolve: (j) => counts(j).recordsImported,
    }),
    recordsMatched: t.int({
      description: 'Rows whose identity belongs to a profile (the others become members when it arrives).',
      resolve: (j) => counts(j).recordsMatched,
    }),
    recordsFailed: t.int({ description: 'Rows not imported (see errors).', resolve: (j) => counts(j).recordsFailed }),
    errors: t.connection(
      {
        type: IngestionErrorType,
        description: 'The rows not imported, in line order (once the run has ended).',
        complexity: connectionComplexity,
        resolve: async (j, args, ctx) => toConnection(await listIngestionErrors(ctx.conn, j.id, args)),
      },
      { name: 'IngestionErrorConnection', description: 'A page of ingestion errors.' },
      { name: 'IngestionErrorEdge', description: 'An ingestion error in a page, with its cursor.' },
    ),
  }),
});

builder.node(ExternalAudienceRef, {
  description: 'An audience whose members come from uploaded lists (origin CUSTOM_UPLOAD).',
  id: { resolve: (e) => e.id },
  loadMany: async (ids, ctx) => {
    const found = await externalAudiencesByIds(ctx.conn, ctx.sandbox.id, ids.map(Number));
    return ids.map((id) => found.get(Number(id)) ?? null);
  },
  fields: (t) => ({
    audience: t.field({
      type: AudienceRef,
      description: 'Its audience: name, members, size.',
      resolve: async (e, _a, ctx) => (await ctx.loaders.audience.load(e.audienceId))!,
    }),
    externalId: t.exposeString('externalId', {
      nullable: true,
      description: 'The id its creator chose; inSegment finds the audience by it too.',
    }),
    fields: t.field({
      type: [ExternalAudienceFieldType],
      description: 'The columns of its lists.',
      resolve: (e) => e.fields,
    }),
    ttlInDays: t.exposeInt('ttlInDays', {
      description: 'Members exit this many days after the last run that listed them.',
    }),
    version: t.exposeInt('version', { description: 'Grows by one with every update.' }),
    createdAt: t.field({ type: 'DateTime', description: 'When it was made.', resolve: (e) => e.createdAt }),
    updatedAt: t.field({ type: 'DateTime', description: 'When it last changed.', resolve: (e) => e.updatedAt }),
    ingestionRuns: t.connection(
      {
        type: IngestionRunRef,
        description: 'Its runs, newest first.',
        complexity: connectionComplexity,
        resolve: async (e, args, ctx) => toConnection(await listIngestionRuns(ctx.conn, ctx.sandbox.id, e.id, args)),
      },
      { name: 'IngestionRunConnection', description: 'A page of ingestion runs.' },
      { name: 'IngestionRunEdge', description: 'An ingestion run in a page, with its cursor.' },
    ),
  }),
});

builder.objectField(AudienceRef, 'externalAudience', (t) =>
  t.field({
    type: ExternalAudienceRef,
    nullable: true,
    description: 'For an audience of origin CUSTOM_UPLOAD, its fields, TTL and runs; null otherwise.',
    resolve: async (a, _args, ctx) =>
      a.origin === 'CUSTOM_UPLOAD'
        ? ((await externalAudienceOfAudience(ctx.conn, ctx.sandbox.id, a.id)) ?? null)
        : null,
  }),
);

const ExternalAudienceFieldInput = builder.inputType('ExternalAudienceFieldInput', {
  description: 'A column of the lists.',
  fields: (t) => ({
    name: t.string({ required: true, description: 'The column name (CSV header, NDJSON key).' }),
    type: t.field({ type: ExternalFieldTypeEnum, required: true, description: 'What its values are.' }),
    identityNamespace: t.string({
      description: 'On exactly one (STRING) field: the identity namespace its values are in, e.g. email.',
    }),
  }),
});

const CreateExternalAudienceInput = builder.inputType('CreateExternalAudienceInput', {
  description: 'A new external audience.',
  fields: (t) => ({
    name: t.string({ required: true, description: 'Its name, unique in its namespace.' }),
    description: t.string({ description: 'What it is for.' }),
    namespace: t.string({ required: true, description: 'The namespace of the import, e.g. crm.' }),
    fields: t.field({
      type: [ExternalAudienceFieldInput],
      required: true,
      description: 'The columns, at most 25; exactly one names an identityNamespace.',
    }),
    ttlInDays: t.int({
      defaultValue: 30,
      description: 'Days members last after the last run that listed them (1-90).',
    }),
    labels: t.stringList({ description: 'Labels to find it by.' }),
    externalId: t.string({ description: 'An id of your own (e.g. the UUID another system knows it by).' }),
  }),
});

const UpdateExternalAudienceInput = builder.inputType('UpdateExternalAudienceInput', {
  description: 'Changes to an external audience (its fields stay as they are).',
  fields: (t) => ({
    name: t.string({ description: 'A new name.' }),
    description: t.string({ description: 'A new description.' }),
    labels: t.stringList({ description: 'The new labels (replacing the old).' }),
    lifecycleState: t.field({ type: LifecycleStateEnum, description: 'A new lifecycle state.' }),
    ttlInDays: t.int({ description: 'A new TTL in days (1-90).' }),
    externalId: t.string({ description: 'A new external id; an empty string removes it.' }),
  }),
});

builder.queryField('externalAudience', (t) =>
  t.field({
    type: ExternalAudienceRef,
    nullable: true,
    description: 'An external audience by global id, externalId or name; null when there is none in this sandbox.',
    args: {
      id: t.arg.id({ description: 'Its global id.' }),
      externalId: t.arg.string({ description: 'The id its creator chose, or its name.' }),
    },
    resolve: async (_r, args, ctx) => {
      if (args.id != null) {
        const id = decodeId(args.id, 'ExternalAudience');
        return id === undefined
          ? null
          : ((await externalAudiencesByIds(ctx.conn, ctx.sandbox.id, [id])).get(id) ?? null);
      }
      return args.externalId == null
        ? null
        : ((await findExternalAudience(ctx.conn, ctx.sandbox.id, args.externalId)) ?? null);
    },
  }),
);

builder.queryField('ingestionRun', (t) =>
  t.field({
    type: IngestionRunRef,
    nullable: true,
    description: 'An ingestion run by global id; null when it does not exist in this sandbox.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the run.' }) },
    resolve: async (_r, args, ctx) => {
      const id = decodeId(args.id, 'IngestionRun');
      return id === undefined ? null : ((await jobsByIds(ctx.conn, ctx.sandbox.id, [id], 'INGESTION')).get(id) ?? null);
    },
  }),
);

builder.mutationFields((t) => ({
  createExternalAudience: t.field({
    type: ExternalAudienceRef,
    nullable: true,
    description: 'Makes an external audience (its Audience has origin CUSTOM_UPLOAD), empty until its first run.',
    args: { input: t.arg({ type: CreateExternalAudienceInput, required: true, description: 'What to make.' }) },
    resolve: async (_r, { input }, ctx) =>
      await createExternalAudience(ctx.conn, ctx.sandbox.id, {
        ...input,
        fields: input.fields.map((f) => ({ ...f, identityNamespace: f.identityNamespace ?? null })),
      }),
  }),
  updateExternalAudience: t.field({
    type: ExternalAudienceRef,
    nullable: true,
    description: 'Changes an external audience; CONFLICT when expectedVersion is not its version.',
    args: {
      id: t.arg.id({ required: true, description: 'Its global id.' }),
      input: t.arg({ type: UpdateExternalAudienceInput, required: true, description: 'What to change.' }),
      expectedVersion: t.arg.int({ description: 'Refuse the change unless it is at this version.' }),
    },
    resolve: async (_r, args, ctx) =>
      await updateExternalAudience(
        ctx.conn,
        ctx.sandbox.id,
        requireId(args.id, 'ExternalAudience'),
        args.input,
        args.expectedVersion,
      ),
  }),
  deleteExternalAudience: t.globalID({
    nullable: true,
    description: 'Deletes an external audience with its list and members; returns its id.',
    args: { id: t.arg.id({ required: true, description: 'Its global id.' }) },
    resolve: async (_r, args, ctx) => ({
      type: 'ExternalAudience',
      id: await deleteExternalAudience(ctx.conn, ctx.sandbox.id, requireId(args.id, 'ExternalAudience')),
    }),
  }),
  startExternalAudienceIngestion: t.field({
    type: IngestionRunRef,
    nullable: true,
    description:
      'Reads a list into the audience: a CSV (header row naming the fields) or NDJSON file sent as a multipart upload, or rows inline. Returns the QUEUED run (watch it with ingestionRunUpdated); CONFLICT while another run of the audience has not ended.',
    args: {
      id: t.arg.id({ required: true, description: 'The global id of the external audience.' }),
      file: t.arg({ type: 'File', description: 'The list, as a multipart upload (at most 1 GB, 25 columns).' }),
      rows: t.arg({ type: ['JSON'], description: 'The list inline: one JSON object per row, keyed by field name.' }),
      mode: t.arg({
        type: IngestionModeEnum,
        defaultValue: 'REPLACE',
        description: 'REPLACE (default): the list is the whole audience; APPEND: it adds members.',
      }),
    },
    resolve: (_r, args, ctx) => {
      const file = args.file;
      return startIngestionRun(
        ctx.app,
        ctx.sandbox.id,
        requireId(args.id, 'ExternalAudience'),
        {
          file: file ? { stream: () => chunksOf(file.stream()), name: file.name || null, path: file.path } : null,
          rows: args.rows,
        },
        args.mode ?? 'REPLACE',
      );
    },
  }),
  cancelIngestionRun: t.field({
    type: IngestionRunRef,
    nullable: true,
    description: 'Cancels a queued or running run (nothing of it is written); CONFLICT once it has ended.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the run.' }) },
    resolve: async (_r, args, ctx) => {
      const id = requireId(args.id, 'IngestionRun');
      await requireJob(ctx.conn, ctx.sandbox.id, id, 'INGESTION', 'IngestionRun');
      return asKind(await ctx.app.jobs.cancel(id), 'INGESTION');
    },
  }),
}));

builder.subscriptionField('ingestionRunUpdated', (t) =>
  t.field({
    type: IngestionRunRef,
    description: 'The run now, then every change (with its running counts); completes after it ends.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the run.' }) },
    subscribe: async (_r, args, ctx) => {
      const id = requireId(args.id, 'IngestionRun');
      await requireJob(ctx.conn, ctx.sandbox.id, id, 'INGESTION', 'IngestionRun');
      return watchJob(ctx, id, 'INGESTION');
    },
    resolve: (job) => job,
  }),
);
