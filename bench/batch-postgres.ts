/**
 * `npm run bench -- batch --backend postgres [--profiles 1000000] [--events-per-profile 10]
 *   [--runs 3] [--pg-url postgres://…/segql_bench] [--reload] [--nodes 1,2,3] [--plan a,b]
 *   [--data-dir .bench-data]`
 *
 * The PostgreSQL side of the batch bench (issue 21). The standard data set is copied into the
 * bench's own PostgreSQL database once (bench/pg-dataset.ts) and the reference definitions are
 * stored there as the product stores them (bench/pg-reference-segments.ts). Then, on one
 * connection, alternating which goes first:
 * - the floor: the hand-written PostgreSQL queries of bench/floor.pg.sql.ts in the job's order,
 *   in one REPEATABLE READ transaction, each inserting its ids into a temp table named
 *   `memberships`, which shadows the stored one (PostgreSQL searches the session's temp schema
 *   first), so the inSegment floors read the sets computed earlier in the pass;
 * - the compiled run: each stored definition checked and compiled for PostgreSQL as a job does
 *   (`compileToSql` with the postgres dialect), its statement inserted the same way.
 * A check pass (also the warm-up) compares the two per audience (count and id sum): MISMATCH
 * lines and exit 1 on a difference. With `--nodes`, the segment job itself runs on that many
 * node processes (bench/cluster-job.ts) and is timed against the floor of the same round: the
 * first evaluation (`job-ms`, every member written), then two more jobs over the unchanged data:
 * the first re-run (`rerun-ms`: every member REALIZED → EXISTING, one update and one history row
 * each) and the next (`steady-ms`: every member EXISTING and staying so, the daily re-run).
 * `--plan a,b` prints EXPLAIN ANALYZE of both sides' statements for those definitions.
 */
import pg from 'pg';
import { type ClusterNodes, startClusterNodes } from './cluster-job.js';
import { FLOORS_PG } from './floor.pg.sql.js';
import type { FloorContext, FloorQuery } from './floor.sql.js';
import { dataDirArg, intArg, loadDefinitions, prepareDataset, report, statsOf } from './lib.js';
import { DEFAULT_BENCH_PG_URL, preparePgDataset } from './pg-dataset.js';
import { compileForPostgres, type PgReferenceSegments, storeReferenceSegments } from './pg-reference-segments.js';

const NAME = 'batch-postgres';
const CURRENT = "('REALIZED', 'EXISTING')";

export type Side = 'floor' | 'compiled';

export async function run(args: Map<string, string>): Promise<number> {
  const profiles = intArg(args, 'profiles', 1_000_000);
  const eventsPerProfile = intArg(args, 'events-per-profile', 10);
  const runs = intArg(args, 'runs', 3);
  const url = args.get('pg-url') ?? DEFAULT_BENCH_PG_URL;
  const nodes = nodesArg(args.get('nodes'));
  const explain = new Set((args.get('plan') ?? '').split(',').filter((s) => s !== ''));

  const dataset = await prepareDataset({ profiles, eventsPerProfile, seed: 42, dataDir: dataDirArg(args) });
  const copy = await preparePgDataset(dataset, { url, reload: args.get('reload') === 'true' });
  if (copy.loadMs !== undefined) report(NAME, 'load-ms', copy.loadMs, 'ms', statsOf([copy.loadMs]));

  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let segments: PgReferenceSegments | undefined;
  let failures = 0;
  try {
    segments = await storeReferenceSegments(client, dataset, loadDefinitions());
    for (const name of explain) {
      if (!segments.stored.some((d) => d.name === name)) throw new Error(`--plan: no reference definition "${name}"`);
    }

    // Check pass, also the warm-up (caches, plans): the floor's sets against the compiled ones.
    const floorSets = (await runPass(client, segments, 'floor', true)).sets!;
    const compiledSets = (await runPass(client, segments, 'compiled', true)).sets!;
    failures += checkSets(segments, floorSets, compiledSets, 'compiled');

    const times: Record<Side, number[]> = { floor: [], compiled: [] };
    const perDefinition: Record<Side, number[][]> = { floor: [], compiled: [] };
    const jobMs = new Map<number, number[]>(nodes.map((n) => [n, []]));
    const rerunMs = new Map<number, number[]>(nodes.map((n) => [n, []]));
    const steadyMs = new Map<number, number[]>(nodes.map((n) => [n, []]));
    for (let r = 0; r < runs; r++) {
      // Alternates which side runs first, so neither always inherits the other's warm cache.
      const order: Side[] = r % 2 === 0 ? ['compiled', 'floor'] : ['floor', 'compiled'];
      for (const side of order) {
        const pass = await runPass(client, segments, side, false);
        times[side].push(pass.ms);
        perDefinition[side].push(pass.perDefinition);
      }
      for (const n of nodes) {
        const cluster = await startClusterNodes({ url, sandboxId: segments.sandboxId, nodes: n });
        try {
          const job = await timeClusterJob(client, segments, cluster, n, floorSets, true);
          failures += job.failures;
          jobMs.get(n)!.push(job.ms);
          // The daily re-run over unchanged data, as the SQLite bench's steady-ms: the second job
          // moves every member from REALIZED to EXISTING, the third (timed) finds nothing to change.
          const rerun = await timeClusterJob(client, segments, cluster, n, floorSets, false);
          failures += rerun.failures;
          rerunMs.get(n)!.push(rerun.ms);
          const steady = await timeClusterJob(client, segments, cluster, n, floorSets, false);
          failures += steady.failures;
          steadyMs.get(n)!.push(steady.ms);
        } finally {
          await cluster.stop();
        }
      }
    }

    const fs = statsOf(times.floor);
    report(NAME, 'floor-ms', fs.median, 'ms', fs);
    const cs = statsOf(times.compiled);
    report(NAME, 'compiled-ms', cs.median, 'ms', cs);
    const ratio = statsOf(times.compiled.map((ms, i) => ms / times.floor[i]!));
    report(NAME, 'compiled-ratio', ratio.median, 'x', ratio);
    for (const [n, ms] of jobMs) {
      if (ms.length === 0) continue;
      const js = statsOf(ms);
      report(NAME, `job-ms.nodes-${n}`, js.median, 'ms', js);
      const jr = statsOf(ms.map((t, i) => t / times.floor[i]!));
      report(NAME, `ratio.nodes-${n}`, jr.median, 'x', jr);
      const rerun = statsOf(rerunMs.get(n)!);
      report(NAME, `rerun-ms.nodes-${n}`, rerun.median, 'ms', rerun);
      const steady = steadyMs.get(n)!;
      const ss = statsOf(steady);
      report(NAME, `steady-ms.nodes-${n}`, ss.median, 'ms', ss);
      const sr = statsOf(steady.map((t, i) => t / times.floor[i]!));
      report(NAME, `steady-ratio.nodes-${n}`, sr.median, 'x', sr);
    }
    printPerDefinition(segments, perDefinition);
    if (explain.size > 0) {
      await runPass(client, segments, 'floor', false, explain);
      await runPass(client, segments, 'compiled', false, explain);
    }
  } finally {
    segments?.close();
    await client.end();
  }
  if (failures > 0) console.log(`FAILED ${NAME}: ${failures} check(s) failed (MISMATCH lines above)`);
  return failures > 0 ? 1 : 0;
}

function nodesArg(value: string | undefined): number[] {
  if (value === undefined) return [];
  const nodes = value.split(',').map((s) => Number(s.trim()));
  if (nodes.some((n) => !Number.isInteger(n) || n <= 0))
    throw new Error(`--nodes must list positive integers, got "${value}"`);
  return nodes;
}

// ---------------------------------------------------------------------------------------------
// the two passes

export interface SetPrint {
  n: number;
  sum: number;
}

export interface Pass {
  ms: number;
  /** Per definition in plan order, ms of its statement (compiling it included, on the compiled side). */
  perDefinition: number[];
  /** audience id → fingerprint of its set, when asked for. */
  sets?: Map<number, SetPrint>;
}

export function floorContext(segments: PgReferenceSegments): FloorContext {
  const byName = new Map(segments.stored.map((d) => [d.name, d.audienceId]));
  return {
    sandboxId: segments.sandboxId,
    now: segments.now,
    audience: (name) => {
      const id = byName.get(name);
      if (id === undefined) throw new Error(`floor needs audience "${name}", which is not a reference definition`);
      return id;
    },
  };
}

function floorPgOf(name: string, ctx: FloorContext): FloorQuery {
  const floor = FLOORS_PG[name];
  if (!floor) throw new Error(`bench/floor.pg.sql.ts has no floor for "${name}"`);
  return floor(ctx);
}

/**
 * One side's statements in plan order inside one REPEATABLE READ transaction, each inserting its
 * ids into the temp `memberships`; timed from BEGIN to COMMIT, as the SQLite floor is. With
 * `explain`, the statements of those definitions run under EXPLAIN ANALYZE (which executes
 * them, so later inSegment statements still find their rows) and their plans are printed.
 */
export async function runPass(
  client: pg.Client,
  segments: PgReferenceSegments,
  side: Side,
  fingerprint: boolean,
  explain?: ReadonlySet<string>,
): Promise<Pass> {
  const ctx = floorContext(segments);
  const perDefinition: number[] = [];
  await client.query('DROP TABLE IF EXISTS pg_temp.memberships');
  const start = performance.now();
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  try {
    await client.query(
      'CREATE TEMP TABLE memberships (sandbox_id bigint, audience_id bigint NOT NULL, profile_id bigint NOT NULL, status text NOT NULL, payload jsonb, PRIMARY KEY (audience_id, profile_id))',
    );
    for (const def of segments.stored) {
      const t = performance.now();
      const q = side === 'floor' ? floorPgOf(def.name, ctx) : compileForPostgres(segments, def.expressionText);
      const n = q.params.length;
      const insert = `INSERT INTO pg_temp.memberships (sandbox_id, audience_id, profile_id, status) SELECT $${n + 1}::bigint, $${n + 2}::bigint, id, 'REALIZED' FROM (${q.sql}) AS f`;
      const params = [...q.params, segments.sandboxId, def.audienceId];
      if (explain?.has(def.name)) {
        const plan = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${insert}`, params);
        for (const row of plan.rows) console.log(`plan ${NAME} ${side} ${def.name}: ${row['QUERY PLAN']}`);
      } else {
        await client.query(insert, params);
      }
      perDefinition.push(performance.now() - t);
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK');
    throw e;
  }
  const ms = performance.now() - start;
  let sets: Map<number, SetPrint> | undefined;
  if (fingerprint) sets = await fingerprints(client, 'pg_temp.memberships', segments);
  await client.query('DROP TABLE pg_temp.memberships');
  return { ms, perDefinition, sets };
}

/** Count and id sum of each bench audience's current members in `table`. */
async function fingerprints(
  client: pg.Client,
  table: 'pg_temp.memberships' | 'public.memberships',
  segments: PgReferenceSegments,
): Promise<Map<number, SetPrint>> {
  const ids = segments.stored.map((d) => d.audienceId);
  const rows = await client.query<{ audience_id: number; n: number; sum: number }>(
    `SELECT audience_id, count(*) AS n, sum(profile_id)::float8 AS sum FROM ${table}
     WHERE audience_id = ANY($1::bigint[]) AND status IN ${CURRENT} GROUP BY audience_id`,
    [ids],
  );
  const sets = new Map<number, SetPrint>(ids.map((id) => [id, { n: 0, sum: 0 }]));
  for (const r of rows.rows) sets.set(r.audience_id, { n: r.n, sum: r.sum });
  return sets;
}

/** The other side's sets against the floor's; prints each audience's size and returns the failures. */
function checkSets(
  segments: PgReferenceSegments,
  floor: Map<number, SetPrint>,
  other: Map<number, SetPrint>,
  label: string,
): number {
  let failures = 0;
  for (const def of segments.stored) {
    const f = floor.get(def.audienceId)!;
    const o = other.get(def.audienceId)!;
    if (label === 'compiled') {
      console.log(`rows ${NAME} ${def.name}=${f.n} (${((f.n / segments.profiles) * 100).toFixed(2)} %)`);
    }
    if (f.n !== o.n || f.sum !== o.sum) {
      failures++;
      console.log(
        `MISMATCH ${NAME} ${def.name}: ${label} ${o.n} members (id sum ${o.sum}), floor ${f.n} (id sum ${f.sum})`,
      );
    }
  }
  return failures;
}

/** Per definition, the median of its statement's time on each side and their ratio. */
function printPerDefinition(segments: PgReferenceSegments, per: Record<Side, number[][]>): void {
  segments.stored.forEach((def, i) => {
    const f = statsOf(per.floor.map((run) => run[i]!)).median;
    const c = statsOf(per.compiled.map((run) => run[i]!)).median;
    console.log(
      `phase ${NAME} ${def.name} floor-ms=${f.toFixed(1)} compiled-ms=${c.toFixed(1)} ratio=${(c / f).toFixed(2)}`,
    );
  });
}

// ---------------------------------------------------------------------------------------------
// the job on N nodes

/**
 * Runs the job on the `nodes` started nodes — first resetting the bench audiences when `fresh` (a first
 * evaluation, every member written) — and checks its memberships against the floor's sets.
 */
async function timeClusterJob(
  client: pg.Client,
  segments: PgReferenceSegments,
  cluster: ClusterNodes,
  nodes: number,
  floorSets: Map<number, SetPrint>,
  fresh: boolean,
): Promise<{ ms: number; failures: number }> {
  if (fresh) await resetMemberships(client, segments);
  const before = await walActivity(client);
  const run = await cluster.runJob(
    segments.stored.map((d) => d.definitionId),
    segments.now,
  );
  const after = await walActivity(client);
  const sets = await fingerprints(client, 'public.memberships', segments);
  console.log(
    `phase ${NAME} ${fresh ? 'job' : 're-run'} on ${nodes} node(s): ${run.ms.toFixed(0)} ms, evaluation ${run.metrics.profileSegmentationTimeMs} ms over all ranges, ranges by node ${JSON.stringify(run.rangesByNode)}, WAL ${((after.walBytes - before.walBytes) / 2 ** 20).toFixed(0)} MiB, checkpoints requested ${after.forced - before.forced} (max_wal_size ${after.maxWalSize})`,
  );
  return { ms: run.ms, failures: checkSets(segments, floorSets, sets, `job on ${nodes} node(s)`) };
}

/**
 * The server's WAL position and its count of requested checkpoints (those WAL volume forces, and
 * any other session's CHECKPOINT or CREATE DATABASE): a write larger than `max_wal_size` makes
 * PostgreSQL checkpoint in the middle of it, after which every page the write touches again goes
 * into the WAL whole.
 */
async function walActivity(client: pg.Client): Promise<{ walBytes: number; forced: number; maxWalSize: string }> {
  const { rows } = await client.query<{ wal: string; forced: string; max: string }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS wal, checkpoints_req::text AS forced,
       current_setting('max_wal_size') AS max FROM pg_stat_bgwriter`,
  );
  return { walBytes: Number(rows[0]!.wal), forced: Number(rows[0]!.forced), maxWalSize: rows[0]!.max };
}

/** Back to the state before the first job: no memberships, history or sizes for the bench audiences. */
async function resetMemberships(client: pg.Client, segments: PgReferenceSegments): Promise<void> {
  const ids = segments.stored.map((d) => d.audienceId);
  for (const table of ['memberships', 'membership_history', 'audience_size_history']) {
    await client.query(`DELETE FROM public.${table} WHERE audience_id = ANY($1::bigint[])`, [ids]);
  }
  await client.query('UPDATE audiences SET size = 0, last_evaluated_at = NULL WHERE id = ANY($1::bigint[])', [ids]);
  // Dead rows of the previous job would otherwise make every later job's writes slower.
  await client.query('VACUUM public.memberships, public.membership_history, public.audience_size_history');
}
