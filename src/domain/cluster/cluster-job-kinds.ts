/**
 * The kinds of whole job a node runs in its third slot (cluster-whole-jobs.ts), and how: a
 * definition-change dry run on any node; an ingestion run only on a node with the shared data
 * directory its staged upload lives in. Every node's housekeeping does what the single-process
 * ingestion kind's sweep does: exits external audiences' members past their TTL and, with the
 * data directory, removes the staged files of runs that failed or were cancelled.
 */

import type { Store } from '../../db/store.js';
import { removeFinishedUploads } from '../external-audiences/ingestion-run.js';
import { expireExternalMembers } from '../external-audiences/member-expiry.js';
import { DRY_RUN_KIND, runClusterDryRun } from './cluster-dry-run.js';
import { INGESTION_KIND, runClusterIngestion } from './cluster-ingestion-run.js';
import type { WholeJobKinds } from './cluster-whole-jobs.js';

export function wholeJobRunners(dataDir: string | undefined): WholeJobKinds {
  const expire = async (store: Store, now: number) => {
    await expireExternalMembers(store, now);
  };
  if (!dataDir) return { runners: { [DRY_RUN_KIND]: runClusterDryRun }, housekeeping: expire };
  return {
    runners: { [DRY_RUN_KIND]: runClusterDryRun, [INGESTION_KIND]: runClusterIngestion },
    housekeeping: async (store, now) => {
      await expire(store, now);
      await removeFinishedUploads(store);
    },
  };
}
