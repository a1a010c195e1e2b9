/**
 * Runs an external audience's CSV list through the ingestion task on the calling thread, as
 * a job worker would: the job queued and marked PROCESSING, the plan the runner would make, the
 * task run to its end (it throws what the task throws). The list's identity column is `email`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Connection } from '../../src/db/index.js';
import type { ExternalAudience } from '../../src/domain/external-audiences/external-audiences.js';
import type { IngestionPlan } from '../../src/domain/external-audiences/ingestion-run.js';
import ingestionTask from '../../src/domain/external-audiences/ingestion-task.js';
import { insertJob, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';

export async function runListIngestion(
  conn: Connection,
  sandboxId: number,
  external: Pick<ExternalAudience, 'id' | 'audienceId' | 'fields'>,
  options: { dir: string; name: string; text: string; now: number },
): Promise<{ jobId: number; upload: string }> {
  const { text, now } = options;
  const upload = join(options.dir, options.name);
  writeFileSync(upload, text);
  const job = await insertJob(conn, sandboxId, 'INGESTION', {
    externalAudienceId: external.id,
    audienceId: external.audienceId,
    mode: 'APPEND',
    format: 'CSV',
    upload,
    fileName: null,
    bytes: text.length,
    at: null,
  });
  await updateJob(conn, job.id, { status: 'PROCESSING' });
  const plan: IngestionPlan = {
    jobId: job.id,
    sandboxId,
    audienceId: external.audienceId,
    mode: 'APPEND',
    format: 'CSV',
    upload,
    bytes: text.length,
    now,
    fields: external.fields,
    identityField: 'email',
    identityNamespace: 'email',
  };
  runJobTask(conn, job.id, ingestionTask, plan, { progress: () => {}, cancelled: () => false });
  return { jobId: job.id, upload };
}
