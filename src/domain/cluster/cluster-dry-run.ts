/**
 * Definition-change dry runs on a cluster node (docs/scale-out.md "Jobs across nodes", step 4):
 * a queued DEFINITION_CHANGE_PREVIEW job is claimed whole by one node (cluster-whole-jobs.ts)
 * and evaluated in one REPEATABLE READ snapshot, as the SQLite task reads in one read
 * transaction (definition-changes/definition-change-task.ts). What is not a read is that task's
 * own code: the running counts and when they stop (`ChangeCounts`), the exact sets' merge
 * (`compare`), the dependents' simulations (`DependentSimulation`) and the result
 * (`changeResult`); the random order is the same seeded permutation (`permutation`), so a run on
 * the same store reads the same pages and reports the same running estimates. The definition is
 * compiled for PostgreSQL (bound parameters only), and the dependents read a temporary
 * `memberships` that shadows the stored one, as a range of a segment job does.
 * Nothing is written but the job's result; the API reads it from the jobs row as on SQLite.
 */
import type pg from 'pg';
import { pgStatementRunner } from '../../db/pg/index.js';
import {
  audienceReferences,
  type CheckedExpression,
  compilePredicate,
  compileToSql,
  type FieldCatalog,
  type ResolvedAudience,
} from '../../pql/index.js';
import {
  type DefinitionChangeJobInput,
  type DefinitionChangePreview,
  definitionChangeJobKind,
  definitionChangePlan,
  dryRunInput,
} from '../definition-changes/definition-change-preview.js';
import {
  ascending,
  ChangeCounts,
  changeResult,
  compare,
  type DefinitionChangePlan,
  type DefinitionChangeResult,
  DependentSimulation,
  exactIsCheap,
  finalProgress,
} from '../definition-changes/definition-change-task.js';
import { type EvaluationRequest, requireDefinition } from '../definitions.js';
import {
  AUDIENCE_LOOKUPS,
  type AudienceRow,
  audienceLookups,
  type CheckedInput,
  checkParsed,
  type ExpressionInput,
  parseExpression,
  resolvedAudience,
} from '../expressions.js';
import { insertJob } from '../jobs/job-store.js';
import { CURRENT_STATUSES_SQL, statusSql } from '../membership-statuses.js';
import { checkDefinitionPg, readCatalogPg } from '../pg-expressions.js';
import { permutation } from '../previews/preview-samplers.js';
import { countProfiles } from '../profiles.js';
import { WORK_CHANNEL } from './cluster-segment-job.js';
import { type HeldJob, type Lease, runWholeJob, storeOn, type WholeJobEnd } from './cluster-whole-jobs.js';

/** The kind a node runs with this module. */
export const DRY_RUN_KIND = 'DEFINITION_CHANGE_PREVIEW' as const;

/**
 * previewDefinitionChange on PostgreSQL: checks the new expression and evaluation settings as an
 * update would (the same `dryRunInput`), against the sandbox as stored in PostgreSQL, and
 * queues the dry run for the cluster's nodes, woken at commit. Where the single-process check
 * prepares the SQLite statements (assertRunnable), this one compiles the expression for
 * PostgreSQL: what the compiler cannot express there is refused on the request.
 */
export async function enqueueClusterDryRun(
  pool: pg.Pool,
  sandboxId: number,
  definitionId: number,
  expression: ExpressionInput,
  options: { evaluationInfo?: EvaluationRequest | null; seed?: number | null } = {},
): Promise<DefinitionChangePreview> {
  const client = await pool.connect();
  let broken = true;
  try {
    await client.query('BEGIN');
    const store = storeOn(client);
    const def = await requireDefinition(store, sandboxId, definitionId);
    const catalog = await readCatalogPg(client, sandboxId);
    const checked = await checkOwnDefinitionPg(client, sandboxId, catalog, expression, def.audienceId);
    const now = Date.now();
    compileToSql(checked.checked, { now, sandboxId, dialect: 'postgres' });
    compilePredicate(checked.checked, { now, dialect: 'postgres' });
    const job = (await insertJob(
      store,
      sandboxId,
      'DEFINITION_CHANGE_PREVIEW',
      dryRunInput(def, expression, checked, options),
    )) as DefinitionChangePreview;
    await client.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, String(job.id)]);
    await client.query('COMMIT');
    broken = false;
    return job;
  } catch (err) {
    await client.query('ROLLBACK').then(
      () => {
        broken = false;
      },
      () => {},
    );
    throw err;
  } finally {
    client.release(broken);
  }
}

/** Runs a dry run this node holds to its end (the lease's renewals, cancel and final write: runWholeJob). */
export function runClusterDryRun(
  pool: pg.Pool,
  held: HeldJob<unknown>,
  settings: { node: string; leaseMs: number },
): Promise<WholeJobEnd> {
  const job = held as HeldJob<DefinitionChangeJobInput>;
  return runWholeJob<DefinitionChangeResult>(pool, job, settings, async (client, lease) => {
    // Not READ ONLY: the dependents' simulations write a temporary table.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    try {
      const plan = await definitionChangePlan(
        storeOn(client),
        { id: job.jobId, sandboxId: job.sandboxId, input: job.input },
        job.input.now,
      );
      const result = await evaluateDryRunPg(client, plan, lease);
      await client.query('COMMIT');
      return { finish: async () => ({ result, units: result.profilesRead }) };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  });
}

/**
 * The dry run of `plan` on PostgreSQL, inside the caller's REPEATABLE READ transaction on
 * `client`: the SQLite task's phases, with its reads written for PostgreSQL.
 */
export async function evaluateDryRunPg(
  client: pg.ClientBase,
  plan: DefinitionChangePlan,
  lease: Pick<Lease, 'check' | 'progress'>,
): Promise<DefinitionChangeResult> {
  const { sandboxId, now, audienceId } = plan;
  const catalog = await readCatalogPg(client, sandboxId);
  const { checked } = await checkOwnDefinitionPg(
    client,
    sandboxId,
    catalog,
    { format: 'PQL_TEXT', value: plan.expressionText },
    audienceId,
  );
  const predicate = compilePredicate(checked, { now, dialect: 'postgres' });
  const all = compileToSql(checked, { now, sandboxId, dialect: 'postgres' });
  const cheap = exactIsCheap(all, await membersOf(client, [...checked.audiences.values()]));
  const n = predicate.params.length;
  const classify = `SELECT (${predicate.sql}) AS q,
      EXISTS (SELECT 1 FROM memberships AS m WHERE m.audience_id = $${n + 1} AND m.profile_id = p.id
              AND m.status IN ${CURRENT_STATUSES_SQL}) AS m
    FROM profiles AS p WHERE p.id = ANY($${n + 2}::bigint[])`;
  const sampler = await openSamplerPg(client, sandboxId, plan.seed);
  const { population } = sampler;
  const counts = new ChangeCounts(population, plan.confidenceLevel, cheap);
  const report = (progress: ReturnType<ChangeCounts['progress']>) =>
    lease.progress({
      done: progress.done,
      total: progress.total,
      result: definitionChangeJobKind.runningResult?.(progress),
    });
  try {
    while (!counts.readAll()) {
      lease.check();
      const { read, hits } = await sampler.next(counts.nextChunk());
      if (read === 0) break;
      const { rows } = await client.query<{ q: boolean | number; m: boolean }>(classify, [
        ...predicate.params,
        audienceId,
        hits,
      ]);
      counts.add(read, rows);
      report(counts.progress());
      if (counts.enough()) break;
    }
  } finally {
    // A failed statement leaves the transaction aborted; its rollback drops the table anyway.
    await sampler.close().catch(() => {});
  }
  lease.check();
  // The exact sets: the new expression's profiles (the whole-store statement, as a segment job
  // runs it) merged with the stored members, both in id order.
  const qualifying = ascending(
    await idList(client, `SELECT coalesce(json_agg(q.id ORDER BY q.id), '[]') AS ids FROM (${all.sql}) AS q`, [
      ...all.params,
    ]),
  );
  const current = await idList(
    client,
    `SELECT coalesce(json_agg(profile_id ORDER BY profile_id), '[]') AS ids FROM memberships
     WHERE audience_id = $1 AND status IN ${CURRENT_STATUSES_SQL}`,
    [audienceId],
  );
  const sides = compare(qualifying, current);
  lease.check();
  const result = changeResult(sides, population, await affectedDependentsPg(client, plan, sides.join, sides.leave));
  report(finalProgress(result));
  return result;
}

/**
 * A definition checked as the definition of audience `selfAudienceId` (checkExpression with
 * `selfAudienceId` on SQLite): a cycle through it is an error. The checker asks synchronously,
 * so what it may ask is read first: the audiences the expression names, and the audiences those
 * depend on, transitively.
 */
async function checkOwnDefinitionPg(
  client: pg.ClientBase,
  sandboxId: number,
  catalog: FieldCatalog,
  input: ExpressionInput,
  selfAudienceId: number,
): Promise<CheckedInput> {
  const parsed = parseExpression(input);
  const runner = pgStatementRunner(client as pg.PoolClient);
  const audiences = new Map<string, ResolvedAudience>();
  for (const ref of audienceReferences(parsed.ast)) {
    for (const { by, key } of audienceLookups(ref)) {
      const row = await runner.get<AudienceRow>(AUDIENCE_LOOKUPS[by], [sandboxId, key]);
      if (row) {
        audiences.set(ref, resolvedAudience(row));
        break;
      }
    }
  }
  const dependencies = new Map<number, number[]>();
  const queue = [...audiences.values()].map((a) => a.id);
  while (queue.length > 0) {
    const id = queue.shift()!;
    if (dependencies.has(id)) continue;
    const { rows } = await client.query<{ audienceId: number }>(
      `SELECT dd.audience_id AS "audienceId" FROM definition_dependencies dd
       JOIN audiences a ON a.definition_id = dd.definition_id WHERE a.sandbox_id = $1 AND a.id = $2 ORDER BY dd.audience_id`,
      [sandboxId, id],
    );
    const next = rows.map((r) => r.audienceId);
    dependencies.set(id, next);
    queue.push(...next);
  }
  return checkParsed(parsed, {
    catalog,
    selfAudienceId,
    resolveAudience: (ref) => audiences.get(ref),
    audienceDependencies: (id) => dependencies.get(id) ?? [],
  });
}

/** A list of ids the statement gives as one JSON array (one row, not a row per id). */
async function idList(client: pg.ClientBase, text: string, params: unknown[]): Promise<number[]> {
  const { rows } = await client.query<{ ids: number[] }>(text, params);
  return rows[0]?.ids ?? [];
}

/** Current members of the audiences, by their kept sizes. */
async function membersOf(client: pg.ClientBase, audienceIds: readonly number[]): Promise<number> {
  if (audienceIds.length === 0) return 0;
  const { rows } = await client.query<{ n: number }>(
    'SELECT coalesce(sum(size), 0)::bigint AS n FROM audiences WHERE id = ANY($1::bigint[])',
    [audienceIds],
  );
  return Number(rows[0]?.n ?? 0);
}

interface PgSampler {
  population: number;
  next(size: number): Promise<{ read: number; hits: number[] }>;
  close(): Promise<void>;
}

/** When at least this share of the id range belongs to the sandbox, permute ids directly (as preview-samplers.ts). */
const DENSE_ENOUGH = 0.5;

/**
 * openSampler (previews/preview-samplers.ts) on PostgreSQL, for the dry run's use (every profile
 * of the sandbox, no predicate): the same choice of dense or numbered permutation and the same
 * seeded order, so the same store is read in the same pages.
 */
async function openSamplerPg(client: pg.ClientBase, sandboxId: number, seed: number): Promise<PgSampler> {
  const { rows } = await client.query<{ lo: number | null; hi: number | null }>(
    'SELECT min(id) AS lo, max(id) AS hi FROM profiles WHERE sandbox_id = $1',
    [sandboxId],
  );
  const lo = rows[0]?.lo ?? 0;
  const hi = rows[0]?.hi ?? 0;
  const population = await countProfiles(storeOn(client), sandboxId);
  const width = population > 0 ? hi - lo + 1 : 1;
  if (population === 0 || population / width >= DENSE_ENOUGH) {
    const position = permutation(width, seed);
    let cursor = 0;
    return {
      population,
      async next(size) {
        // Ask for a few more ids than needed (some may be gaps), then keep exactly `size` in permutation order.
        const hits: number[] = [];
        let read = 0;
        while (read < size && cursor < width) {
          const want = Math.min(width - cursor, Math.ceil(((size - read) * width) / Math.max(1, population)) + 16);
          const ids = new Array<number>(want);
          for (let i = 0; i < want; i++) ids[i] = lo + position(cursor + i);
          const found = new Set(
            (
              await client.query<{ id: number }>(
                'SELECT p.id FROM profiles AS p WHERE p.sandbox_id = $1 AND p.id = ANY($2::bigint[])',
                [sandboxId, ids],
              )
            ).rows.map((r) => r.id),
          );
          let used = 0;
          for (const id of ids) {
            if (read === size) break;
            used++;
            if (!found.has(id)) continue;
            read++;
            hits.push(id);
          }
          cursor += used;
        }
        return { read, hits };
      },
      async close() {},
    };
  }
  await client.query('DROP TABLE IF EXISTS pg_temp.sample_ids');
  await client.query('CREATE TEMP TABLE sample_ids (n bigint PRIMARY KEY, id bigint NOT NULL) ON COMMIT DROP');
  await client.query(
    'INSERT INTO pg_temp.sample_ids (n, id) SELECT row_number() OVER (ORDER BY id) - 1, id FROM profiles WHERE sandbox_id = $1',
    [sandboxId],
  );
  await client.query('ANALYZE pg_temp.sample_ids');
  const position = permutation(Math.max(1, population), seed);
  let cursor = 0;
  return {
    population,
    async next(size) {
      const take = Math.min(size, population - cursor);
      const positions = new Array<number>(take);
      for (let i = 0; i < take; i++) positions[i] = position(cursor + i);
      cursor += take;
      const { rows } = await client.query<{ id: number }>(
        'SELECT s.id FROM pg_temp.sample_ids AS s WHERE s.n = ANY($1::bigint[])',
        [positions],
      );
      return { read: take, hits: rows.map((r) => r.id) };
    },
    async close() {
      await client.query('DROP TABLE IF EXISTS pg_temp.sample_ids');
    },
  };
}

/**
 * affectedDependents (definition-change-task.ts) on PostgreSQL: the same simulations, each
 * dependent compiled for PostgreSQL and evaluated over a temporary `memberships`, which the
 * compiled SQL's unqualified `memberships` finds first (the session's temporary schema comes
 * first); the stored rows are copied into it by the stored table's schema-qualified name.
 */
async function affectedDependentsPg(
  client: pg.ClientBase,
  plan: DefinitionChangePlan,
  join: readonly number[],
  leave: readonly number[],
) {
  if (plan.dependents.length === 0 || join.length + leave.length === 0) return [];
  const simulation = new DependentSimulation(plan.audienceId, join, leave);
  const schema = (await client.query<{ s: string }>('SELECT current_schema() AS s')).rows[0]!.s;
  const stored = `"${schema.replace(/"/g, '""')}".memberships`;
  const catalog = await readCatalogPg(client, plan.sandboxId);
  const checkedDependents: CheckedExpression[] = [];
  for (const dep of plan.dependents) {
    checkedDependents.push(
      (await checkDefinitionPg(client, plan.sandboxId, catalog, { format: 'PQL_TEXT', value: dep.expressionText }))
        .checked,
    );
  }
  await client.query(
    `CREATE TEMP TABLE memberships (sandbox_id bigint, audience_id bigint NOT NULL, profile_id bigint NOT NULL,
       status text NOT NULL, payload jsonb, PRIMARY KEY (audience_id, profile_id)) ON COMMIT DROP`,
  );
  try {
    for (const [i, dep] of plan.dependents.entries()) {
      const checked = checkedDependents[i]!;
      const predicate = compilePredicate(checked, { now: plan.now, dialect: 'postgres' });
      const n = predicate.params.length;
      const evaluate = `SELECT p.id FROM profiles AS p WHERE p.id = ANY($${n + 1}::bigint[]) AND (${predicate.sql})`;
      const reads = simulation.reads(checked);
      // The stored rows are the same in both simulations; only the simulated audiences' rows swap.
      await client.query('DELETE FROM pg_temp.memberships');
      await client.query(
        `INSERT INTO pg_temp.memberships SELECT m.sandbox_id, m.audience_id, m.profile_id, m.status, m.payload
         FROM ${stored} AS m WHERE m.audience_id = ANY($1::bigint[]) AND m.profile_id = ANY($2::bigint[])
           AND m.status IN ${CURRENT_STATUSES_SQL}`,
        [reads.stored, simulation.changed],
      );
      const run = async (sim: 'before' | 'after') => {
        for (const id of reads.simulated) {
          await client.query('DELETE FROM pg_temp.memberships WHERE audience_id = $1', [id]);
          await client.query(
            `INSERT INTO pg_temp.memberships SELECT $1::bigint, $2::bigint, x, ${statusSql('REALIZED')}, NULL
             FROM unnest($3::bigint[]) AS x`,
            [plan.sandboxId, id, simulation.members(sim, id)],
          );
        }
        const { rows } = await client.query<{ id: number }>(evaluate, [
          ...predicate.params,
          simulation.candidates(sim, reads.required),
        ]);
        return rows.map((r) => r.id);
      };
      const was = await run('before');
      const will = await run('after');
      simulation.record(dep, was, will);
    }
  } finally {
    // A failed statement leaves the transaction aborted; its rollback drops the table anyway.
    await client.query('DROP TABLE IF EXISTS pg_temp.memberships').catch(() => {});
  }
  return simulation.affected;
}
