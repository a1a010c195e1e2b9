/**
 * Definition-change dry runs on cluster nodes reading PostgreSQL give the SQLite task's answer on
 * the same store (built in SQLite, copied with pgCopyOf): the exact counts, the samples, the
 * affected dependents, and the same running estimates page by page (the same seeded order). And
 * the queue's lease: two racing claimers take a job once; a holder that stops renewing loses it,
 * a node re-runs it with the same result, and the old holder's final write is refused. The API's
 * reads (the job, its samples) work on the PostgreSQL store. Skipped without SEGQL_TEST_DATABASE_URL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { cancelClusterJob } from '../../src/domain/cluster/cluster-cancel.js';
import { enqueueClusterDryRun, evaluateDryRunPg, runClusterDryRun } from '../../src/domain/cluster/cluster-dry-run.js';
import { type ClusterNode, type NodeEvent, startClusterNode } from '../../src/domain/cluster/cluster-node.js';
import { claimWholeJob, type HeldJob } from '../../src/domain/cluster/cluster-whole-jobs.js';
import {
  type DefinitionChangeJobInput,
  type DefinitionChangePreview,
  definitionChangePlan,
  listChangeSample,
} from '../../src/domain/definition-changes/definition-change-preview.js';
import definitionChangeTask, {
  type DefinitionChangeProgress,
  type DefinitionChangeResult,
} from '../../src/domain/definition-changes/definition-change-task.js';
import { createSegmentDefinition, definitionsByIds } from '../../src/domain/definitions.js';
import { insertJob, jobById, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { evaluateSegmentPlan } from '../../src/domain/segment-jobs/segment-evaluation.js';
import { orderedPlan } from '../../src/domain/segment-jobs/segment-job.js';
import { type PgTestDatabase, pgAdminUrl, pgCopyOf } from '../db/pg-test-database.js';
import { buildSegmentStore, type SegmentStore, STORE_NOW } from '../db/segment-store.js';

const AT = STORE_NOW + 3_600_000;

/** Edits of the reference definitions: each changes who is in, and reaches dependents through inSegment. */
const EDITS = [
  // nordic-buyers reads it.
  { name: 'nordics', text: 'homeAddress.countryCode in ["SE", "US"]' },
  // vip-mix reads it under `and not inSegment("outdoor-optin")`.
  { name: 'big-spenders', text: 'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 300' },
  // Starts from a stored audience (a cheap exact phase after one rough page); vip-mix reads it.
  { name: 'gold-mid-points', text: 'inSegment("nordics") and loyalty.tier = "gold"' },
] as const;

describe.skipIf(!pgAdminUrl)('definition-change dry runs on cluster nodes (PostgreSQL)', () => {
  let store: SegmentStore;
  let db: PgTestDatabase;
  const nodes: ClusterNode[] = [];
  const events: NodeEvent[] = [];

  beforeAll(async () => {
    store = await buildSegmentStore('cluster_dry_run', 1_500, 4);
    await store.runSqliteJob();
    db = await pgCopyOf(store.conn.sqlite, 'cdry');
  }, 120_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    store?.close();
    await db?.drop();
  });

  function inputOf(edit: (typeof EDITS)[number], seed: number): DefinitionChangeJobInput {
    const def = store.definitions.find((d) => d.name === edit.name)!;
    return {
      definitionId: def.id,
      audienceId: def.audienceId,
      expression: { format: 'PQL_TEXT', value: edit.text },
      expressionText: edit.text,
      evaluationInfo: def.evaluationInfo,
      evaluationWarnings: [],
      at: AT,
      seed,
    };
  }

  /** The single-process dry run, as the job worker runs it, with every progress report. */
  async function sqliteDryRun(input: DefinitionChangeJobInput) {
    const { conn, sandboxId } = store;
    const job = (await insertJob(conn, sandboxId, 'DEFINITION_CHANGE_PREVIEW', input)) as DefinitionChangePreview;
    await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
    const reports: DefinitionChangeProgress[] = [];
    const result = runJobTask(conn, job.id, definitionChangeTask, await definitionChangePlan(conn, job, AT), {
      progress: (p) => reports.push(p),
      cancelled: () => false,
    });
    return { job: { ...job, result } as DefinitionChangePreview, result, reports };
  }

  async function startNodes(count: number, leaseMs = 3_000) {
    for (let i = nodes.length; i < count; i++) {
      nodes.push(
        await startClusterNode({
          pool: db.conn.pool,
          url: db.url,
          node: `node-${i}`,
          leaseMs,
          pollMs: 100,
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
      if (Date.now() > deadline) throw new Error(`dry run ${jobId} did not end in 60 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('evaluates in the same pages as SQLite: the same running estimates, the same result', async () => {
    for (const edit of EDITS) {
      const input = inputOf(edit, 7);
      const sqlite = await sqliteDryRun(input);
      const plan = await definitionChangePlan(
        db.conn,
        { id: sqlite.job.id, sandboxId: store.sandboxId, input: { ...input, now: AT } },
        AT,
      );
      const reports: DefinitionChangeProgress[] = [];
      const client = await db.conn.pool.connect();
      let result: DefinitionChangeResult;
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        result = await evaluateDryRunPg(client, plan, {
          check: () => {},
          progress: () => {},
        });
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      // The running reports: replayed through a lease that keeps them all.
      const client2 = await db.conn.pool.connect();
      try {
        await client2.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        await evaluateDryRunPg(client2, plan, {
          check: () => {},
          progress: (p) => reports.push(p.result as never),
        });
        await client2.query('COMMIT');
      } finally {
        client2.release();
      }
      expect(result, edit.name).toEqual(sqlite.result);
      expect(result.wouldJoin.value + result.wouldLeave.value, edit.name).toBeGreaterThan(0);
      // The running results the job keeps, report by report (the kind's runningResult of each).
      expect(reports, edit.name).toEqual(
        sqlite.reports.map((p) => ({
          wouldJoin: p.wouldJoin,
          wouldLeave: p.wouldLeave,
          wouldStay: p.wouldStay,
          profilesRead: p.done,
          joinSample: [],
          leaveSample: [],
          affectedDependents: [],
        })),
      );
    }
    // Dependents are reached: at least one edit changes one.
    const results = await Promise.all(EDITS.map(async (e) => (await sqliteDryRun(inputOf(e, 3))).result));
    expect(results.some((r) => r.affectedDependents.length > 0)).toBe(true);
  }, 120_000);

  it('two racing claimers take a queued dry run once', async () => {
    const job = await insertJob(db.conn, store.sandboxId, 'DEFINITION_CHANGE_PREVIEW', inputOf(EDITS[0], 5));
    const claims = await Promise.all(
      [0, 1, 2, 3].map((i) => claimWholeJob(db.conn.pool, ['DEFINITION_CHANGE_PREVIEW'], `racer-${i}`, 60_000)),
    );
    const won = claims.filter((c) => c !== undefined);
    expect(won).toHaveLength(1);
    expect(won[0]!.jobId).toBe(job.id);
    const row = (await jobById(db.conn, job.id))!;
    expect(row.status).toBe('PROCESSING');
    expect(row.attempts).toBe(1);
    expect(row.leaseOwner).toMatch(/^racer-/);
    // The evaluation instant was pinned at the claim: the `at` asked for.
    expect((won[0]!.input as { now: number }).now).toBe(AT);
    // Let the nodes of the next test have it: back in the queue, as a passed lease would leave it.
    await updateJob(db.conn, job.id, { status: 'CANCELLED', leaseOwner: null, leaseUntil: null });
  });

  it('is cancelled like any cluster job: at once when queued, at its final write when held', async () => {
    const queued = await insertJob(db.conn, store.sandboxId, 'DEFINITION_CHANGE_PREVIEW', inputOf(EDITS[1], 5));
    expect((await cancelClusterJob(db.conn.pool, queued.id))?.after).toBe('CANCELLED');
    const held = await insertJob(db.conn, store.sandboxId, 'DEFINITION_CHANGE_PREVIEW', inputOf(EDITS[1], 6));
    const claim = (await claimWholeJob(db.conn.pool, ['DEFINITION_CHANGE_PREVIEW'], 'holder', 60_000)) as HeldJob;
    expect(claim.jobId).toBe(held.id);
    expect((await cancelClusterJob(db.conn.pool, held.id))?.after).toBe('CANCELLING');
    expect(await runClusterDryRun(db.conn.pool, claim, { node: 'holder', leaseMs: 60_000 })).toBe('cancelled');
    const ended = (await jobById(db.conn, held.id))!;
    expect(ended.status).toBe('CANCELLED');
    expect(ended.result).toBeNull();
  });

  it('a holder that stops renewing loses the dry run; a node re-runs it with the same result', async () => {
    const input = inputOf(EDITS[0], 9);
    const sqlite = await sqliteDryRun(input);
    const job = await insertJob(db.conn, store.sandboxId, 'DEFINITION_CHANGE_PREVIEW', input);
    // A holder that claims and then says nothing (killed, paused): its lease passes in 300 ms.
    const stale = (await claimWholeJob(db.conn.pool, ['DEFINITION_CHANGE_PREVIEW'], 'stale', 300)) as HeldJob;
    expect(stale.jobId).toBe(job.id);
    await startNodes(2);
    expect(await waitForEnd(job.id)).toBe('succeeded');
    const done = (await jobById(db.conn, job.id)) as DefinitionChangePreview;
    expect(done.status).toBe('SUCCEEDED');
    expect(done.attempts).toBe(2);
    expect(done.result).toEqual(sqlite.result);
    // The old holder, back: its final write finds its lease gone and writes nothing.
    expect(await runClusterDryRun(db.conn.pool, stale, { node: 'stale', leaseMs: 3_000 })).toBe('lost');
    expect(((await jobById(db.conn, job.id)) as DefinitionChangePreview).result).toEqual(sqlite.result);
  }, 120_000);

  it('runs queued dry runs on the nodes; the API reads the job and its samples from PostgreSQL', async () => {
    await startNodes(2);
    for (const edit of EDITS) {
      const input = inputOf(edit, 21);
      const sqlite = await sqliteDryRun(input);
      const queued = await insertJob(db.conn, store.sandboxId, 'DEFINITION_CHANGE_PREVIEW', input);
      expect(await waitForEnd(queued.id)).toBe('succeeded');
      const job = (await jobById(db.conn, queued.id)) as DefinitionChangePreview;
      expect(job.result, edit.name).toEqual(sqlite.result);
      expect(job.progressDone).toBe(sqlite.result.profilesRead);
      expect(job.input.now).toBe(AT);
      for (const side of ['join', 'leave'] as const) {
        const pg = await listChangeSample(db.conn, store.sandboxId, job, side, { first: 5 });
        const lite = await listChangeSample(store.conn, store.sandboxId, sqlite.job, side, { first: 5 });
        expect(pg.items, `${edit.name} ${side}`).toEqual(lite.items);
        expect(pg.totalCount()).toBe(lite.totalCount());
      }
    }
    // Queued as the API would queue it on PostgreSQL: checked there, run by a node, SQLite's answer.
    const def = store.definitions.find((d) => d.name === 'nordics')!;
    const queued = await enqueueClusterDryRun(
      db.conn.pool,
      store.sandboxId,
      def.id,
      { format: 'PQL_TEXT', value: EDITS[0].text },
      { seed: 5 },
    );
    expect(await waitForEnd(queued.id)).toBe('succeeded');
    const ran = (await jobById(db.conn, queued.id)) as DefinitionChangePreview;
    expect(ran.result).toEqual((await sqliteDryRun({ ...queued.input, at: ran.input.now! })).result);
    // Refused on the request as on SQLite: an unknown field, and a cycle through the edited audience.
    await expect(
      enqueueClusterDryRun(db.conn.pool, store.sandboxId, def.id, { format: 'PQL_TEXT', value: 'nosuch.field = 1' }),
    ).rejects.toThrow();
    await expect(
      enqueueClusterDryRun(db.conn.pool, store.sandboxId, def.id, {
        format: 'PQL_TEXT',
        value: 'inSegment("nordic-buyers")',
      }),
    ).rejects.toThrow(/cycle|itself|depend/i);
    // Each ran once: claimed by one node, no attempt lost.
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
  }, 180_000);

  it('draws the numbered permutation where a sandbox holds under half of its id range, as SQLite does', async () => {
    // Sandbox "a" holds every third id (the other ids are sandbox "b"'s): SQLite's sampler numbers
    // its profiles in a temporary table instead of permuting the id range, and so must this one.
    const lite = openDatabase(':memory:');
    try {
      const a = (await ensureSandbox(lite, 'a')).id;
      const b = (await ensureSandbox(lite, 'b')).id;
      for (let i = 0; i < 300; i++) {
        ingestProfiles(lite, a, [
          { identities: [{ namespace: 'crmId', id: `a${i}` }], attributes: { loyalty: { points: i % 100 } } },
        ]);
        ingestProfiles(
          lite,
          b,
          [0, 1].map((k) => ({ identities: [{ namespace: 'crmId', id: `b${i}-${k}` }], attributes: {} })),
        );
      }
      const range = lite.sqlite
        .prepare('SELECT min(id) AS lo, max(id) AS hi, count(*) AS n FROM profiles WHERE sandbox_id = ?')
        .get(a) as { lo: number; hi: number; n: number };
      expect(range.n / (range.hi - range.lo + 1)).toBeLessThan(0.5);
      const def = await createSegmentDefinition(lite, a, {
        name: 'Fifty plus',
        expression: { format: 'PQL_TEXT', value: 'loyalty.points >= 50' },
        lifecycleState: 'PUBLISHED',
      });
      await createSegmentDefinition(lite, a, {
        name: 'Fifty to seventy',
        expression: { format: 'PQL_TEXT', value: 'inSegment("Fifty plus") and loyalty.points < 70' },
        lifecycleState: 'PUBLISHED',
      });
      const segment = await insertJob(lite, a, 'SEGMENT', { definitionIds: [def.id], all: true, at: AT, now: AT });
      await updateJob(lite, segment.id, { status: 'PROCESSING', startedAt: Date.now() });
      const defs = [...(await definitionsByIds(lite, a, [def.id, def.id + 1])).values()];
      const segPlan = await orderedPlan(lite, a, defs, { jobId: segment.id, now: AT, chunkSize: 100, notes: [] });
      runJobTask(lite, segment.id, evaluateSegmentPlan, segPlan, { progress: () => {}, cancelled: () => false });
      const text = 'loyalty.points >= 40 and loyalty.points < 60';
      const input: DefinitionChangeJobInput = {
        definitionId: def.id,
        audienceId: def.audienceId,
        expression: { format: 'PQL_TEXT', value: text },
        expressionText: text,
        evaluationInfo: def.evaluationInfo,
        evaluationWarnings: [],
        at: AT,
        seed: 4,
      };
      const job = (await insertJob(lite, a, 'DEFINITION_CHANGE_PREVIEW', input)) as DefinitionChangePreview;
      await updateJob(lite, job.id, { status: 'PROCESSING', startedAt: Date.now() });
      const plan = await definitionChangePlan(lite, job, AT);
      const liteReports: DefinitionChangeProgress[] = [];
      const expected = runJobTask(lite, job.id, definitionChangeTask, plan, {
        progress: (p) => liteReports.push(p),
        cancelled: () => false,
      });
      expect(expected.affectedDependents).not.toEqual([]);
      const copy = await pgCopyOf(lite.sqlite, 'cdry_sparse');
      try {
        const client = await copy.conn.pool.connect();
        const reports: unknown[] = [];
        try {
          await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
          const result = await evaluateDryRunPg(client, plan, {
            check: () => {},
            progress: (p) => reports.push(p.result),
          });
          await client.query('COMMIT');
          expect(result).toEqual(expected);
        } finally {
          client.release();
        }
        expect(reports).toEqual(
          liteReports.map((p) => ({
            wouldJoin: p.wouldJoin,
            wouldLeave: p.wouldLeave,
            wouldStay: p.wouldStay,
            profilesRead: p.done,
            joinSample: [],
            leaveSample: [],
            affectedDependents: [],
          })),
        );
      } finally {
        await copy.drop();
      }
    } finally {
      lite.close();
    }
  }, 60_000);
});
