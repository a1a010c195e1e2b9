/**
 * The kinds of whole job a node runs in its third slot (cluster-whole-jobs.ts), and how: a
 * definition-change dry run on any node; an ingestion run only on a node with the shared data
 * directory its staged upload lives in.
 */
import type { JobKind } from '../jobs/job-types.js';
import { DRY_RUN_KIND, runClusterDryRun } from './cluster-dry-run.js';
import { INGESTION_KIND, runClusterIngestion } from './cluster-ingestion-run.js';
import type { WholeJobRunner } from './cluster-whole-jobs.js';

export function wholeJobRunners(dataDir: string | undefined): Partial<Record<JobKind, WholeJobRunner>> {
  return dataDir
    ? { [DRY_RUN_KIND]: runClusterDryRun, [INGESTION_KIND]: runClusterIngestion }
    : { [DRY_RUN_KIND]: runClusterDryRun };
}
