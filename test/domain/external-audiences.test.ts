import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/config.js';
import { openDatabase } from '../../src/db/index.js';
import { wholeJobRunners } from '../../src/domain/cluster/cluster-job-kinds.js';
import { EventBus } from '../../src/domain/events.js';
import { createExternalAudience } from '../../src/domain/external-audiences/external-audiences.js';
import { ingestionRunKind } from '../../src/domain/external-audiences/ingestion-run.js';
import ingestionTask from '../../src/domain/external-audiences/ingestion-task.js';
import { CsvRecords, type ListRecord } from '../../src/domain/external-audiences/list-records.js';
import { insertJob, jobById, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';
import { WorkerLanes } from '../../src/domain/jobs/worker-thread.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { pgAdminUrl, pgCopyOf } from '../db/pg-test-database.js';
import { runListIngestion } from './list-ingestion.js';

const DAY = 86_400_000;
const NOW = Date.parse('2026-11-28T12:00:00Z');
const dir = mkdtempSync(join(tmpdir(), 'segql-external-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function csv(text: string, chunk = 7): ListRecord[] {
  const out: ListRecord[] = [];
  const reader = new CsvRecords((r) => out.push(r));
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += chunk) reader.push(bytes.subarray(i, i + chunk));
  reader.end();
  return out;
}

describe('reading a CSV list', () => {
  it('keeps a quoted field that spans lines as one record at its first line', () => {
    expect(csv('a,b\n"x\ny",2\nz,3\n')).toEqual([
      { line: 1, values: ['a', 'b'] },
      { line: 2, values: ['x\ny', '2'] },
      { line: 4, values: ['z', '3'] },
    ]);
  });

  it('reports a quote that never closes on its own line and reads on from the next', () => {
    expect(csv('a,"b\nc,d\ne,"f""g"\n')).toEqual([
      { line: 1, error: 'Broken quoting: a quote opened on this line is never closed' },
      { line: 2, values: ['c', 'd'] },
      { line: 3, values: ['e', 'f"g'] },
    ]);
  });

  it('does not let two broken quotes pair up: both lines are reported, the line between is read', () => {
    const records = csv('a,"b\nc,d\ne"f\n');
    expect(records).toEqual([
      { line: 1, error: 'Broken quoting: a quote opened on this line is never closed' },
      { line: 2, values: ['c', 'd'] },
      { line: 3, error: 'Broken quoting: a quote opened on this line is never closed' },
    ]);
  });
});

async function setup(name: string) {
  const conn = openDatabase(join(dir, `${name}.db`));
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  const external = await createExternalAudience(
    conn,
    sandboxId,
    {
      name,
      namespace: 'crm',
      ttlInDays: 10,
      fields: [
        { name: 'email', type: 'STRING', identityNamespace: 'email' },
        { name: 'points', type: 'NUMBER', identityNamespace: null },
      ],
    },
    NOW,
  );
  const run = async (text: string, now: number): Promise<{ status: string; error?: string }> => {
    let done: { jobId: number; upload: string };
    try {
      done = await runListIngestion(conn, sandboxId, external, { dir, name: `${name}-${now}.csv`, text, now });
    } catch (err) {
      return { status: 'FAILED', error: (err as Error).message };
    }
    expect(existsSync(done.upload)).toBe(false);
    return { status: (await jobById(conn, done.jobId))!.status };
  };
  const statuses = () =>
    conn.sqlite
      .prepare(
        `SELECT i.value AS email, m.status FROM memberships m JOIN identities i ON i.profile_id = m.profile_id
         WHERE m.audience_id = ? ORDER BY i.value`,
      )
      .all(external.audienceId) as { email: string; status: string }[];
  return { conn, sandboxId, external, run, statuses };
}

describe('member expiry', () => {
  it('exits members ttlInDays after the last run that listed them, through the kind sweep, and not before', async () => {
    const { conn, sandboxId, run, statuses } = await setup('ttl');
    ingestProfiles(conn, sandboxId, [
      { identities: [{ namespace: 'email', id: 'old@x.com' }], attributes: {} },
      { identities: [{ namespace: 'email', id: 'new@x.com' }], attributes: {} },
    ]);
    expect((await run('email,points\nold@x.com,1\nnew@x.com,2\n', NOW)).status).toBe('SUCCEEDED');
    // Five days later new@x.com is listed again; old@x.com is not.
    expect((await run('email,points\nnew@x.com,3\n', NOW + 5 * DAY)).status).toBe('SUCCEEDED');
    const lanes = new WorkerLanes();
    const services = {
      conn,
      bus: new EventBus(),
      log: pino({ level: 'silent' }),
      limits: DEFAULT_LIMITS,
      lanes,
      dataDir: dir,
    };
    try {
      await ingestionRunKind.sweep?.(services, NOW + 10 * DAY - 1);
      expect(statuses()).toEqual([
        { email: 'new@x.com', status: 'EXISTING' },
        { email: 'old@x.com', status: 'REALIZED' },
      ]);
      await ingestionRunKind.sweep?.(services, NOW + 10 * DAY);
      expect(statuses()).toEqual([
        { email: 'new@x.com', status: 'EXISTING' },
        { email: 'old@x.com', status: 'EXITED' },
      ]);
      const history = conn.sqlite
        .prepare("SELECT at, from_status AS fromStatus, cause FROM membership_history WHERE to_status = 'EXITED'")
        .all();
      expect(history).toEqual([{ at: NOW + 10 * DAY, fromStatus: 'REALIZED', cause: 'expiry' }]);
      await ingestionRunKind.sweep?.(services, NOW + 15 * DAY);
      expect(statuses().map((s) => s.status)).toEqual(['EXITED', 'EXITED']);
      expect(conn.sqlite.prepare('SELECT size FROM audiences').pluck().get()).toBe(0);
      // A row past its TTL no longer waits for its profile either.
      expect(conn.sqlite.prepare('SELECT count(*) FROM external_members').pluck().get()).toBe(0);
    } finally {
      await lanes.close();
      conn.close();
    }
  });

  it.skipIf(!pgAdminUrl)("exits the same members on PostgreSQL through a cluster node's housekeeping", async () => {
    const { conn, sandboxId, run, statuses, external } = await setup('ttl-pg');
    ingestProfiles(conn, sandboxId, [
      { identities: [{ namespace: 'email', id: 'old@x.com' }], attributes: {} },
      { identities: [{ namespace: 'email', id: 'new@x.com' }], attributes: {} },
    ]);
    expect((await run('email,points\nold@x.com,1\nnew@x.com,2\n', NOW)).status).toBe('SUCCEEDED');
    expect((await run('email,points\nnew@x.com,3\n', NOW + 5 * DAY)).status).toBe('SUCCEEDED');
    const pgDb = await pgCopyOf(conn.sqlite, 'member_expiry');
    const { housekeeping } = wholeJobRunners(undefined);
    const pgStatuses = async () =>
      (
        await pgDb.conn.pool.query(
          `SELECT i.value AS email, m.status FROM memberships m JOIN identities i ON i.profile_id = m.profile_id
           WHERE m.audience_id = $1 ORDER BY i.value COLLATE "C"`,
          [external.audienceId],
        )
      ).rows;
    try {
      await housekeeping!(pgDb.conn, NOW + 10 * DAY - 1);
      expect(await pgStatuses()).toEqual(statuses());
      expect((await pgStatuses()).map((s) => s.status)).toEqual(['EXISTING', 'REALIZED']);
      await housekeeping!(pgDb.conn, NOW + 10 * DAY);
      // Two nodes' housekeeping at once: the ingest lock orders them, and the second finds nothing.
      await Promise.all([housekeeping!(pgDb.conn, NOW + 10 * DAY), housekeeping!(pgDb.conn, NOW + 10 * DAY)]);
      expect((await pgStatuses()).map((s) => s.status)).toEqual(['EXISTING', 'EXITED']);
      const history = await pgDb.conn.pool.query(
        `SELECT at, from_status AS "fromStatus", cause FROM membership_history WHERE to_status = 'EXITED'`,
      );
      expect(history.rows).toEqual([{ at: NOW + 10 * DAY, fromStatus: 'REALIZED', cause: 'expiry' }]);
      const size = await pgDb.conn.pool.query('SELECT size FROM audiences WHERE id = $1', [external.audienceId]);
      expect(size.rows[0].size).toBe(1);
    } finally {
      await pgDb.drop();
      conn.close();
    }
  });

  it('fails a run whose upload is gone, with the reason', async () => {
    const { conn, sandboxId, external } = await setup('gone');
    const job = await insertJob(conn, sandboxId, 'INGESTION', {
      externalAudienceId: external.id,
      audienceId: external.audienceId,
      mode: 'REPLACE',
      format: 'CSV',
      upload: join(dir, 'missing.csv'),
      fileName: null,
      bytes: 10,
      at: null,
    });
    await updateJob(conn, job.id, { status: 'PROCESSING' });
    expect(() =>
      runJobTask(
        conn,
        job.id,
        ingestionTask,
        {
          jobId: job.id,
          sandboxId,
          audienceId: external.audienceId,
          mode: 'REPLACE',
          format: 'CSV',
          upload: join(dir, 'missing.csv'),
          bytes: 10,
          now: NOW,
          fields: external.fields,
          identityField: 'email',
          identityNamespace: 'email',
        },
        { progress: () => {}, cancelled: () => false },
      ),
    ).toThrow('The uploaded file of this run is gone (removed from the data directory); start the run again');
    conn.close();
  });

  it('fails a run with no usable row, keeping its errors', async () => {
    const { conn, run } = await setup('unusable');
    expect(await run('email,points\n,1\nx@x.com,many\n', NOW)).toEqual({
      status: 'FAILED',
      error: "Nothing usable: all 2 rows failed (see the run's errors)",
    });
    expect(conn.sqlite.prepare('SELECT line, message FROM ingestion_errors ORDER BY line').all()).toEqual([
      { line: 2, message: 'The identity column "email" is empty' },
      { line: 3, message: '"many" in column "points" is not a NUMBER' },
    ]);
    conn.close();
  });
});
