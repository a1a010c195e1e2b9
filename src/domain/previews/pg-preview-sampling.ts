/**
 * A preview's reads on PostgreSQL (docs/scale-out.md "Previews on a cluster"): the reads of the
 * SQLite task (preview-sampling.ts, preview-samplers.ts) written for a client inside one
 * REPEATABLE READ transaction, the definition compiled for PostgreSQL with bound parameters
 * only. Everything that decides the answer — the sampler chosen, the order of the sample, the
 * chunk sizes, when random reading stops, the estimates, the namespace sample — is the shared
 * code (preview-run.ts, preview-samplers.ts), so the same store and seed give SQLite's answer.
 */
import type pg from 'pg';
import { pgStatementRunner } from '../../db/pg/index.js';
import {
  type CheckedExpression,
  compilePredicate,
  compileToSql,
  evaluate,
  PqlError,
  type SqlStatement,
} from '../../pql/index.js';
import { checkDefinitionPg, readCatalogPg } from '../pg-expressions.js';
import { readProfileDocument } from '../profile-documents.js';
import { defaultSampleSize } from './estimate.js';
import { exactIsCheap, type NamespaceRow, PreviewCounter, type PreviewProgress } from './preview-run.js';
import { sampleWalk } from './preview-samplers.js';
import type { PreviewPlan } from './preview-sampling.js';

/** What the caller does as the preview runs. */
export interface PgPreviewHooks {
  progress(progress: PreviewProgress): void;
  /** Between reads: throws to stop the preview (a cancel, a lost lease). */
  checkpoint(): void;
  /** Test-only: a pause before each random chunk, so a test can stop a node mid-preview. */
  chunkDelayMs?: number;
}

/**
 * Runs a preview's reads on `client`, which must be inside a REPEATABLE READ transaction (one
 * snapshot for the whole preview, as SQLite's read transaction gives the job worker), and
 * returns its counter: the final estimate, the result and the qualifying profiles to store.
 */
export async function samplePreviewPg(
  client: pg.PoolClient,
  plan: PreviewPlan,
  hooks: PgPreviewHooks,
): Promise<PreviewCounter> {
  const catalog = await readCatalogPg(client, plan.sandboxId);
  const { checked } = await checkDefinitionPg(client, plan.sandboxId, catalog, {
    format: 'PQL_TEXT',
    value: plan.expressionText,
  });
  const predicate = compiledOrNot(() => compilePredicate(checked, { now: plan.now, dialect: 'postgres' }));
  const js = jsEvaluation(client, checked, plan);
  const range = (
    await client.query<{ lo: number | null; hi: number | null; count: number | null }>(
      `SELECT (SELECT min(id) FROM profiles WHERE sandbox_id = $1) AS lo,
              (SELECT max(id) FROM profiles WHERE sandbox_id = $1) AS hi,
              (SELECT profile_count FROM sandboxes WHERE id = $1) AS count`,
      [plan.sandboxId],
    )
  ).rows[0]!;
  const walk = sampleWalk({ lo: range.lo, hi: range.hi, count: range.count ?? 0 }, plan.seed);
  const { population } = walk;

  let next: (size: number) => Promise<{ read: number; hits: number[] }>;
  if (walk.kind === 'dense') {
    const k = predicate?.params.length ?? 0;
    const text = predicate
      ? `SELECT p.id AS id, (${predicate.sql})::int AS q FROM profiles AS p
         WHERE p.sandbox_id = $${k + 1} AND p.id = ANY($${k + 2}::bigint[])`
      : 'SELECT p.id AS id, 1 AS q FROM profiles AS p WHERE p.sandbox_id = $1 AND p.id = ANY($2::bigint[])';
    next = async (size) => {
      const hits: number[] = [];
      let read = 0;
      for (let ids = walk.candidates(size); ids.length > 0; ids = walk.candidates(size - read)) {
        const { rows } = await client.query<{ id: number; q: number }>(text, [
          ...(predicate?.params ?? []),
          plan.sandboxId,
          ids,
        ]);
        const found = new Map<number, boolean>(rows.map((r) => [r.id, r.q === 1]));
        // Without a compiled predicate every profile found "qualifies" here; which of those taken do is the JS engine's verdict.
        const taken = walk.take(ids, found, size - read);
        read += taken.read;
        for (const id of predicate ? taken.hits : await js.qualifying(taken.hits)) hits.push(id);
      }
      return { read, hits };
    };
  } else {
    // The profiles numbered in id order, as SQLite's temp table numbers them; kept in the process
    // (a read-only transaction makes no temp table), 8 bytes a profile.
    const numbered = Float64Array.from(await sandboxIds(client, plan.sandboxId));
    const k = predicate?.params.length ?? 0;
    const text = predicate
      ? `SELECT p.id AS id FROM profiles AS p WHERE p.id = ANY($${k + 1}::bigint[]) AND (${predicate.sql})`
      : '';
    next = async (size) => {
      const ids = walk.positions(size).map((n) => numbered[n]!);
      if (ids.length === 0) return { read: 0, hits: [] };
      if (!predicate) return { read: ids.length, hits: await js.qualifying(ids) };
      const { rows } = await client.query<{ id: number }>(text, [...predicate.params, ids]);
      return { read: ids.length, hits: rows.map((r) => r.id) };
    };
  }

  const countNamespaces = async (ids: readonly number[]): Promise<NamespaceRow[]> => {
    if (ids.length === 0) return [];
    const { rows } = await client.query<NamespaceRow>(
      `SELECT namespace, count(DISTINCT profile_id)::int AS c FROM identities
       WHERE profile_id = ANY($1::bigint[]) GROUP BY namespace`,
      [ids],
    );
    return rows;
  };

  const wholeStore = defaultSampleSize(population, plan.sampleSize) === population;
  const scan =
    wholeStore && predicate
      ? compiledOrNot(() => compileToSql(checked, { now: plan.now, sandboxId: plan.sandboxId, dialect: 'postgres' }))
      : undefined;
  // Where the exact count would start is the definition's shape, not the database's: read from the
  // SQLite form when PostgreSQL's is refused, so the random reading stops where SQLite's does.
  const startsFromAudiences = wholeStore
    ? scan
      ? scan.startsFromAudiences
      : compiledOrNot(() => compileToSql(checked, { now: plan.now, sandboxId: plan.sandboxId }))?.startsFromAudiences
    : undefined;
  let cheap = false;
  if (startsFromAudiences !== undefined) {
    const members = (
      await client.query<{ n: number }>(
        'SELECT coalesce(sum(size), 0)::bigint AS n FROM audiences WHERE id = ANY($1::bigint[])',
        [[...checked.audiences.values()]],
      )
    ).rows[0]!.n;
    cheap = exactIsCheap(startsFromAudiences, members);
  }
  const counter = new PreviewCounter(plan, population, cheap);
  for (let size = counter.nextChunk(); size > 0; size = counter.nextChunk()) {
    if (hooks.chunkDelayMs) await new Promise((resolve) => setTimeout(resolve, hooks.chunkDelayMs));
    hooks.checkpoint();
    const { read, hits } = await next(size);
    hooks.progress(counter.addChunk(read, hits, await countNamespaces(hits)));
  }
  if (wholeStore) {
    hooks.checkpoint();
    let qualifying: number[];
    if (scan) {
      // The whole store in one statement; the random-order estimate stays the running one meanwhile
      // (a cancel or a lost lease cancels the statement on the server).
      qualifying = (await client.query<{ id: number }>(scan.sql, scan.params)).rows.map((r) => r.id);
    } else {
      // Every profile through the JS engine, a batch at a time.
      const all = await sandboxIds(client, plan.sandboxId);
      qualifying = [];
      for (let i = 0; i < all.length; i += JS_BATCH) {
        hooks.checkpoint();
        for (const id of await js.qualifying(all.slice(i, i + JS_BATCH))) qualifying.push(id);
      }
    }
    const sample = counter.scanSample(qualifying);
    counter.addScan(sample.length, await countNamespaces(sample));
  }
  hooks.checkpoint();
  hooks.progress(counter.final());
  return counter;
}

/** Profiles the JS engine evaluates between two checks for a cancel or a lost lease. */
const JS_BATCH = 500;

/**
 * The compiled statement, or undefined when the PostgreSQL compiler refuses the definition (a
 * clause it cannot run with the JS engine's meaning, docs/pql.md): the preview then evaluates
 * loaded documents with the JS engine, the reference both compilers are pinned to.
 */
function compiledOrNot<T extends SqlStatement>(compile: () => T): T | undefined {
  try {
    return compile();
  } catch (err) {
    if (err instanceof PqlError && err.message.startsWith('Not supported on PostgreSQL')) return undefined;
    throw err;
  }
}

/** The sandbox's profile ids, in id order. */
async function sandboxIds(client: pg.ClientBase, sandboxId: number): Promise<number[]> {
  const { rows } = await client.query<{ id: number }>('SELECT id FROM profiles WHERE sandbox_id = $1 ORDER BY id', [
    sandboxId,
  ]);
  return rows.map((r) => r.id);
}

/** The JS engine over documents read in the caller's snapshot (profile-documents.ts), one profile at a time. */
function jsEvaluation(client: pg.PoolClient, checked: CheckedExpression, plan: PreviewPlan) {
  const runner = pgStatementRunner(client);
  return {
    /** Those of `ids` that qualify, in the same order. */
    async qualifying(ids: readonly number[]): Promise<number[]> {
      const hits: number[] = [];
      for (const id of ids) {
        const doc = await readProfileDocument(runner, plan.sandboxId, id);
        if (doc && evaluate(checked, doc, { now: plan.now })) hits.push(id);
      }
      return hits;
    },
  };
}
