/**
 * Previews on cluster nodes reading PostgreSQL give the single-process SQLite preview's answer on
 * the same store with the same seed: the same estimates (size, interval, standard error,
 * namespace distribution, profiles read), the same running estimates, and the same qualifying
 * profiles stored, for whole-store previews (random chunks, then an exact scan) and sampled ones,
 * over the twenty reference definitions. And the queue: racing claimers get a preview once, a
 * preview whose node stopped renewing is taken back and finished by another (the old holder's
 * final write refused), a cancel stops one queued or running, and the API's getters read the
 * results from the PostgreSQL store. Skipped without SEGQL_TEST_DATABASE_URL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { cancelClusterJob } from '../../src/domain/cluster/cluster-cancel.js';
import { type ClusterNode, type NodeEvent, startClusterNode } from '../../src/domain/cluster/cluster-node.js';
import {
  claimPreviewJob,
  enqueueClusterPreviewJob,
  purgeExpiredPreviewsPg,
  requeueExpiredPreviews,
  runClusterPreview,
} from '../../src/domain/cluster/cluster-preview-job.js';
import { insertJob, jobById, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';
import type { Estimate } from '../../src/domain/previews/estimate.js';
import { samplePreviewPg } from '../../src/domain/previews/pg-preview-sampling.js';
import type { PreviewProgress } from '../../src/domain/previews/preview-run.js';
import { runPreviewTask } from '../../src/domain/previews/preview-sampling.js';
import {
  isStale,
  latestDefinitionPreview,
  listPreviewResults,
  type PreviewInput,
} from '../../src/domain/previews/previews.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { type PgTestDatabase, pgAdminUrl, pgCopyOf } from '../db/pg-test-database.js';
import { buildSegmentStore, type SegmentStore, STORE_NOW } from '../db/segment-store.js';

/** An estimate without the instant it was computed at, which no two runs share. */
const figures = ({ computedAt: _, ...rest }: Estimate) => rest;

/** The single-process preview of `input`, as the job worker runs it on SQLite. */
async function previewOnSqlite(
  conn: Connection,
  sandboxId: number,
  input: Required<Pick<PreviewInput, 'sampleSize' | 'seed'>> & { text: string },
) {
  const stored = {
    expression: { format: 'PQL_TEXT' as const, value: input.text },
    expressionText: input.text,
    definitionId: null,
    sampleSize: input.sampleSize,
    confidenceLevel: 0.95,
    at: STORE_NOW,
    seed: input.seed!,
  };
  const job = await insertJob(conn, sandboxId, 'PREVIEW', stored);
  await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
  const reports: PreviewProgress[] = [];
  const result = runJobTask(
    conn,
    job.id,
    runPreviewTask,
    { jobId: job.id, sandboxId, now: STORE_NOW, ...stored },
    { progress: (p) => reports.push(p), cancelled: () => false },
  );
  const row = conn.sqlite
    .prepare('SELECT profile_ids AS ids, count FROM preview_results WHERE job_id = ?')
    .get(job.id) as {
    ids: Buffer;
    count: number;
  };
  return { jobId: job.id, result, reports, ids: row.ids, count: row.count };
}

describe.runIf(!pgAdminUrl)('previews on cluster nodes (PostgreSQL)', () => {
  it.skip('skipped: set SEGQL_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run them', () => {});
});

describe.skipIf(!pgAdminUrl)('previews on cluster nodes (PostgreSQL)', () => {
  let store: SegmentStore;
  let db: PgTestDatabase;

  beforeAll(async () => {
    store = await buildSegmentStore('cluster_preview', 3_000, 4);
    // Audiences with members, for definitions that name them and for cheap exact counts.
    await store.runSqliteJob();
    db = await pgCopyOf(store.conn.sqlite, 'cprev');
  }, 120_000);

  afterAll(async () => {
    store?.close();
    await db?.drop();
  });

  const sqlitePreview = (input: Required<Pick<PreviewInput, 'sampleSize' | 'seed'>> & { text: string }) =>
    previewOnSqlite(store.conn, store.sandboxId, input);

  /** Queues a preview on PostgreSQL. */
  function enqueue(text: string, sampleSize: number | null, seed: number) {
    return enqueueClusterPreviewJob(db.conn, store.sandboxId, {
      expression: { format: 'PQL_TEXT', value: text },
      sampleSize,
      seed,
      at: STORE_NOW,
    });
  }

  async function pgResults(jobId: number) {
    const { rows } = await db.conn.pool.query<{ ids: Buffer; count: number }>(
      'SELECT profile_ids AS ids, count FROM preview_results WHERE job_id = $1',
      [jobId],
    );
    return rows[0];
  }

  describe('the queue', () => {
    let text = '';

    beforeAll(() => {
      text = store.definitions[0]!.expression.value;
    });

    it('gives a preview to one of several racing claimers', async () => {
      const jobId = await enqueue(text, null, 11);
      const claims = await Promise.all(
        Array.from({ length: 6 }, (_, i) => claimPreviewJob(db.conn.pool, `racer-${i}`, 10_000)),
      );
      const held = claims.filter((c) => c !== undefined);
      expect(held.map((h) => h.jobId)).toEqual([jobId]);
      expect(held[0]!.attempts).toBe(1);
      expect(held[0]!.input.now).toBe(STORE_NOW);
      const winner = claims.findIndex((c) => c !== undefined);
      const end = await runClusterPreview(db.conn.pool, held[0]!, { node: `racer-${winner}`, leaseMs: 10_000 });
      expect(end).toBe('succeeded');
      expect((await jobById(db.conn, jobId))?.status).toBe('SUCCEEDED');
    });

    it('takes back a preview whose node stopped renewing; the other node finishes it, the old one is refused', async () => {
      const jobId = await enqueue(text, null, 12);
      const dead = (await claimPreviewJob(db.conn.pool, 'dead', 100))!;
      expect(dead.jobId).toBe(jobId);
      await new Promise((r) => setTimeout(r, 200));
      expect(await requeueExpiredPreviews(db.conn.pool)).toEqual([{ jobId, status: 'QUEUED' }]);
      const alive = (await claimPreviewJob(db.conn.pool, 'alive', 10_000))!;
      expect(alive).toMatchObject({ jobId, attempts: 2 });
      expect(await runClusterPreview(db.conn.pool, alive, { node: 'alive', leaseMs: 10_000 })).toBe('succeeded');
      const finished = (await jobById(db.conn, jobId))!;
      // The node that stopped renewing wakes and runs to its final write: refused, nothing changed.
      expect(await runClusterPreview(db.conn.pool, dead, { node: 'dead', leaseMs: 100 })).toBe('lost');
      expect(await jobById(db.conn, jobId)).toEqual(finished);
      // The answer is the uninterrupted one: SQLite's, with the same seed.
      const sqlite = await sqlitePreview({ text, sampleSize: null, seed: 12 });
      expect(figures((finished.result as { estimate: Estimate }).estimate)).toEqual(figures(sqlite.result.estimate));
      expect((await pgResults(jobId))!.ids.equals(sqlite.ids)).toBe(true);
    });

    it('fails a preview lost three times', async () => {
      const jobId = await enqueue(text, null, 13);
      for (let i = 0; i < 3; i++) {
        expect(await claimPreviewJob(db.conn.pool, `flaky-${i}`, 50)).toMatchObject({ jobId, attempts: i + 1 });
        await new Promise((r) => setTimeout(r, 100));
        const swept = await requeueExpiredPreviews(db.conn.pool);
        expect(swept).toEqual([{ jobId, status: i < 2 ? 'QUEUED' : 'FAILED' }]);
      }
      expect((await jobById(db.conn, jobId))?.error).toMatch(/lost 3 times/);
    });

    it('cancels a queued preview at once, and a running one at its next renewal', async () => {
      const queued = await enqueue(text, null, 14);
      expect((await cancelClusterJob(db.conn.pool, queued))?.after).toBe('CANCELLED');
      expect(await claimPreviewJob(db.conn.pool, 'late', 10_000)).toBeUndefined();

      const running = await enqueue(text, 2_500, 15);
      const held = (await claimPreviewJob(db.conn.pool, 'busy', 10_000))!;
      expect(held.jobId).toBe(running);
      const run = runClusterPreview(db.conn.pool, held, { node: 'busy', leaseMs: 150, testOnlyChunkDelayMs: 200 });
      expect((await cancelClusterJob(db.conn.pool, running))?.after).toBe('CANCELLING');
      expect(await run).toBe('cancelled');
      expect((await jobById(db.conn, running))?.status).toBe('CANCELLED');
      expect(await pgResults(running)).toBeUndefined();
    });
    it('fails a preview whose statement runs past the time a preview may go without progress', async () => {
      const jobId = await enqueue(text, null, 16);
      const held = (await claimPreviewJob(db.conn.pool, 'slow', 10_000))!;
      expect(held.jobId).toBe(jobId);
      expect(
        await runClusterPreview(db.conn.pool, held, { node: 'slow', leaseMs: 10_000, testOnlyStatementTimeoutMs: 1 }),
      ).toBe('failed');
      expect(await jobById(db.conn, jobId)).toMatchObject({
        status: 'FAILED',
        error: 'No progress for 0 s; the job was stopped',
      });
    });
  });

  describe('on running nodes', () => {
    const nodes: ClusterNode[] = [];
    const events: NodeEvent[] = [];

    beforeAll(async () => {
      for (let i = 0; i < 2; i++) {
        nodes.push(
          await startClusterNode({
            pool: db.conn.pool,
            url: db.url,
            node: `node-${i}`,
            leaseMs: 3_000,
            pollMs: 100,
            onEvent: (event) => events.push(event),
          }),
        );
      }
    });

    afterAll(async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    });

    async function ended(jobId: number): Promise<string> {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const end = events.find((e) => e.type === 'job-ended' && e.jobId === jobId);
        if (end?.type === 'job-ended') return end.end;
        const error = events.find((e) => e.type === 'error');
        if (error?.type === 'error') throw error.error;
        if (Date.now() > deadline) throw new Error(`preview ${jobId} did not end in 60 s`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }

    it("gives SQLite's answer for each reference definition, whole-store and sampled", async () => {
      let compared = 0;
      for (const [i, definition] of store.definitions.entries()) {
        const text = definition.expression.value;
        for (const sampleSize of [null, 700]) {
          const seed = 100 + i;
          const jobId = await enqueue(text, sampleSize, seed);
          const sqlite = await sqlitePreview({ text, sampleSize, seed });
          expect(await ended(jobId), definition.name).toBe('succeeded');
          const job = (await jobById(db.conn, jobId))!;
          const result = job.result as { estimate: Estimate; sampleSize: number };
          expect(figures(result.estimate), `${definition.name} (${sampleSize})`).toEqual(
            figures(sqlite.result.estimate),
          );
          expect(result.sampleSize).toBe(sqlite.result.sampleSize);
          const stored = (await pgResults(jobId))!;
          expect(stored.count, definition.name).toBe(sqlite.count);
          expect(stored.ids.equals(sqlite.ids), definition.name).toBe(true);
          compared++;
        }
      }
      expect(compared).toBe(2 * store.definitions.length);
    }, 180_000);

    it('runs previews queued at once on both nodes, each claimed once', async () => {
      const text = store.definitions[4]!.expression.value;
      const jobIds = await Promise.all([31, 32, 33, 34].map((seed) => enqueue(text, 800, seed)));
      for (const jobId of jobIds) expect(await ended(jobId)).toBe('succeeded');
      const claims = events.filter(
        (e): e is Extract<NodeEvent, { type: 'preview-claimed' }> =>
          e.type === 'preview-claimed' && jobIds.includes(e.jobId),
      );
      expect(claims.map((c) => c.jobId).sort()).toEqual([...jobIds].sort());
      expect(claims.every((c) => c.attempts === 1)).toBe(true);
    });

    it('takes back the preview of a node that died holding it, and runs it to the uninterrupted answer', async () => {
      const text = store.definitions[2]!.expression.value;
      const input = {
        expression: { format: 'PQL_TEXT', value: text },
        expressionText: text,
        definitionId: null,
        sampleSize: 1_200,
        confidenceLevel: 0.95,
        at: STORE_NOW,
        seed: 21,
        now: STORE_NOW,
      };
      // As a node leaves it that claimed the preview and died: PROCESSING, its lease about to pass.
      const now = Date.now();
      const { rows } = await db.conn.pool.query<{ id: number }>(
        `INSERT INTO jobs (sandbox_id, kind, status, input, trigger, created_at, updated_at, started_at, lease_owner, lease_until, attempts)
         VALUES ($1, 'PREVIEW', 'PROCESSING', $2, 'MANUAL', $3, $3, $3, 'dead', $4, 1) RETURNING id`,
        [store.sandboxId, JSON.stringify(input), now, now + 300],
      );
      const jobId = rows[0]!.id;
      expect(await ended(jobId)).toBe('succeeded');
      expect(events).toContainEqual({ type: 'jobs-requeued', jobs: [{ jobId, kind: 'PREVIEW', status: 'QUEUED' }] });
      const job = (await jobById(db.conn, jobId))!;
      expect(job.attempts).toBe(2);
      const sqlite = await sqlitePreview({ text, sampleSize: 1_200, seed: 21 });
      expect(figures((job.result as { estimate: Estimate }).estimate)).toEqual(figures(sqlite.result.estimate));
      expect((await pgResults(jobId))!.ids.equals(sqlite.ids)).toBe(true);
    });

    it('purges finished previews older than a day with their results', async () => {
      const jobId = await enqueue(store.definitions[3]!.expression.value, 300, 4);
      expect(await ended(jobId)).toBe('succeeded');
      expect(await pgResults(jobId)).toBeDefined();
      expect(await purgeExpiredPreviewsPg(db.conn.pool)).toBe(0);
      const finished = await purgeExpiredPreviewsPg(db.conn.pool, Date.now() + 25 * 3_600_000);
      expect(finished).toBeGreaterThanOrEqual(1);
      expect(await jobById(db.conn, jobId)).toBeUndefined();
      expect(await pgResults(jobId)).toBeUndefined();
    });

    it('reads the results, the latest preview of a definition and staleness from the PostgreSQL store', async () => {
      const definition = store.definitions[1]!;
      const jobId = await enqueueClusterPreviewJob(db.conn, store.sandboxId, {
        definitionId: definition.id,
        sampleSize: 900,
        seed: 5,
        at: STORE_NOW,
      });
      expect(await ended(jobId)).toBe('succeeded');
      const latest = (await latestDefinitionPreview({ conn: db.conn }, store.sandboxId, definition.id))!;
      expect(latest).toMatchObject({ id: jobId, kind: 'PREVIEW', status: 'SUCCEEDED' });
      const sqlite = await sqlitePreview({ text: definition.expression.value, sampleSize: 900, seed: 5 });
      expect(figures(latest.result!.estimate)).toEqual(figures(sqlite.result.estimate));
      expect(await isStale({ conn: db.conn }, store.sandboxId, latest.result!.estimate)).toBe(false);
      const onPg = await listPreviewResults({ conn: db.conn }, store.sandboxId, jobId, { first: 25 });
      const onSqlite = await listPreviewResults({ conn: store.conn }, store.sandboxId, sqlite.jobId, { first: 25 });
      expect(onPg.totalCount()).toBe(onSqlite.totalCount());
      expect(onPg.items.map((p) => p.id)).toEqual(onSqlite.items.map((p) => p.id));
      expect(onPg.items.length).toBeGreaterThan(0);
      const next = await listPreviewResults({ conn: db.conn }, store.sandboxId, jobId, {
        first: 25,
        after: onPg.cursors.at(-1),
      });
      const nextSqlite = await listPreviewResults({ conn: store.conn }, store.sandboxId, sqlite.jobId, {
        first: 25,
        after: onSqlite.cursors.at(-1),
      });
      expect(next.items.map((p) => p.id)).toEqual(nextSqlite.items.map((p) => p.id));
    });
  });

  describe('both samplers', () => {
    /** Sandboxes whose profile ids interleave: with two, each holds every other id (dense); with three, every third (numbered). */
    for (const [label, sandboxes] of [
      ['permuting the id range', 2],
      ['numbering the profiles', 3],
    ] as const) {
      it(`report the running estimates SQLite reports, chunk by chunk, compiled or by the JS engine: ${label}`, async () => {
        const conn = openDatabase(':memory:');
        const ids: number[] = [];
        for (let k = 0; k < sandboxes; k++) ids.push((await ensureSandbox(conn, `s${k}`)).id);
        for (let i = 0; i < 2_400; i++) {
          for (const [k, sandboxId] of ids.entries()) {
            ingestProfiles(conn, sandboxId, [
              {
                identities: [
                  { namespace: 'e', id: `${k}-${i}` },
                  ...(i % 3 === 0 ? [{ namespace: 'p', id: `${k}-${i}` }] : []),
                ],
                attributes: { loyalty: { points: i }, homeAddress: { street1: i % 7 === 0 ? `x-${i}` : `ax${i}` } },
              },
            ]);
          }
        }
        const sandboxId = ids[0]!;
        const copy = await pgCopyOf(conn.sqlite, `cprev_s${sandboxes}`);
        try {
          // Compiled for PostgreSQL, whole-store and sampled; and a regex PostgreSQL's engine would
          // match differently (`\\b`), which the JS engine evaluates on loaded documents instead (a
          // document's reads per profile: whole-store with one sampler, sampled with the other).
          const compiled = 'loyalty.points % 5 = 1 or loyalty.points > 2000';
          const refused = 'homeAddress.street1.matches("\\\\bx") or loyalty.points > 2200';
          for (const [text, sampleSize] of [
            [compiled, null],
            [compiled, 1_900],
            [refused, sandboxes === 3 ? null : 1_900],
          ] as const) {
            const sqlite = await previewOnSqlite(conn, sandboxId, { text, sampleSize, seed: 3 });
            const client = await copy.conn.pool.connect();
            const reports: PreviewProgress[] = [];
            try {
              await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
              const counter = await samplePreviewPg(
                client,
                {
                  jobId: 0,
                  sandboxId,
                  now: STORE_NOW,
                  expressionText: text,
                  sampleSize,
                  confidenceLevel: 0.95,
                  seed: 3,
                },
                { progress: (p) => reports.push(p), checkpoint: () => {} },
              );
              await client.query('COMMIT');
              expect(counter.packedResults().bytes.equals(sqlite.ids)).toBe(true);
            } finally {
              client.release();
            }
            // SQLite's scan also reports ticks of its progress, with the running estimate; the chunks' reports and the last are the same.
            const shown = (list: PreviewProgress[]) =>
              list
                .filter((r, i) => r.done === r.estimate.profilesRead || i === list.length - 1)
                .map((r) => ({ done: r.done, total: r.total, estimate: figures(r.estimate) }))
                .filter((r, i, all) => i === 0 || JSON.stringify(r) !== JSON.stringify(all[i - 1]));
            expect(
              shown(reports).length,
              `${text} ${sampleSize} ${JSON.stringify(reports.map((r) => [r.done, r.estimate.profilesRead]))}`,
            ).toBeGreaterThanOrEqual(2);
            expect(shown(reports)).toEqual(shown(sqlite.reports));
            expect(reports.at(-1)!.estimate.exact).toBe(sampleSize === null);
          }
        } finally {
          await copy.drop();
          conn.close();
        }
      }, 120_000);
    }
  });
});
