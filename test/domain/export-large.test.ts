import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { createManualAudience } from '../../src/domain/audiences.js';
import { seedDemoData } from '../../src/domain/demo-data.js';
import { type ExportFormat, insertDataset } from '../../src/domain/exports/datasets.js';
import { exportJobKind } from '../../src/domain/exports/export-job.js';
import { runExport } from '../../src/domain/exports/export-task.js';
import { recordsFileName } from '../../src/domain/exports/record-index.js';
import { Cancelled } from '../../src/domain/jobs/cancelled.js';
import type { JobServices } from '../../src/domain/jobs/job-services.js';
import { insertJob, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';

// Exports whose files outgrow the sink's 1 MiB buffer, so a thread writes, hashes and counts them.
const PROFILES = 4000;
const dir = mkdtempSync(join(tmpdir(), 'segql-export-large-'));
let conn: Connection;
let sandboxId: number;
let audienceId: number;
let exports = 0;

beforeAll(async () => {
  conn = openDatabase(join(dir, 'segql.db'));
  sandboxId = (await ensureSandbox(conn, 'prod')).id;
  seedDemoData(conn, sandboxId, { profiles: PROFILES, eventsPerProfile: 0, seed: 7 });
  audienceId = (await createManualAudience(conn, sandboxId, { name: 'everyone' })).id;
  conn.sqlite
    .prepare(
      `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at)
       SELECT sandbox_id, ?, id, 'REALIZED', 1733356800123 + id, 1 FROM profiles WHERE sandbox_id = ?`,
    )
    .run(audienceId, sandboxId);
});
afterAll(() => {
  conn.close();
  rmSync(dir, { recursive: true, force: true });
});

async function exportAll(format: ExportFormat, cancelled: () => boolean = () => false) {
  const dataset = await insertDataset(conn, sandboxId, `large-${format}-${++exports}`, format);
  const job = await insertJob(conn, sandboxId, 'EXPORT', {
    audiences: [{ audienceId, statuses: ['REALIZED', 'EXISTING'] }],
    fields: null,
    fromIngestTimestamp: null,
    emptyAudienceFilter: false,
    mode: 'FULL',
    changesSince: null,
    datasetId: dataset.id,
    format,
    audiencePerFile: false,
    evaluateFirst: false,
    at: null,
  });
  const started = await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
  const plan = await exportJobKind.plan(started as never, Date.now(), { conn, dataDir: dir } as JobServices);
  const run = () => runJobTask(conn, job.id, runExport, plan, { progress: () => {}, cancelled });
  return { run, plan, jobId: job.id, datasetId: dataset.id };
}

/** Rows per namespace straight from the tables. */
function namespaceTruth(): Record<string, number> {
  const rows = conn.sqlite
    .prepare(
      `SELECT i.namespace AS ns, count(DISTINCT i.profile_id) AS n FROM identities i
       JOIN memberships m ON m.profile_id = i.profile_id AND m.audience_id = ? GROUP BY i.namespace`,
    )
    .all(audienceId) as { ns: string; n: number }[];
  return Object.fromEntries(rows.map((r) => [r.ns, r.n]));
}

describe('a large export', () => {
  it('writes NDJSON through its thread: hash of the bytes, namespace counts, marks at line starts', async () => {
    const { run, plan, datasetId } = await exportAll('NDJSON');
    const result = run();
    const file = result.files[0]!;
    const bytes = readFileSync(join(plan.dir, file.name));
    expect(bytes.length).toBeGreaterThan(2 << 20);
    expect(file.bytes).toBe(bytes.length);
    expect(file.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(result.metrics.totalExportedProfileCounter).toBe(PROFILES);
    expect(result.metrics.exportedProfileByNamespaceCounter).toEqual(namespaceTruth());

    const text = bytes.toString('utf8');
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(PROFILES);
    const ids = conn.sqlite
      .prepare('SELECT profile_id FROM memberships WHERE audience_id = ? ORDER BY profile_id')
      .pluck()
      .all(audienceId) as number[];
    const attributes = conn.sqlite.prepare('SELECT json(attributes) FROM profiles WHERE id = ?').pluck();
    lines.forEach((line, k) => {
      const row = JSON.parse(line);
      expect(row.qualifiedAt).toBe(new Date(1733356800123 + ids[k]!).toISOString());
      if (k % 97 === 0) expect(row.attributes).toEqual(JSON.parse(attributes.get(ids[k]) as string));
    });
    const marks = conn.sqlite
      .prepare('SELECT row, file, offset FROM dataset_record_marks WHERE dataset_id = ? ORDER BY row')
      .all(datasetId) as { row: number; file: string; offset: number }[];
    expect(marks.map((m) => m.row)).toEqual([0, 1000, 2000, 3000]);
    for (const m of marks) {
      expect(m.file).toBe(file.name);
      expect(bytes.subarray(m.offset).toString('utf8').split('\n', 1)[0]).toBe(lines[m.row]);
    }
  });

  it('counts namespaces from the records file of a CSV export', async () => {
    const { run, plan, jobId } = await exportAll('CSV');
    const result = run();
    expect(result.metrics.exportedProfileByNamespaceCounter).toEqual(namespaceTruth());
    const file = result.files[0]!;
    const bytes = readFileSync(join(plan.dir, file.name));
    expect(file.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    const records = readFileSync(join(plan.dir, recordsFileName(jobId)), 'utf8').split('\n');
    expect(records).toHaveLength(PROFILES + 1);
  });

  it('leaves no file behind when cancelled while its threads write', async () => {
    let checks = 0;
    // Cancelled at the third check (every 1,000 rows): past the point where both files have threads.
    const { run, plan } = await exportAll('CSV', () => ++checks >= 3);
    expect(run).toThrow(Cancelled);
    expect(readdirSync(plan.dir)).toEqual([]);
  });
});
