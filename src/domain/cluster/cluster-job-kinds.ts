/**
 * The kinds of whole job a node runs in its third slot (cluster-whole-jobs.ts), and how: a
 * definition-change dry run on any node; an ingestion run only on a node with the shared data
 * directory its staged upload lives in.
 */
import type { JobKind } from '../jobs/job-types.js';
import { DRY_RUN_KIND, runClusterDryRun } from './cluster-dry-run.js';
import type { WholeJobRunner } from './cluster-whole-jobs.js';

export function wholeJobRunners(_dataDir: string | undefined): Partial<Record<JobKind, WholeJobRunner>> {
  return { [DRY_RUN_KIND]: runClusterDryRun };
}
