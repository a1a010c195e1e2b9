/**
 * The kinds of whole job a node runs in its third slot (cluster-whole-jobs.ts), and how: a
 * definition-change dry run on any node; an ingestion run only on a node with the shared data
 * directory its staged upload lives in, which also removes the staged files of runs that failed
 * or were cancelled, as the single-process kind's sweep does.
 */
import { removeFinishedUploads } from '../external-audiences/ingestion-run.js';
import { DRY_RUN_KIND, runClusterDryRun } from './cluster-dry-run.js';
import { INGESTION_KIND, runClusterIngestion } from './cluster-ingestion-run.js';
import type { WholeJobKinds } from './cluster-whole-jobs.js';

export function wholeJobRunners(dataDir: string | undefined): WholeJobKinds {
  if (!dataDir) return { runners: { [DRY_RUN_KIND]: runClusterDryRun } };
  return {
    runners: { [DRY_RUN_KIND]: runClusterDryRun, [INGESTION_KIND]: runClusterIngestion },
    housekeeping: (store) => removeFinishedUploads(store),
  };
}
