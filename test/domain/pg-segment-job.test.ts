/**
 * A segment job on PostgreSQL (ranges evaluated by evaluateRangePg, then writeSegmentResultsPg)
 * must leave exactly what the SQLite job leaves: one store is built in SQLite through the domain
 * (plus direct membership rows in every status), copied row for row into two fresh PostgreSQL
 * databases, and the same plans are run on all three — on PostgreSQL once as one range and once
 * as three ranges evaluated at the same time, out of order. Skipped (visibly) without
 * SEGQL_TEST_DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { createSegmentDefinition, definitionsByIds, type SegmentDefinition } from '../../src/domain/definitions.js';
import { prng } from '../../src/domain/demo-data.js';
import { ingestEvents } from '../../src/domain/event-ingest.js';
import { encodeGlobalId } from '../../src/domain/ids.js';
import { Cancelled } from '../../src/domain/jobs/cancelled.js';
import { insertJob, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';
import { MEMBERSHIP_STATUSES } from '../../src/domain/membership-statuses.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import {
  evaluateRangePg,
  type RangeHooks,
  type RangeOutcome,
  type RangeTask,
} from '../../src/domain/segment-jobs/pg-range-evaluation.js';
import { writeSegmentResultsPg } from '../../src/domain/segment-jobs/pg-segment-results.js';
import segmentTask, {
  type SegmentMetrics,
  type SegmentPlan,
} from '../../src/domain/segment-jobs/segment-evaluation.js';
import { orderedPlan } from '../../src/domain/segment-jobs/segment-job.js';
import { freshPgDatabase, type PgTestDatabase, pgAdminUrl } from '../db/pg-test-database.js';

const DAY = 86_400_000;
const NOW = Date.parse('2026-11-28T00:00:00Z');
const PROFILES = 300;

const DEFINITIONS: [name: string, expression: string][] = [
  ['Points', 'loyalty.points >= 50'],
  ['Swedes', 'homeAddress.countryCode = "SE"'],
  ['Recent buyers', 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now].count() >= 1'],
  // An inSegment chain inside the job: Points → Big spenders → Nordic loyal.
  [
    'Big spenders',
    'inSegment("Points") and xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 100',
  ],
  ['Nordic loyal', 'inSegment("Big spenders") or (inSegment("Swedes") and loyalty.tier = "gold")'],
  // Names an audience the job does not evaluate: its stored members count.
  ['Uses outside', 'inSegment("Outside") and homeAddress.countryCode = "NO"'],
  // Made valid, then its stored text is broken below, as one saved before a rule existed.
  ['Broken', 'loyalty.points > 1'],
];

interface SqliteStore {
  conn: Connection;
  sandboxId: number;
  definitions: SegmentDefinition[];
}

async function buildSqliteStore(): Promise<SqliteStore> {
  const conn = openDatabase(':memory:');
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  // Seeded, so every run builds the same store.
  const rand = prng(21);
  ingestProfiles(
    conn,
    sandboxId,
    Array.from({ length: PROFILES }, (_, i) => ({
      identities: [
        { namespace: 'crmId', id: `c${i}` },
        ...(i % 3 !== 0 ? [{ namespace: 'email', id: `p${i}@example.se` }] : []),
        // Two values in one namespace: the profile still counts once there.
        ...(i % 7 === 0 ? [{ namespace: 'email', id: `p${i}@work.example.se` }] : []),
        ...(i % 5 === 0 ? [{ namespace: 'phone', id: `+46${1000 + i}` }] : []),
      ],
      attributes: {
        loyalty: { points: Math.floor(rand() * 100), ...(i % 4 === 0 ? { tier: 'gold' } : {}) },
        homeAddress: { countryCode: ['SE', 'NO', 'DK'][i % 3] },
      },
    })),
    { now: NOW - 90 * DAY },
  );
  const events = Array.from({ length: PROFILES }, (_, i) =>
    Array.from({ length: i % 4 }, (_, j) => ({
      id: `evt-${i}-${j}`,
      identity: { namespace: 'crmId', id: `c${i}` },
      // Spread over 60 days before NOW, so a later run's 30-day window drops some.
      timestamp: new Date(NOW - Math.floor(rand() * 60 * DAY)).toISOString(),
      eventType: j === 2 ? 'web.webpagedetails.pageViews' : 'commerce.purchases',
      data: { commerce: { order: { priceTotal: Math.round(rand() * 12_000) / 100, currencyCode: 'SEK' } } },
    })),
  ).flat();
  for (let k = 0; k < events.length; k += 100) ingestEvents(conn, sandboxId, events.slice(k, k + 100));
  const made = new Map<string, SegmentDefinition>();
  const outside = await createSegmentDefinition(conn, sandboxId, {
    name: 'Outside',
    expression: { format: 'PQL_TEXT', value: 'loyalty.points < 10' },
    lifecycleState: 'PUBLISHED',
  });
  for (const [name, value] of DEFINITIONS) {
    made.set(
      name,
      await createSegmentDefinition(conn, sandboxId, {
        name,
        expression: { format: 'PQL_TEXT', value },
        lifecycleState: 'PUBLISHED',
      }),
    );
  }
  const broken = made.get('Broken')!;
  conn.sqlite
    .prepare('UPDATE segment_definitions SET expression_text = ? WHERE id = ?')
    .run('inSegment("Deleted audience")', broken.id);
  // Members from earlier runs, in every status: some will stay, some exit, some re-enter; the
  // EXITED rows older than 30 days are purged. Swedes has none: its first evaluation takes the
  // PostgreSQL write's path for a fresh audience, beside the others' diff.
  const insert = conn.sqlite.prepare(
    `INSERT INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const profileIds = conn.sqlite.prepare('SELECT id FROM profiles ORDER BY id').pluck().all() as number[];
  const firstEvaluated = made.get('Swedes')!.audienceId;
  for (const audienceId of [...[...made.values()].map((d) => d.audienceId), outside.audienceId]) {
    if (audienceId === firstEvaluated) continue;
    for (const profileId of profileIds) {
      if (rand() >= 0.4) continue;
      const status = MEMBERSHIP_STATUSES[Math.floor(rand() * 3)]!;
      const exitedAt = status === 'EXITED' ? NOW - (rand() < 0.5 ? 40 : 5) * DAY : null;
      insert.run(sandboxId, audienceId, profileId, status, NOW - 50 * DAY, NOW - 2 * DAY, exitedAt);
    }
    conn.sqlite
      .prepare(
        `UPDATE audiences SET size = (SELECT count(*) FROM memberships WHERE audience_id = ? AND status != 'EXITED') WHERE id = ?`,
      )
      .run(audienceId, audienceId);
  }
  const fresh = await definitionsByIds(
    conn,
    sandboxId,
    [...made.values()].map((d) => d.id),
  );
  return { conn, sandboxId, definitions: [...fresh.values()] };
}

/** The tables a job reads or writes, with the columns SQLite keeps as JSON. */
const COPIED: [table: string, json: string[]][] = [
  ['sandboxes', []],
  ['profiles', ['attributes']],
  ['identities', []],
  ['events', ['payload']],
  ['schema_fields', []],
  ['audiences', []],
  ['memberships', ['payload']],
  ['membership_history', []],
  ['audience_size_history', []],
];

/** Copies the SQLite store's rows as they are into a fresh PostgreSQL database, ids included. */
async function copyToPg(store: SqliteStore, db: PgTestDatabase): Promise<void> {
  const { sqlite } = store.conn;
  for (const [table, json] of COPIED) {
    const columns = (sqlite.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
    const select = columns.map((c) => (json.includes(c) ? `json(${c}) AS ${c}` : c)).join(', ');
    const rows = (sqlite.prepare(`SELECT ${select} FROM ${table}`).all() as Record<string, unknown>[]).map((row) => {
      for (const c of json) if (typeof row[c] === 'string') row[c] = JSON.parse(row[c] as string);
      return row;
    });
    const list = columns.join(', ');
    await db.conn.pool.query(
      `INSERT INTO ${table} (${list}) SELECT ${list} FROM jsonb_populate_recordset(NULL::${table}, $1::jsonb)`,
      [JSON.stringify(rows)],
    );
    if (columns.includes('id')) {
      await db.conn.pool.query(
        `SELECT setval(pg_get_serial_sequence('${table}', 'id'), (SELECT max(id) FROM ${table}))`,
      );
    }
  }
  // The copied count and the count the insert triggers added.
  await db.conn.pool.query(
    'UPDATE sandboxes s SET profile_count = (SELECT count(*) FROM profiles p WHERE p.sandbox_id = s.id)',
  );
}

/** What a job leaves behind, read with the same statements from both databases. */
const STATE = {
  memberships:
    'SELECT audience_id, profile_id, sandbox_id, status, qualified_at, last_evaluated_at, exited_at FROM memberships ORDER BY audience_id, profile_id',
  history:
    'SELECT sandbox_id, audience_id, profile_id, at, from_status, to_status, cause, definition_version FROM membership_history',
  audiences: 'SELECT id, size, last_evaluated_at FROM audiences ORDER BY id',
  sizeHistory:
    'SELECT sandbox_id, audience_id, job_id, at, before, size FROM audience_size_history ORDER BY audience_id, job_id',
} as const;

type State = Record<keyof typeof STATE, unknown[]>;

/** Rows in one order whatever order either database returned them in (history has no key but its id). */
function sorted(rows: unknown[]): unknown[] {
  return rows.map((r) => JSON.stringify(r)).sort();
}

function sqliteState(store: SqliteStore): State {
  const read = (sql: string) => store.conn.sqlite.prepare(sql).all() as unknown[];
  return {
    memberships: read(STATE.memberships),
    history: sorted(read(STATE.history)),
    audiences: read(STATE.audiences),
    sizeHistory: read(STATE.sizeHistory),
  };
}

async function pgState(db: PgTestDatabase): Promise<State> {
  const read = async (sql: string) => (await db.conn.pool.query(sql)).rows as unknown[];
  return {
    memberships: await read(STATE.memberships),
    history: sorted(await read(STATE.history)),
    audiences: await read(STATE.audiences),
    sizeHistory: await read(STATE.sizeHistory),
  };
}

function withoutTimes({ totalTimeMs: _t, profileSegmentationTimeMs: _p, ...rest }: SegmentMetrics) {
  return rest;
}

/** Runs the job on SQLite as the job worker does; returns its plan (shared with PostgreSQL) and metrics. */
async function runSqliteJob(store: SqliteStore, now: number): Promise<{ plan: SegmentPlan; metrics: SegmentMetrics }> {
  const { conn, sandboxId, definitions } = store;
  const job = await insertJob(conn, sandboxId, 'SEGMENT', {
    definitionIds: definitions.map((d) => d.id),
    all: false,
    at: now,
    now,
  });
  await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: now });
  const plan = await orderedPlan(conn, sandboxId, definitions, { jobId: job.id, now, chunkSize: 64, notes: [] });
  const result = runJobTask(conn, job.id, segmentTask, plan, { progress: () => {}, cancelled: () => false });
  return { plan, metrics: result.metrics };
}

/** Ranges of about equal profile counts covering every id, as the cluster queue cuts them. */
async function rangesOf(db: PgTestDatabase, sandboxId: number, jobId: number, count: number): Promise<RangeTask[]> {
  const ids = (
    await db.conn.pool.query<{ id: number }>('SELECT id FROM profiles WHERE sandbox_id = $1 ORDER BY id', [sandboxId])
  ).rows.map((r) => r.id);
  return Array.from({ length: count }, (_, k) => ({
    jobId,
    rangeNo: k,
    lo: ids[Math.floor((k * ids.length) / count)]!,
    hi: ids[Math.floor(((k + 1) * ids.length) / count) - 1]!,
  }));
}

const quietHooks = (overrides: Partial<RangeHooks> = {}): RangeHooks => ({
  cancelled: () => false,
  progress: () => {},
  commit: async () => {},
  ...overrides,
});

async function evaluateRange(db: PgTestDatabase, plan: SegmentPlan, range: RangeTask, hooks: RangeHooks) {
  const client = await db.conn.pool.connect();
  try {
    return await evaluateRangePg(client, plan, range, hooks);
  } finally {
    client.release();
  }
}

/** Staged verdicts (profile ids) of a job: each row holds a range's ids for one audience. */
async function stagedRows(db: PgTestDatabase, jobId: number): Promise<number> {
  const { rows } = await db.conn.pool.query<{ n: number }>(
    'SELECT coalesce(sum(cardinality(profile_ids)), 0) AS n FROM job_range_results WHERE job_id = $1',
    [jobId],
  );
  return rows[0]!.n;
}

/**
 * Each staged row is one range's verdicts for one audience: a non-empty array of ids ascending,
 * every one inside the range.
 */
async function expectStagedShape(db: PgTestDatabase, jobId: number, ranges: RangeTask[]): Promise<void> {
  const { rows } = await db.conn.pool.query<{ range_no: number; audience_id: number; profile_ids: string[] }>(
    'SELECT range_no, audience_id, profile_ids FROM job_range_results WHERE job_id = $1',
    [jobId],
  );
  expect(rows.length).toBeGreaterThan(0);
  for (const row of rows) {
    const ids = row.profile_ids.map(Number);
    const { lo, hi } = ranges[row.range_no]!;
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.every((id, i) => id >= lo && id <= hi && (i === 0 || id > ids[i - 1]!))).toBe(true);
  }
}

/**
 * The PostgreSQL job: the ranges at once, started in `order`, then the final write in one
 * transaction. A range in `lose` is run twice: its first attempt stages its rows and then finds
 * its lease gone in the commit hook, as a node that stalled past its lease would.
 */
async function runPgJob(
  db: PgTestDatabase,
  plan: SegmentPlan,
  rangeCount: number,
  order: number[],
  lose: number[] = [],
) {
  const started = performance.now();
  const ranges = await rangesOf(db, plan.sandboxId, plan.jobId, rangeCount);
  const lastProgress = new Map<number, number>();
  const lost = new Error('lease lost');
  for (const k of lose) {
    await expect(evaluateRange(db, plan, ranges[k]!, quietHooks({ commit: () => Promise.reject(lost) }))).rejects.toBe(
      lost,
    );
  }
  const outcomes: RangeOutcome[] = await Promise.all(
    order.map((k) =>
      evaluateRange(
        db,
        plan,
        ranges[k]!,
        quietHooks({
          progress: (done) => lastProgress.set(k, done),
          // The staged rows are there, uncommitted, when the caller gets to mark the range done.
          commit: async (client) => {
            const { rows } = await client.query<{ n: number }>(
              'SELECT count(*) AS n FROM job_range_results WHERE job_id = $1 AND range_no = $2',
              [plan.jobId, k],
            );
            expect(rows[0]!.n).toBeGreaterThan(0);
            // The inSegment shadow is gone: \`memberships\` is the stored table again.
            const shadow = await client.query("SELECT to_regclass('pg_temp.memberships') AS t");
            expect(shadow.rows[0].t).toBeNull();
          },
        }),
      ),
    ),
  );
  order.forEach((k, i) => {
    expect(lastProgress.get(k)).toBe(outcomes[i]!.profiles * plan.definitions.length);
  });
  expect(await stagedRows(db, plan.jobId)).toBeGreaterThan(0);
  await expectStagedShape(db, plan.jobId, ranges);
  const client = await db.conn.pool.connect();
  try {
    await client.query('BEGIN');
    const metrics = await writeSegmentResultsPg(
      client,
      plan,
      {
        spans: order.map((k, i) => ({ lo: ranges[k]!.lo, hi: ranges[k]!.hi, profiles: outcomes[i]!.profiles })),
        segmentationMs: outcomes.reduce((n, o) => n + o.segmentationMs, 0),
        started,
        failed: outcomes.flatMap((o) => o.failed),
      },
      // Several ranges count namespaces on a connection beside the write, as a node does; one
      // range counts them inside it: both must give SQLite's metrics.
      rangeCount > 1 ? db.conn.pool : undefined,
    );
    // The transaction's own counters: every member that stayed (REALIZED → EXISTING) must have
    // been updated in place on its page (HOT), which the memberships layout exists for (fillfactor
    // 50, no index on status): on a copy loaded page by page, each page has room for its rows' new
    // versions.
    const { rows: counted } = await client.query<{ hot: string; stays: string }>(
      `SELECT pg_stat_get_xact_tuples_hot_updated('memberships'::regclass) AS hot,
         (SELECT count(*) FROM membership_history WHERE cause = $1 AND from_status = 'REALIZED' AND to_status = 'EXISTING') AS stays`,
      [`job:${plan.jobId}`],
    );
    await client.query('COMMIT');
    expect(await stagedRows(db, plan.jobId)).toBe(0);
    return { metrics, hot: Number(counted[0]!.hot), stays: Number(counted[0]!.stays) };
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

describe.skipIf(!pgAdminUrl)('a segment job on PostgreSQL: ranges, then the final write', () => {
  let store: SqliteStore;
  let oneRange: PgTestDatabase;
  let threeRanges: PgTestDatabase;

  beforeAll(async () => {
    store = await buildSqliteStore();
    oneRange = await freshPgDatabase('pgeval_one');
    threeRanges = await freshPgDatabase('pgeval_three');
    await copyToPg(store, oneRange);
    await copyToPg(store, threeRanges);
  }, 120_000);

  afterAll(async () => {
    store?.conn.close();
    await oneRange?.drop();
    await threeRanges?.drop();
  });

  async function runAndCompare(now: number, lose: number[] = []) {
    const { plan, metrics } = await runSqliteJob(store, now);
    const one = await runPgJob(oneRange, plan, 1, [0]);
    const three = await runPgJob(threeRanges, plan, 3, [2, 0, 1], lose);
    const expected = sqliteState(store);
    expect(await pgState(oneRange)).toEqual(expected);
    expect(await pgState(threeRanges)).toEqual(expected);
    expect(withoutTimes(one.metrics)).toEqual(withoutTimes(metrics));
    expect(withoutTimes(three.metrics)).toEqual(withoutTimes(metrics));
    for (const { hot, stays } of [one, three]) expect(hot).toBeGreaterThanOrEqual(stays);
    return { plan, metrics, state: expected, stays: one.stays };
  }

  it('leaves the memberships, history, sizes and metrics the SQLite job leaves', async () => {
    // Of the audiences the job evaluates (not Outside, not the failing one).
    const evaluated = store.definitions.filter((d) => d.name !== 'Broken').map((d) => d.audienceId);
    const oldExits = () =>
      store.conn.sqlite
        .prepare(
          `SELECT count(*) FROM memberships WHERE status = 'EXITED' AND exited_at < ? AND audience_id IN (SELECT value FROM json_each(?))`,
        )
        .pluck()
        .get(NOW - 30 * DAY, JSON.stringify(evaluated)) as number;
    expect(oldExits()).toBeGreaterThan(0);
    const { plan, metrics, state, stays } = await runAndCompare(NOW);
    expect(stays).toBeGreaterThan(50);
    // The comparison means something: the job moved members every way, purged, and failed one definition.
    expect(oldExits()).toBe(0);
    const broken = store.definitions.find((d) => d.name === 'Broken')!;
    expect(plan.definitions.map((d) => d.definitionId)).toContain(broken.id);
    expect(metrics.failedDefinitions).toEqual([
      { definitionId: broken.id, reason: expect.stringContaining('unknown audience "Deleted audience"') },
    ]);
    expect(metrics.totalProfiles).toBe(PROFILES);
    const transitions = new Set(
      (state.history as string[]).map((h) => JSON.parse(h)).map((h) => `${h.from_status}→${h.to_status}`),
    );
    expect(transitions).toEqual(
      new Set(['null→REALIZED', 'EXITED→REALIZED', 'REALIZED→EXISTING', 'REALIZED→EXITED', 'EXISTING→EXITED']),
    );
    const chained = ['Big spenders', 'Nordic loyal', 'Uses outside'].map(
      (name) => store.definitions.find((d) => d.name === name)!.audienceId,
    );
    for (const audienceId of chained) {
      expect(metrics.segmentedProfileCounter[encodeGlobalId('Audience', audienceId)]).toBeGreaterThan(0);
    }
    // Every profile has a crmId; a third have no email, some two (counted once).
    for (const [key, qualified] of Object.entries(metrics.segmentedProfileCounter)) {
      expect(metrics.segmentedProfileByNamespaceCounter[key]!.crmId).toBe(qualified);
      expect(metrics.segmentedProfileByNamespaceCounter[key]!.email).toBeLessThanOrEqual(qualified);
    }
  });

  it('agrees again on a second run a day later, where most members stay', async () => {
    const { plan, metrics } = await runAndCompare(NOW + DAY);
    const stayed = Object.values(metrics.segmentedProfileByStatusCounter).reduce((n, c) => n + c.existing, 0);
    expect(stayed).toBeGreaterThan(100);
    // The job's history rows run profile by profile, each profile's in the plan's audience order.
    const { rows } = await threeRanges.conn.pool.query<{ audience_id: number; profile_id: number }>(
      'SELECT audience_id, profile_id FROM membership_history WHERE cause = $1 ORDER BY id',
      [`job:${plan.jobId}`],
    );
    expect(rows.length).toBeGreaterThan(100);
    expect(new Set(rows.map((r) => r.audience_id)).size).toBeGreaterThan(1);
    const planOrder = plan.definitions.map((d) => d.audienceId);
    const keys = rows.map((r) => [r.profile_id, planOrder.indexOf(r.audience_id)] as const);
    expect(
      keys.every(([p, n], i) => i === 0 || p > keys[i - 1]![0] || (p === keys[i - 1]![0] && n > keys[i - 1]![1])),
    ).toBe(true);
  });

  it('agrees again when a range is run twice, its first attempt losing its lease after staging', async () => {
    const { metrics } = await runAndCompare(NOW + 3 * DAY, [1]);
    expect(Object.values(metrics.segmentedProfileCounter).reduce((n, c) => n + c, 0)).toBeGreaterThan(100);
  });

  it('stages nothing for a range whose commit hook throws', async () => {
    const plan = { ...(await runnablePlan()), jobId: 900_001 };
    const [range] = await rangesOf(oneRange, plan.sandboxId, plan.jobId, 1);
    let seen = 0;
    const lost = new Error('lease lost');
    await expect(
      evaluateRange(
        oneRange,
        plan,
        range!,
        quietHooks({
          commit: async (client, outcome) => {
            const { rows } = await client.query<{ n: number }>(
              'SELECT sum(cardinality(profile_ids)) AS n FROM job_range_results WHERE job_id = $1',
              [plan.jobId],
            );
            seen = rows[0]!.n;
            expect(outcome.profiles).toBe(PROFILES);
            throw lost;
          },
        }),
      ),
    ).rejects.toBe(lost);
    expect(seen).toBeGreaterThan(0);
    expect(await stagedRows(oneRange, plan.jobId)).toBe(0);
  });

  it('stages nothing for a range cancelled between definitions', async () => {
    const plan = { ...(await runnablePlan()), jobId: 900_002 };
    const [range] = await rangesOf(oneRange, plan.sandboxId, plan.jobId, 1);
    let asked = 0;
    let committed = false;
    await expect(
      evaluateRange(
        oneRange,
        plan,
        range!,
        quietHooks({
          // The second ask comes after the first definition staged its rows.
          cancelled: () => ++asked > 1,
          commit: async () => {
            committed = true;
          },
        }),
      ),
    ).rejects.toBeInstanceOf(Cancelled);
    expect(asked).toBe(2);
    expect(committed).toBe(false);
    expect(await stagedRows(oneRange, plan.jobId)).toBe(0);
  });

  it('fails a definition PostgreSQL refuses or cannot run alone, and the others go on', async () => {
    const base = await runnablePlan();
    const plan: SegmentPlan = {
      ...base,
      jobId: 900_003,
      // Refused when compiled for PostgreSQL (a lazy quantifier); SQLite runs it.
      definitions: [
        { ...base.definitions[0]!, definitionId: -1, expressionText: 'homeAddress.countryCode.matches("S+?")' },
        ...base.definitions,
      ],
    };
    const points = store.definitions.find((d) => d.name === 'Points')!;
    const swedes = store.definitions.find((d) => d.name === 'Swedes')!;
    // A number jsonb keeps exactly but a double cannot hold: reading it as one fails while the
    // statement runs, inside PostgreSQL, which aborts the transaction: the range is read again
    // without that definition. (SQLite's documents come from JavaScript, which cannot write it.)
    const { rows: added } = await oneRange.conn.pool.query<{ id: number }>(
      `INSERT INTO profiles (sandbox_id, attributes, created_at, updated_at)
       VALUES ($1, '{"loyalty": {"points": 1e400}}', $2, $2) RETURNING id`,
      [plan.sandboxId, NOW],
    );
    try {
      const [range] = await rangesOf(oneRange, plan.sandboxId, plan.jobId, 1);
      const outcome = await evaluateRange(oneRange, plan, range!, quietHooks());
      expect(outcome.failed.map((f) => f.definitionId)).toEqual([-1, points.id]);
      expect(outcome.failed[0]!.reason).toMatch(/^Not supported on PostgreSQL/);
      expect(outcome.failed[1]!.reason).toMatch(/out of range for type double precision/);
      const staged = async (audienceId: number) =>
        (
          await oneRange.conn.pool.query<{ n: number }>(
            'SELECT coalesce(sum(cardinality(profile_ids)), 0) AS n FROM job_range_results WHERE job_id = $1 AND audience_id = $2',
            [plan.jobId, audienceId],
          )
        ).rows[0]!.n;
      expect(await staged(points.audienceId)).toBe(0);
      expect(await staged(swedes.audienceId)).toBe(PROFILES / 3);
    } finally {
      await oneRange.conn.pool.query('DELETE FROM job_range_results WHERE job_id = $1', [plan.jobId]);
      await oneRange.conn.pool.query('DELETE FROM profiles WHERE id = $1', [added[0]!.id]);
    }
  });

  it('gives no membership to a qualifying profile deleted before the final write', async () => {
    const plan = { ...(await runnablePlan()), jobId: 900_004, now: NOW + 2 * DAY };
    // Twenty profiles move to Sweden (in this database only): they enter Swedes.
    await oneRange.conn.pool.query(
      `UPDATE profiles SET attributes = jsonb_set(attributes, '{homeAddress,countryCode}', '"SE"')
       WHERE id IN (SELECT id FROM profiles WHERE attributes #>> '{homeAddress,countryCode}' = 'NO' ORDER BY id LIMIT 20)`,
    );
    const [range] = await rangesOf(oneRange, plan.sandboxId, plan.jobId, 1);
    const outcome = await evaluateRange(oneRange, plan, range!, quietHooks());
    const swedes = store.definitions.find((d) => d.name === 'Swedes')!;
    const entrants = async () =>
      (
        await oneRange.conn.pool.query<{ profile_id: number }>(
          `SELECT r.profile_id FROM job_range_results s CROSS JOIN LATERAL unnest(s.profile_ids) AS r(profile_id)
           LEFT JOIN memberships m ON m.audience_id = s.audience_id AND m.profile_id = r.profile_id
           WHERE s.job_id = $1 AND s.audience_id = $2 AND m.status IS NULL ORDER BY r.profile_id`,
          [plan.jobId, swedes.audienceId],
        )
      ).rows.map((r) => r.profile_id);
    const [gone, ...others] = await entrants();
    expect(others.length).toBeGreaterThan(0);
    await oneRange.conn.pool.query('DELETE FROM profiles WHERE id = $1', [gone]);
    const client = await oneRange.conn.pool.connect();
    let metrics: SegmentMetrics | undefined;
    try {
      await client.query('BEGIN');
      metrics = await writeSegmentResultsPg(client, plan, {
        spans: [{ lo: range!.lo, hi: range!.hi, profiles: outcome.profiles }],
        segmentationMs: outcome.segmentationMs,
        started: performance.now(),
        failed: outcome.failed,
      });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const { rows } = await oneRange.conn.pool.query<{ profile_id: number; status: string }>(
      'SELECT profile_id, status FROM memberships WHERE audience_id = $1 AND profile_id = ANY($2::bigint[]) ORDER BY profile_id',
      [swedes.audienceId, [gone, ...others]],
    );
    expect(rows).toEqual(others.map((id) => ({ profile_id: id, status: 'REALIZED' })));
    // The members that stayed are counted as existing: the deleted entrant was never inserted,
    // so it is not subtracted from the size as one that entered.
    const stayed = await oneRange.conn.pool.query<{ n: number }>(
      `SELECT count(*) AS n FROM memberships WHERE audience_id = $1 AND status = 'EXISTING'`,
      [swedes.audienceId],
    );
    const byStatus = metrics!.segmentedProfileByStatusCounter[encodeGlobalId('Audience', swedes.audienceId)]!;
    expect(stayed.rows[0]!.n).toBeGreaterThan(0);
    expect(byStatus.existing).toBe(stayed.rows[0]!.n);
  });

  /** The job's definitions that run, for the range-only cases (which never write memberships). */
  function runnablePlan(): Promise<SegmentPlan> {
    const definitions = store.definitions.filter((d) => d.name !== 'Broken');
    return orderedPlan(store.conn, store.sandboxId, definitions, { jobId: 0, now: NOW, chunkSize: 64, notes: [] });
  }
});
