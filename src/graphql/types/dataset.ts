import {
  type DatasetFile,
  type DatasetRecord,
  datasetFilesOf,
  datasetRecordsPage,
  datasetsByIds,
  deleteDataset,
  EXPORT_FORMATS,
  listDatasets,
} from '../../domain/exports/datasets.js';
import { encodeGlobalId } from '../../domain/ids.js';
import { jobsByIds } from '../../domain/jobs/job-store.js';
import { builder } from '../builder.js';
import { connectionComplexity, toConnection } from '../connection.js';
import { enumFromDomain } from '../enums.js';
import { decodeId, requireId } from '../ids.js';
import { DatasetRef, ExportJobRef } from './refs.js';

export const ExportFormatEnum = enumFromDomain('ExportFormat', 'The file format of a dataset.', EXPORT_FORMATS, {
  NDJSON: 'One JSON object per line.',
  CSV: 'RFC 4180 CSV with a header row: nested fields flattened to dot names, arrays and maps as JSON text.',
  PARQUET: 'Apache Parquet with typed columns from the profile schema.',
});

const DatasetFileType = builder.objectRef<DatasetFile>('DatasetFile').implement({
  description: 'A file of a dataset: an export file or its manifest.json. Download it from `url`.',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'File name, unique in the dataset.' }),
    url: t.string({
      description: 'Path to download it from (GET, same API key and sandbox header as GraphQL; supports Range).',
      resolve: (f) =>
        `/datasets/${encodeURIComponent(encodeGlobalId('Dataset', f.datasetId))}/files/${encodeURIComponent(f.name)}`,
    }),
    rows: t.exposeInt('rows', { description: 'Rows written (for manifest.json: the files it lists).' }),
    bytes: t.exposeInt('bytes', { description: 'Size in bytes.' }),
    sha256: t.exposeString('sha256', { description: 'SHA-256 of the bytes, hex; also the ETag of the download.' }),
    exportJob: t.field({
      type: ExportJobRef,
      nullable: true,
      description: 'The export that wrote it.',
      resolve: async (f, _a, ctx) =>
        (await jobsByIds(ctx.conn, ctx.sandbox.id, [f.jobId], 'EXPORT')).get(f.jobId) ?? null,
    }),
    createdAt: t.field({ type: 'DateTime', description: 'When it was written.', resolve: (f) => f.createdAt }),
  }),
});

const DatasetRecordType = builder.objectRef<DatasetRecord>('DatasetRecord').implement({
  description: 'One exported row, as written to the files.',
  fields: (t) => ({
    record: t.field({
      type: 'JSON',
      description:
        'The row: audienceId, identities [{ namespace, id }], status, qualifiedAt, exitedAt, changedAt (CHANGES exports) and attributes.',
      resolve: (r) => r.record,
    }),
  }),
});

builder.node(DatasetRef, {
  description: 'Where export jobs write: files of one format, and the rows of its last export as a table.',
  isTypeOf: () => true,
  id: { resolve: (d) => d.id },
  loadMany: async (ids, ctx) => {
    const found = await datasetsByIds(ctx.conn, ctx.sandbox.id, ids.map(Number));
    return ids.map((id) => found.get(Number(id)) ?? null);
  },
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Its name, unique in the sandbox.' }),
    format: t.field({ type: ExportFormatEnum, description: 'The format of its files.', resolve: (d) => d.format }),
    createdAt: t.field({ type: 'DateTime', description: 'When it was created.', resolve: (d) => d.createdAt }),
    files: t.field({
      type: [DatasetFileType],
      description: "Its files, newest export first; manifest.json describes the newest export's files.",
      resolve: (d, _a, ctx) => datasetFilesOf(ctx.conn, d.id),
    }),
    records: t.connection(
      {
        type: DatasetRecordType,
        description: 'The rows of its last successful export, in the order they were written.',
        complexity: connectionComplexity,
        resolve: async (d, args, ctx) => toConnection(await datasetRecordsPage(ctx.conn, ctx.app.dataDir, d, args)),
      },
      { name: 'DatasetRecordConnection', description: 'A page of dataset rows.' },
      { name: 'DatasetRecordEdge', description: 'A dataset row in a page, with its cursor.' },
    ),
    lastExport: t.field({
      type: ExportJobRef,
      nullable: true,
      description: 'Its last successful export; null before the first.',
      resolve: async (d, _a, ctx) =>
        d.currentJobId == null
          ? null
          : ((await jobsByIds(ctx.conn, ctx.sandbox.id, [d.currentJobId], 'EXPORT')).get(d.currentJobId) ?? null),
    }),
  }),
});

builder.queryFields((t) => ({
  dataset: t.field({
    type: DatasetRef,
    nullable: true,
    description: 'A dataset by global id; null when it does not exist in this sandbox.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the dataset.' }) },
    resolve: async (_r, args, ctx) => {
      const id = decodeId(args.id, 'Dataset');
      return id === undefined ? null : ((await datasetsByIds(ctx.conn, ctx.sandbox.id, [id])).get(id) ?? null);
    },
  }),
  datasets: t.connection(
    {
      type: DatasetRef,
      description: 'The datasets of the sandbox, newest first.',
      complexity: connectionComplexity,
      resolve: async (_r, args, ctx) => toConnection(await listDatasets(ctx.conn, ctx.sandbox.id, args)),
    },
    { name: 'DatasetConnection', description: 'A page of datasets.' },
    { name: 'DatasetEdge', description: 'A dataset in a page, with its cursor.' },
  ),
}));

builder.mutationFields((t) => ({
  deleteDataset: t.globalID({
    nullable: true,
    description:
      'Deletes a dataset with its files and rows; CONFLICT while an export into it is queued or running. Returns its id.',
    args: { id: t.arg.id({ required: true, description: 'The global id of the dataset.' }) },
    resolve: async (_r, args, ctx) => ({
      type: 'Dataset',
      id: await deleteDataset(ctx.conn, ctx.app.dataDir, ctx.sandbox.id, requireId(args.id, 'Dataset')),
    }),
  }),
}));
