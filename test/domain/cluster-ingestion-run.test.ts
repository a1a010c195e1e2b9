/**
 * Ingestion runs on cluster nodes reading PostgreSQL leave what the SQLite task leaves on the
 * same store (built in SQLite, copied with pgCopyOf) for the same uploads: the members and their
 * payloads, the history, the list rows, the per-row errors, the audience's size and the run's
 * counts, over a REPLACE run, an APPEND run and a REPLACE run that drops members; a run with
 * nothing usable fails on both with its errors kept. And the queue's lease: two racing claimers
 * take a run once; a holder that stops renewing loses it, a node re-runs it from the file to the
 * same final state, and the old holder's final write is refused. The API's reads (runs, errors)
 * work on the PostgreSQL store. Skipped without SEGQL_TEST_DATABASE_URL.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Connection, openDatabase } from '../../src/db/index.js';
import type { Store } from '../../src/db/store.js';
import { runClusterIngestion, startClusterIngestionRun } from '../../src/domain/cluster/cluster-ingestion-run.js';
import { wholeJobRunners } from '../../src/domain/cluster/cluster-job-kinds.js';
import { type ClusterNode, type NodeEvent, startClusterNode } from '../../src/domain/cluster/cluster-node.js';
import { claimWholeJob, type HeldJob } from '../../src/domain/cluster/cluster-whole-jobs.js';
import {
  createExternalAudience,
  type ExternalAudience,
} from '../../src/domain/external-audiences/external-audiences.js';
import {
  type IngestionMode,
  type IngestionRun,
  type IngestionRunInput,
  listIngestionErrors,
  listIngestionRuns,
  planIngestion,
} from '../../src/domain/external-audiences/ingestion-run.js';
import ingestionTask from '../../src/domain/external-audiences/ingestion-task.js';
import { failureFields } from '../../src/domain/jobs/job-failure.js';
import { insertJob, jobById, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { type PgTestDatabase, pgAdminUrl, pgCopyOf } from '../db/pg-test-database.js';

const DAY = 86_400_000;
const NOW = Date.parse('2026-11-28T12:00:00Z');
const PROFILES = 400;

/** A list of `n` rows from `from`, with bad rows, unknown identities and repeated identities among them. */
function list(from: number, n: number, points: number): string {
  const lines = ['email,points,vip,since'];
  for (let i = from; i < from + n; i++) {
    if (i % 17 === 0) lines.push(`p${i}@x.com,many,true,2026-01-01`);
    else if (i % 23 === 0) lines.push(`,${i},false,2026-01-01`);
    else if (i % 29 === 0) lines.push(`p${i}@x.com,${i},yes,2026-01-01`);
    else if (i % 31 === 0) lines.push(`p${i}@x.com,${i},true,2026-02-30`);
    // No profile has these: kept as list rows, waiting for one.
    else if (i % 11 === 0) lines.push(`nobody${i}@x.com,${i},false,2026-03-01`);
    else lines.push(`p${i}@x.com,${i + points},${i % 2 === 0},2026-0${(i % 9) + 1}-15`);
  }
  // The same identity twice (the later row wins), and two identities of one profile.
  lines.push(`p${from + 1}@x.com,${points + 9999},true,2026-05-05`);
  lines.push(`alt${from + 2}@x.com,${points + 7777},false,2026-06-06`);
  lines.push('"broken,1,true,2026-01-01');
  return `${lines.join('\n')}\n`;
}

/** Keys sorted at every depth (jsonb keeps its own key order). */
function canonical(value: unknown): unknown {
  if (typeof value === 'string' && (value.startsWith('{') || value.startsWith('['))) {
    try {
      return canonical(JSON.parse(value));
    } catch {
      return value;
    }
  }
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

describe.skipIf(!pgAdminUrl)('ingestion runs on cluster nodes (PostgreSQL)', () => {
  // Made in beforeAll: a skipped suite's body still runs to collect its tests.
  let dir: string;
  let conn: Connection;
  let sandboxId: number;
  let external: ExternalAudience;
  let db: PgTestDatabase;
  const nodes: ClusterNode[] = [];
  const events: NodeEvent[] = [];
  let files = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'segql-cingest-'));
    conn = openDatabase(join(dir, 'store.db'));
    sandboxId = (await ensureSandbox(conn, 'prod')).id;
    ingestProfiles(
      conn,
      sandboxId,
      Array.from({ length: PROFILES }, (_, i) => ({
        identities: [
          { namespace: 'email', id: `p${i}@x.com` },
          ...(i % 10 === 2 ? [{ namespace: 'email', id: `alt${i}@x.com` }] : []),
        ],
        attributes: {},
      })),
    );
    external = await createExternalAudience(
      conn,
      sandboxId,
      {
        name: 'crm list',
        namespace: 'crm',
        ttlInDays: 30,
        fields: [
          { name: 'email', type: 'STRING', identityNamespace: 'email' },
          { name: 'points', type: 'NUMBER', identityNamespace: null },
          { name: 'vip', type: 'BOOLEAN', identityNamespace: null },
          { name: 'since', type: 'DATE', identityNamespace: null },
        ],
      },
      NOW,
    );
    db = await pgCopyOf(conn.sqlite, 'cingest');
  }, 120_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    conn?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function upload(text: string): string {
    const path = join(dir, `upload-${files++}.csv`);
    writeFileSync(path, text);
    return path;
  }

  function inputOf(text: string, mode: IngestionMode, at: number): IngestionRunInput {
    return {
      externalAudienceId: external.id,
      audienceId: external.audienceId,
      mode,
      format: 'CSV',
      upload: upload(text),
      fileName: 'list.csv',
      bytes: Buffer.byteLength(text),
      at,
    };
  }

  /** The single-process run, as the job worker runs it: its job as it ended. */
  async function sqliteRun(text: string, mode: IngestionMode, at: number): Promise<IngestionRun> {
    const job = (await insertJob(conn, sandboxId, 'INGESTION', inputOf(text, mode, at))) as IngestionRun;
    await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
    try {
      runJobTask(conn, job.id, ingestionTask, await planIngestion(conn, job, at), {
        progress: () => {},
        cancelled: () => false,
      });
    } catch (err) {
      await updateJob(conn, job.id, { status: 'FAILED', ...failureFields(err), finishedAt: Date.now() });
    }
    return (await jobById(conn, job.id)) as IngestionRun;
  }

  async function startNodes(count: number) {
    for (let i = nodes.length; i < count; i++) {
      nodes.push(
        await startClusterNode({
          pool: db.conn.pool,
          url: db.url,
          node: `node-${i}`,
          leaseMs: 3_000,
          pollMs: 100,
          dataDir: dir,
          onEvent: (event) => events.push(event),
        }),
      );
    }
  }

  async function waitForEnd(jobId: number): Promise<string> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ended = events.find((e) => e.type === 'job-ended' && e.jobId === jobId);
      if (ended?.type === 'job-ended') return ended.end;
      const error = events.find((e) => e.type === 'error');
      if (error?.type === 'error') throw error.error;
      if (Date.now() > deadline) throw new Error(`ingestion run ${jobId} did not end in 60 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function clusterRun(text: string, mode: IngestionMode, at: number): Promise<IngestionRun> {
    await startNodes(2);
    const input = inputOf(text, mode, at);
    const job = await insertJob(db.conn, sandboxId, 'INGESTION', input);
    await waitForEnd(job.id);
    const ended = (await jobById(db.conn, job.id)) as IngestionRun;
    if (ended.status === 'SUCCEEDED') expect(existsSync(input.upload)).toBe(false);
    return ended;
  }

  /** What a run leaves, from either database, with job ids replaced by the run's place in `jobs`. */
  async function state(store: Store, jobs: readonly number[]) {
    // A name per text: PostgreSQL keeps a named statement's first text for the connection.
    const q = (key: string, sqlite: string, postgres: string, params: unknown[]) =>
      store.all<Record<string, unknown>>({ sqlite, postgres, name: `test.state.${key}` }, params);
    const a = external.audienceId;
    const cause = (c: unknown) => String(c).replace(/^job:(\d+)$/, (_, id) => `run:${jobs.indexOf(Number(id))}`);
    const members = await q(
      'members',
      'SELECT profile_id AS p, status, qualified_at AS q, last_evaluated_at AS l, exited_at AS e, payload FROM memberships WHERE audience_id = ? ORDER BY profile_id',
      'SELECT profile_id AS p, status, qualified_at AS q, last_evaluated_at AS l, exited_at AS e, CAST(payload AS text) AS payload FROM memberships WHERE audience_id = $1 ORDER BY profile_id',
      [a],
    );
    const history = await q(
      'history',
      'SELECT profile_id AS p, at, from_status AS f, to_status AS t, cause FROM membership_history WHERE audience_id = ? ORDER BY profile_id, at, to_status',
      'SELECT profile_id AS p, at, from_status AS f, to_status AS t, cause FROM membership_history WHERE audience_id = $1 ORDER BY profile_id, at, to_status',
      [a],
    );
    const rows = await q(
      'rows',
      'SELECT namespace, value, payload, imported_at AS i FROM external_members WHERE audience_id = ? ORDER BY value',
      'SELECT namespace, value, CAST(payload AS text) AS payload, imported_at AS i FROM external_members WHERE audience_id = $1 ORDER BY value COLLATE "C"',
      [a],
    );
    const errors = await q(
      'errors',
      'SELECT job_id AS j, line, message FROM ingestion_errors WHERE job_id IN (SELECT value FROM json_each(?)) ORDER BY job_id, line',
      'SELECT job_id AS j, line, message FROM ingestion_errors WHERE job_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($1 AS jsonb))) ORDER BY job_id, line',
      [JSON.stringify(jobs)],
    );
    const size = await q(
      'size',
      'SELECT size FROM audiences WHERE id = ?',
      'SELECT size FROM audiences WHERE id = $1',
      [a],
    );
    return canonical({
      members,
      history: history.map((h) => ({ ...h, cause: cause(h.cause) })),
      rows,
      errors: errors.map((e) => ({ ...e, j: jobs.indexOf(Number(e.j)) })),
      size,
    });
  }

  const sqliteJobs: number[] = [];
  const clusterJobs: number[] = [];
  const runs = [
    { text: list(0, 300, 0), mode: 'REPLACE', at: NOW },
    { text: list(250, 120, 5), mode: 'APPEND', at: NOW + DAY },
    { text: list(100, 150, 11), mode: 'REPLACE', at: NOW + 2 * DAY },
  ] as const;

  it('leaves the members, history, list rows, errors, size and counts of the SQLite task, run after run', async () => {
    for (const run of runs) {
      const lite = await sqliteRun(run.text, run.mode, run.at);
      const pg = await clusterRun(run.text, run.mode, run.at);
      sqliteJobs.push(lite.id);
      clusterJobs.push(pg.id);
      expect(lite.status).toBe('SUCCEEDED');
      expect(pg.status).toBe('SUCCEEDED');
      expect(pg.result).toEqual(lite.result);
      expect(pg.result!.recordsFailed).toBeGreaterThan(0);
      expect(pg.result!.recordsMatched).toBeGreaterThan(0);
      expect(pg.result!.recordsMatched).toBeLessThan(pg.result!.recordsImported);
      expect(pg.progressDone).toBe(lite.progressDone);
      expect(await state(db.conn, clusterJobs)).toEqual(await state(conn, sqliteJobs));
    }
  }, 120_000);

  it('fails a run with nothing usable on both, keeping its errors', async () => {
    const text = 'email,points,vip,since\n,1,true,2026-01-01\np1@x.com,many,true,2026-01-01\n';
    const lite = await sqliteRun(text, 'APPEND', NOW + 3 * DAY);
    const pg = await clusterRun(text, 'APPEND', NOW + 3 * DAY);
    sqliteJobs.push(lite.id);
    clusterJobs.push(pg.id);
    expect(pg.status).toBe('FAILED');
    expect(pg.error).toBe(lite.error);
    // Its final counts, not a running result whose presence depends on when a renewal came.
    const counts = { recordsRead: 2, recordsImported: 0, recordsMatched: 0, recordsFailed: 2 };
    expect(pg.result).toEqual(counts);
    expect(lite.result).toEqual(counts);
    // Its staged file stays until a node's housekeeping removes the uploads of ended runs.
    const upload = pg.input.upload;
    expect(existsSync(upload)).toBe(true);
    await wholeJobRunners(dir).housekeeping!(db.conn, Date.now());
    expect(existsSync(upload)).toBe(false);
    expect(await state(db.conn, clusterJobs)).toEqual(await state(conn, sqliteJobs));
  }, 60_000);

  it('the API reads a run and its errors from PostgreSQL as from SQLite', async () => {
    const pgRuns = await listIngestionRuns(db.conn, sandboxId, external.id, { first: 10 });
    const liteRuns = await listIngestionRuns(conn, sandboxId, external.id, { first: 10 });
    expect(pgRuns.items.map((r) => [r.status, r.result, r.input.mode])).toEqual(
      liteRuns.items.map((r) => [r.status, r.result, r.input.mode]),
    );
    expect(await pgRuns.totalCount()).toBe(await liteRuns.totalCount());
    const pgErrors = await listIngestionErrors(db.conn, clusterJobs[0]!, { first: 5 });
    const liteErrors = await listIngestionErrors(conn, sqliteJobs[0]!, { first: 5 });
    expect(pgErrors.items).toEqual(liteErrors.items);
    expect(await pgErrors.totalCount()).toBe(await liteErrors.totalCount());
  });

  it('two racing claimers take a queued run once; a holder that stops renewing loses it to a node', async () => {
    // The nodes are stopped for the race, so that only the racers claim.
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    const text = list(40, 200, 23);
    const at = NOW + 4 * DAY;
    const lite = await sqliteRun(text, 'REPLACE', at);
    const input = inputOf(text, 'REPLACE', at);
    const job = await insertJob(db.conn, sandboxId, 'INGESTION', input);
    const claims = await Promise.all(
      [0, 1, 2, 3].map((i) => claimWholeJob(db.conn.pool, ['INGESTION'], `racer-${i}`, 300)),
    );
    const won = claims.filter((c) => c !== undefined) as HeldJob[];
    expect(won).toHaveLength(1);
    expect(won[0]!.jobId).toBe(job.id);
    expect(won[0]!.input.now).toBe(at);
    // The winner says nothing more (killed, paused): its lease passes; a node takes the run.
    await startNodes(2);
    expect(await waitForEnd(job.id)).toBe('succeeded');
    const done = (await jobById(db.conn, job.id)) as IngestionRun;
    expect(done.attempts).toBe(2);
    expect(done.result).toEqual(lite.result);
    sqliteJobs.push(lite.id);
    clusterJobs.push(job.id);
    expect(await state(db.conn, clusterJobs)).toEqual(await state(conn, sqliteJobs));
    // The old holder, back with a copy of the file: its final write finds its lease gone.
    writeFileSync(input.upload, text);
    const winner = `racer-${claims.findIndex((c) => c !== undefined)}`;
    expect(await runClusterIngestion(db.conn.pool, won[0]!, { node: winner, leaseMs: 3_000 })).toBe('lost');
    expect(await state(db.conn, clusterJobs)).toEqual(await state(conn, sqliteJobs));
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
  }, 120_000);

  it('starts a run as the API would on PostgreSQL: staged, one at a time per audience, run by a node', async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    const text = list(10, 90, 31);
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
      'APPEND',
    );
    expect(started.status).toBe('QUEUED');
    expect(started.input.bytes).toBe(Buffer.byteLength(text));
    // A second run of the audience waits for none: it is refused while the first has not ended.
    await expect(
      startClusterIngestionRun({ store: db.conn, dataDir: dir }, sandboxId, external.id, {
        rows: [{ email: 'p1@x.com' }],
      }),
    ).rejects.toThrow(/one run at a time/);
    await startNodes(2);
    expect(await waitForEnd(started.id)).toBe('succeeded');
    const done = (await jobById(db.conn, started.id)) as IngestionRun;
    const lite = await sqliteRun(text, 'APPEND', done.input.now!);
    expect(done.result).toEqual(lite.result);
    sqliteJobs.push(lite.id);
    clusterJobs.push(done.id);
    expect(await state(db.conn, clusterJobs)).toEqual(await state(conn, sqliteJobs));
  }, 120_000);
});
