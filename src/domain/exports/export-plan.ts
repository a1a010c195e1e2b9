import type { MembershipStatus } from '../membership-statuses.js';
import type { ExportFormat } from './datasets.js';
import type { AttributeColumn } from './export-columns.js';

/** What one export writes, fixed when it starts (plain data: it crosses to the worker thread). */
export interface ExportPlan {
  jobId: number;
  sandboxId: number;
  datasetId: number;
  /** The dataset's folder. */
  dir: string;
  /** The evaluation instant: the end of a CHANGES window, and where the next one starts. */
  now: number;
  format: ExportFormat;
  mode: 'FULL' | 'CHANGES';
  /** Start of the CHANGES window (exclusive). */
  since: number | null;
  audiences: { audienceId: number; globalId: string; statuses: MembershipStatus[] }[];
  columns: AttributeColumn[];
  /** No `fields` asked for: the record keeps the whole attribute document. */
  allFields: boolean;
  fromIngestTimestamp: number | null;
  emptyAudienceFilter: boolean;
  audiencePerFile: boolean;
  notes: string[];
}
