import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { createManualAudience } from '../../src/domain/audiences.js';
import { insertJob, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';
import { addAudienceMembers } from '../../src/domain/memberships.js';
import { type PreviewProgress, runPreviewTask } from '../../src/domain/previews/preview-sampling.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';

const NOW = Date.parse('2026-11-28T00:00:00Z');

/** 6,000 profiles, all with an email, every third with a phone; members of "VIP": the first 3,000. */
async function store() {
  const conn = openDatabase(':memory:');
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  const records = Array.from({ length: 6000 }, (_, i) => ({
    identities: [
      { namespace: 'email', id: `p${i}@example.com` },
      ...(i % 3 === 0 ? [{ namespace: 'phone', id: `+46${i}` }] : []),
    ],
    attributes: { loyalty: { points: i } },
  }));
  ingestProfiles(conn, sandboxId, records);
  const vip = await createManualAudience(conn, sandboxId, { name: 'VIP' });
  await addAudienceMembers(
    conn,
    sandboxId,
    vip.id,
    records.slice(0, 3000).map((r) => r.identities[0]!),
  );
  return { conn, sandboxId };
}

async function preview(conn: Awaited<ReturnType<typeof store>>['conn'], sandboxId: number, expressionText: string) {
  const job = await insertJob(conn, sandboxId, 'PREVIEW', {
    expression: { format: 'PQL_TEXT', value: expressionText },
    expressionText,
    definitionId: null,
    sampleSize: null,
    confidenceLevel: 0.95,
    at: NOW,
    seed: 7,
  });
  await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
  const reports: PreviewProgress[] = [];
  const { estimate } = runJobTask(
    conn,
    job.id,
    runPreviewTask,
    { jobId: job.id, sandboxId, now: NOW, expressionText, sampleSize: null, confidenceLevel: 0.95, seed: 7 },
    { progress: (p) => reports.push(p), cancelled: () => false },
  );
  return { estimate, reports };
}

describe('whole-store previews', () => {
  it('read a random sample first, then count exactly; the namespace shares come from a sample of the hits', async () => {
    const { conn, sandboxId } = await store();
    const { estimate, reports } = await preview(conn, sandboxId, 'loyalty.points >= 1500');
    expect(estimate).toMatchObject({ exact: true, estimatedSize: 4500, profilesRead: 6000 });
    const running = reports.filter((r) => !r.estimate.exact);
    expect(running.length).toBeGreaterThanOrEqual(1);
    expect(running[0]!.estimate.profilesRead).toBe(1000);
    // The last report is the full-sample estimate, before the rows are stored.
    expect(reports.at(-1)!.estimate).toEqual(estimate);
    const byNamespace = Object.fromEntries(estimate.estimatedNamespaceDistribution.map((r) => [r.namespace, r.count]));
    // Every qualifying profile has an email; a third of them (1,500) a phone, estimated from 1,000 of the 4,500.
    expect(byNamespace.email).toBe(4500);
    expect(Math.abs(byNamespace.phone! - 1500)).toBeLessThan(200);
  });

  it('read only a rough random chunk before counting when the definition starts from small stored audiences', async () => {
    const { conn, sandboxId } = await store();
    const { estimate, reports } = await preview(conn, sandboxId, 'inSegment("VIP")');
    expect(estimate).toMatchObject({ exact: true, estimatedSize: 3000 });
    // One small random chunk for a first, rough estimate; then the exact count.
    const running = reports.filter((r) => r.estimate.profilesRead > 0 && !r.estimate.exact);
    expect(new Set(running.map((r) => r.estimate.profilesRead))).toEqual(new Set([250]));
    const byNamespace = Object.fromEntries(estimate.estimatedNamespaceDistribution.map((r) => [r.namespace, r.count]));
    expect(byNamespace.email).toBe(3000);
    expect(Math.abs(byNamespace.phone! - 1000)).toBeLessThan(150);
  });
});
