/**
 * The `dryrun` part of `npm run bench -- explain`: the dry run of a definition change
 * (`previewDefinitionChange`'s task, run in-thread through `runJobTask` as the job worker runs
 * it, with the runner's own plan) of each reference definition, on a scratch copy of the
 * standard data set (`--profiles`, default 1 M), against that definition's batch floor: its
 * hand-written query of bench/floor.sql.ts returning its ids to JS, timed back to back with
 * the dry run, order alternating by run. Target: `dryrun-ratio.<name>` ≤ 1.5.
 *
 * The change is each definition to its own reference expression, against stored members made
 * to differ from it: one segment job writes every reference audience, then members with
 * id % 10 = 0 are removed and profiles with id % 50 = 5 added as members (untimed), so every
 * dry run has profiles joining, leaving and staying. Its exact counts must equal a direct SQL
 * count of the floor's ids against the stored members; a difference prints MISMATCH and makes
 * the exit code 1. A definition other reference definitions read through inSegment is timed
 * with its dependents' evaluation (it is part of the dry run); `dependents.<name>` says how many.
 */
import type { Connection } from '../src/db/index.js';
import {
  type DefinitionChangePreview,
  definitionChangePlan,
} from '../src/domain/definition-changes/definition-change-preview.js';
import definitionChangeTask, {
  type DefinitionChangeResult,
} from '../src/domain/definition-changes/definition-change-task.js';
import type { SegmentDefinition } from '../src/domain/definitions.js';
import { insertJob, updateJob } from '../src/domain/jobs/job-store.js';
import { runJobTask } from '../src/domain/jobs/task.js';
import { floorOf, openWorkCopy, runSegmentJob } from './batch.bench.js';
import { dataDirArg, formatValue, intArg, loadDefinitions, prepareDataset, report, statsOf } from './lib.js';
import { createReferenceSegments, type ReferenceSegments } from './reference-segments.js';

const NAME = 'explain';
const TARGET = 1.5;
const CURRENT = "('REALIZED', 'EXISTING')";

/** Runs the part; true when a count differed from SQL's. */
export async function dryRunBench(args: Map<string, string>): Promise<boolean> {
  const profiles = intArg(args, 'profiles', 1_000_000);
  const eventsPerProfile = intArg(args, 'events-per-profile', 10);
  const runs = intArg(args, 'dryrun-runs', 3);
  const only = args
    .get('only')
    ?.split(',')
    .filter((s) => s !== '');
  const dataset = await prepareDataset({ profiles, eventsPerProfile, seed: 42, dataDir: dataDirArg(args) });
  const work = await openWorkCopy(dataset, 'dryrun');
  let failed = false;
  try {
    const { conn } = work;
    const segments = await createReferenceSegments(conn, dataset, loadDefinitions());
    await runSegmentJob(conn, segments);
    perturbMembers(conn, segments);
    const ratios: number[][] = [];
    const missed: string[] = [];
    for (const { reference, definition } of segments.created) {
      const name = reference.name;
      if (only && !only.includes(name)) continue;
      const q = floorOf(name, segments.floorContext);
      const floor = conn.sqlite.prepare(q.sql).pluck();
      // Untimed warm-up of both sides, also the check against SQL.
      const check = await dryRun(conn, segments, definition, 1);
      const expected = sqlCounts(conn, definition.audienceId, q.sql, q.params);
      const got = {
        join: check.result.wouldJoin.value,
        leave: check.result.wouldLeave.value,
        stay: check.result.wouldStay.value,
      };
      console.log(
        `counts ${NAME} dryrun ${name}: join ${got.join} leave ${got.leave} stay ${got.stay}; sql join ${expected.join} leave ${expected.leave} stay ${expected.stay}`,
      );
      if (got.join !== expected.join || got.leave !== expected.leave || got.stay !== expected.stay) {
        console.log(`MISMATCH ${NAME} dryrun ${name}: counts differ from SQL`);
        failed = true;
      }
      const dry: number[] = [];
      const floors: number[] = [];
      for (let r = 0; r < runs; r++) {
        const timeFloor = () => {
          const t = performance.now();
          floor.all(...q.params);
          floors.push(performance.now() - t);
        };
        if (r % 2 === 1) timeFloor();
        dry.push((await dryRun(conn, segments, definition, r + 2)).ms);
        if (r % 2 === 0) timeFloor();
      }
      const ratio = statsOf(dry.map((ms, i) => ms / floors[i]!));
      report(NAME, `dryrun-ratio.${name}`, ratio.median, 'x', ratio);
      const ds = statsOf(dry);
      report(NAME, `dryrun-ms.${name}`, ds.median, 'ms', ds);
      const fs = statsOf(floors);
      report(NAME, `dryrun-floor-ms.${name}`, fs.median, 'ms', fs);
      if (check.dependents > 0) console.log(`context ${NAME} dependents.${name}=${check.dependents}`);
      if (ratio.median > TARGET) missed.push(`${name} ${formatValue(ratio.median)}x`);
      ratios.push(dry.map((ms, i) => ms / floors[i]!));
    }
    console.log(
      `summary ${NAME} dryrun target <= ${TARGET}x of the floor: ${missed.length === 0 ? 'met' : `MISSED by ${missed.join(', ')}`} (${ratios.length} definitions, ${profiles} profiles)`,
    );
  } finally {
    work.close();
  }
  return failed;
}

/** Members with id % 10 = 0 leave every reference audience; profiles with id % 50 = 5 join them all. */
function perturbMembers(conn: Connection, segments: ReferenceSegments): void {
  const ids = JSON.stringify(segments.audienceIds);
  const db = conn.sqlite;
  db.transaction(() => {
    db.prepare(
      'DELETE FROM memberships WHERE audience_id IN (SELECT value FROM json_each(?)) AND profile_id % 10 = 0',
    ).run(ids);
    db.prepare(
      `INSERT OR IGNORE INTO memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at)
       SELECT p.sandbox_id, a.value, p.id, 'EXISTING', ?, ? FROM profiles AS p, json_each(?) AS a
       WHERE p.sandbox_id = ? AND p.id % 50 = 5`,
    ).run(segments.now, segments.now, ids, segments.sandboxId);
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
}

/** join / leave / stay by SQL: the floor's ids against the stored current members. */
function sqlCounts(conn: Connection, audienceId: number, floorSql: string, params: unknown[]) {
  const row = conn.sqlite
    .prepare(
      `WITH f(id) AS MATERIALIZED (${floorSql}),
            m(id) AS MATERIALIZED (SELECT profile_id FROM memberships WHERE audience_id = ? AND status IN ${CURRENT})
       SELECT (SELECT count(*) FROM f WHERE id NOT IN (SELECT id FROM m)) AS "join",
              (SELECT count(*) FROM m WHERE id NOT IN (SELECT id FROM f)) AS leave,
              (SELECT count(*) FROM f WHERE id IN (SELECT id FROM m)) AS stay`,
    )
    .get(...params, audienceId) as { join: number; leave: number; stay: number };
  return row;
}

/** One dry run as the worker runs it: a PROCESSING jobs row, the runner's plan, then the task. */
async function dryRun(
  conn: Connection,
  segments: ReferenceSegments,
  definition: SegmentDefinition,
  seed: number,
): Promise<{ ms: number; result: DefinitionChangeResult; dependents: number }> {
  const { sandboxId, now } = segments;
  const job = (await insertJob(conn, sandboxId, 'DEFINITION_CHANGE_PREVIEW', {
    definitionId: definition.id,
    audienceId: definition.audienceId,
    expression: definition.expression,
    expressionText: definition.expressionText,
    evaluationInfo: definition.evaluationInfo,
    evaluationWarnings: [],
    at: now,
    now,
    seed,
  })) as DefinitionChangePreview;
  await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
  const started = performance.now();
  const plan = await definitionChangePlan(conn, job, now);
  const result = runJobTask(conn, job.id, definitionChangeTask, plan, {
    progress: () => {},
    cancelled: () => false,
  });
  return { ms: performance.now() - started, result, dependents: plan.dependents.length };
}
