/**
 * Two `segql work` processes on one PostgreSQL and one data directory run an ingestion run. The
 * node holding it is killed with SIGKILL mid-run, after it has staged part of the file; the other
 * takes the run back once the lease has passed, reads the file again from the start, and leaves
 * the members, list rows, errors and counts of an uninterrupted run (the single-process task on
 * the same store and the same file). Skipped without SEGQL_TEST_DATABASE_URL.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Connection, openDatabase } from '../../src/db/index.js';
import type { Store } from '../../src/db/store.js';
import { startClusterIngestionRun } from '../../src/domain/cluster/cluster-ingestion-run.js';
import {
  createExternalAudience,
  type ExternalAudience,
} from '../../src/domain/external-audiences/external-audiences.js';
import { type IngestionRun, planIngestion } from '../../src/domain/external-audiences/ingestion-run.js';
import ingestionTask from '../../src/domain/external-audiences/ingestion-task.js';
import { insertJob, jobById, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { type PgTestDatabase, pgAdminUrl, pgCopyOf } from '../db/pg-test-database.js';
import { startWorkNode, stopWorkNodes, until, untilStarted, type WorkNode } from './work-nodes.js';

const LEASE_MS = 2_000;
const NOW = Date.parse('2026-11-28T12:00:00Z');
const PROFILES = 3_000;
/** Rows of the list: enough that staging it takes a few lease renewals. */
const ROWS = 300_000;

function bigList(): string {
  const lines = ['email,points'];
  for (let i = 0; i < ROWS; i++) {
    if (i % 1000 === 7) lines.push(`p${i % PROFILES}@x.com,many`);
    else lines.push(`p${i % (PROFILES * 2)}@x.com,${i}`);
  }
  return `${lines.join('\n')}\n`;
}

describe.skipIf(!pgAdminUrl)(
  'an ingestion run across two segql work processes (PostgreSQL)',
  { timeout: 180_000 },
  () => {
    let dir: string;
    let conn: Connection;
    let sandboxId: number;
    let external: ExternalAudience;
    let db: PgTestDatabase;
    const nodes: WorkNode<{ msg: string }>[] = [];

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'cingest-e2e-'));
      conn = openDatabase(join(dir, 'store.db'));
      sandboxId = (await ensureSandbox(conn, 'prod')).id;
      ingestProfiles(
        conn,
        sandboxId,
        Array.from({ length: PROFILES }, (_, i) => ({
          identities: [{ namespace: 'email', id: `p${i}@x.com` }],
          attributes: {},
        })),
      );
      external = await createExternalAudience(
        conn,
        sandboxId,
        {
          name: 'big list',
          namespace: 'crm',
          ttlInDays: 30,
          fields: [
            { name: 'email', type: 'STRING', identityNamespace: 'email' },
            { name: 'points', type: 'NUMBER', identityNamespace: null },
          ],
        },
        NOW,
      );
      db = await pgCopyOf(conn.sqlite, 'cingest_e2e');
      for (const name of ['n1', 'n2']) {
        nodes.push(
          startWorkNode(name, {
            args: ['--lease-ms', String(LEASE_MS)],
            env: { SEGQL_DATABASE_URL: db.url, SEGQL_DATA_DIR: dir },
          }),
        );
      }
      await untilStarted(nodes);
    }, 120_000);

    afterAll(async () => {
      await stopWorkNodes(nodes);
      conn?.close();
      await db?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** What a run leaves, from either database. */
    async function state(store: Store) {
      const q = (key: string, sqlite: string, postgres: string, params: unknown[]) =>
        store.all<Record<string, unknown>>({ sqlite, postgres, name: `test.e2e.${key}` }, params);
      const a = external.audienceId;
      return {
        members: (
          await q(
            'members',
            'SELECT profile_id AS p, status, payload FROM memberships WHERE audience_id = ? ORDER BY profile_id',
            'SELECT profile_id AS p, status, CAST(payload AS text) AS payload FROM memberships WHERE audience_id = $1 ORDER BY profile_id',
            [a],
          )
        ).map((m) => ({ ...m, payload: JSON.parse(String(m.payload)) })),
        rows: (
          await q(
            'rows',
            'SELECT value, payload FROM external_members WHERE audience_id = ? ORDER BY value',
            'SELECT value, CAST(payload AS text) AS payload FROM external_members WHERE audience_id = $1 ORDER BY value COLLATE "C"',
            [a],
          )
        ).map((r) => ({ ...r, payload: JSON.parse(String(r.payload)) })),
        size: await q('size', 'SELECT size FROM audiences WHERE id = ?', 'SELECT size FROM audiences WHERE id = $1', [
          a,
        ]),
      };
    }

    it('re-runs a run whose node was killed mid-run on the other node, to the state of an uninterrupted run', async () => {
      const text = bigList();
      const started = await startClusterIngestionRun(
        { store: db.conn, dataDir: dir },
        sandboxId,
        external.id,
        {
          file: {
            stream: async function* () {
              yield Buffer.from(text);
            },
            name: 'list.csv',
          },
        },
        'REPLACE',
      );
      // Killed once it has read part of the file (its renewals report how far).
      let holder: string | undefined;
      await until(
        'the run under way',
        async () => {
          const job = (await jobById(db.conn, started.id))!;
          if (job.status === 'PROCESSING' && job.progressDone > 0 && job.progressDone < started.input.bytes) {
            holder = job.leaseOwner ?? undefined;
            return true;
          }
          if (job.status !== 'QUEUED' && job.status !== 'PROCESSING')
            throw new Error(`ended ${job.status} before the kill`);
          return false;
        },
        60_000,
      );
      const victim = nodes.find((n) => n.name === holder)!;
      victim.child.kill('SIGKILL');
      await victim.exited;
      await until(
        'the run re-run by the other node',
        async () => (await jobById(db.conn, started.id))!.status === 'SUCCEEDED',
        120_000,
      );
      const done = (await jobById(db.conn, started.id)) as IngestionRun;
      expect(done.attempts).toBe(2);
      expect(done.leaseOwner).toBeNull();

      // The uninterrupted run: the single-process task on the same store and the same file.
      const upload = join(dir, 'reference.csv');
      writeFileSync(upload, text);
      const job = (await insertJob(conn, sandboxId, 'INGESTION', {
        ...done.input,
        upload,
        at: done.input.now!,
      })) as IngestionRun;
      await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
      const result = runJobTask(conn, job.id, ingestionTask, await planIngestion(conn, job, done.input.now!), {
        progress: () => {},
        cancelled: () => false,
      });
      expect(done.result).toEqual(result);
      expect(result.recordsFailed).toBe(ROWS / 1000);
      const pgState = await state(db.conn);
      expect(pgState.members.length).toBeGreaterThan(PROFILES / 2);
      expect(pgState).toEqual(await state(conn));
      // Its errors, once: the dead attempt wrote none.
      const errors = await db.conn.pool.query('SELECT count(*) AS n FROM ingestion_errors WHERE job_id = $1', [
        done.id,
      ]);
      expect(errors.rows[0].n).toBe(ROWS / 1000);
    });
  },
);
