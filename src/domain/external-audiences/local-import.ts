/**
 * An ingestion run done by the calling process (`segql import`) instead of a server's runner: the
 * same staging, job row and task. The job is created PROCESSING, so a server on the same data
 * directory leaves it alone; if this process dies, that server's next start re-runs it from the
 * staged file, as it does for its own runs.
 */
import { createReadStream, rmSync } from 'node:fs';
import { basename } from 'node:path';
import type { Connection } from '../../db/index.js';
import { writeUnit } from '../../db/unit.js';
import { conflict, notFound } from '../errors.js';
import { encodeGlobalId } from '../ids.js';
import { failureFields } from '../jobs/job-failure.js';
import { asKind, insertJob, jobById, updateJob } from '../jobs/job-store.js';
import { runJobTask } from '../jobs/task.js';
import { activeIngestionRun, findExternalAudience } from './external-audiences.js';
import { type IngestionMode, type IngestionProgress, type IngestionRun, planIngestion } from './ingestion-run.js';
import ingestionTask from './ingestion-task.js';
import { stageUpload } from './upload-staging.js';

export interface LocalImport {
  sandboxId: number;
  /** The external audience's externalId or name. */
  audience: string;
  file: string;
  mode: IngestionMode;
  onProgress?: (progress: IngestionProgress) => void;
}

/** Runs one list into an external audience here and now; returns the finished run (FAILED ones included). */
export async function importList(conn: Connection, dataDir: string, request: LocalImport): Promise<IngestionRun> {
  const external = await findExternalAudience(conn, request.sandboxId, request.audience);
  if (!external) throw notFound(`No external audience has the externalId or name "${request.audience}"`);
  const staged = await stageUpload(dataDir, createReadStream(request.file), {
    fileName: basename(request.file),
    shape: {
      fields: external.fields,
      identityField: external.identityField,
      identityNamespace: external.identityNamespace,
    },
  });
  const now = Date.now();
  let job: IngestionRun;
  try {
    job = await writeUnit(conn, async (tx) => {
      const active = await activeIngestionRun(tx, request.sandboxId, external.id);
      if (active !== undefined) {
        throw conflict(
          `Ingestion run "${encodeGlobalId('IngestionRun', active)}" of this audience has not ended yet; one run at a time per audience`,
        );
      }
      const queued = await insertJob(tx, request.sandboxId, 'INGESTION', {
        externalAudienceId: external.id,
        audienceId: external.audienceId,
        mode: request.mode,
        format: staged.format,
        upload: staged.path,
        fileName: basename(request.file),
        bytes: staged.bytes,
        at: null,
        now,
      });
      await updateJob(tx, queued.id, { status: 'PROCESSING', startedAt: now, attempts: 1 });
      return queued;
    });
  } catch (err) {
    rmSync(staged.path, { force: true });
    throw err;
  }
  try {
    runJobTask(conn, job.id, ingestionTask, await planIngestion(conn, job, now), {
      progress: (p) => request.onProgress?.(p),
      cancelled: () => false,
    });
  } catch (err) {
    await updateJob(conn, job.id, { status: 'FAILED', ...failureFields(err), finishedAt: Date.now() });
  }
  return asKind((await jobById(conn, job.id))!, 'INGESTION');
}
