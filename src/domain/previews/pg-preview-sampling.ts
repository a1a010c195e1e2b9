/**
 * A preview's reads on PostgreSQL (docs/scale-out.md "Previews on a cluster"): the reads of the
 * SQLite task (preview-sampling.ts, preview-samplers.ts) written for a client inside one
 * REPEATABLE READ transaction, the definition compiled for PostgreSQL with bound parameters
 * only. Everything that decides the answer — the sampler chosen, the order of the sample, the
 * chunk sizes, when random reading stops, the estimates, the namespace sample — is the shared
 * code (preview-run.ts, preview-samplers.ts), so the same store and seed give SQLite's answer.
 */
import type pg from 'pg';
import { compilePredicate, compileToSql } from '../../pql/index.js';
import { checkDefinitionPg, readCatalogPg } from '../pg-expressions.js';
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
  client: pg.ClientBase,
  plan: PreviewPlan,
  hooks: PgPreviewHooks,
): Promise<PreviewCounter> {
  const catalog = await readCatalogPg(client, plan.sandboxId);
  const { checked } = await checkDefinitionPg(client, plan.sandboxId, catalog, {
    format: 'PQL_TEXT',
    value: plan.expressionText,
  });
  const predicate = compilePredicate(checked, { now: plan.now, dialect: 'postgres' });
  const k = predicate.params.length;
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
    const text = `SELECT p.id AS id, (${predicate.sql})::int AS q FROM profiles AS p
      WHERE p.sandbox_id = $${k + 1} AND p.id = ANY($${k + 2}::bigint[])`;
    next = async (size) => {
      const hits: number[] = [];
      let read = 0;
      for (let ids = walk.candidates(size); ids.length > 0; ids = walk.candidates(size - read)) {
        const { rows } = await client.query<{ id: number; q: number }>(text, [
          ...predicate.params,
          plan.sandboxId,
          ids,
        ]);
        const found = new Map<number, boolean>(rows.map((r) => [r.id, r.q === 1]));
        const taken = walk.take(ids, found, size - read);
        read += taken.read;
        for (const id of taken.hits) hits.push(id);
      }
      return { read, hits };
    };
  } else {
    // The profiles numbered in id order, as SQLite's temp table numbers them; kept in the process
    // (a read-only transaction makes no temp table), 8 bytes a profile.
    const numbered = Float64Array.from(
      (
        await client.query<{ id: number }>('SELECT id FROM profiles WHERE sandbox_id = $1 ORDER BY id', [
          plan.sandboxId,
        ])
      ).rows.map((r) => r.id),
    );
    const text = `SELECT p.id AS id FROM profiles AS p WHERE p.id = ANY($${k + 1}::bigint[]) AND (${predicate.sql})`;
    next = async (size) => {
      const ids = walk.positions(size).map((n) => numbered[n]!);
      if (ids.length === 0) return { read: 0, hits: [] };
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

  const scan =
    defaultSampleSize(population, plan.sampleSize) === population
      ? compileToSql(checked, { now: plan.now, sandboxId: plan.sandboxId, dialect: 'postgres' })
      : undefined;
  let cheap = false;
  if (scan?.startsFromAudiences !== undefined) {
    const members = (
      await client.query<{ n: number }>(
        'SELECT coalesce(sum(size), 0)::bigint AS n FROM audiences WHERE id = ANY($1::bigint[])',
        [[...checked.audiences.values()]],
      )
    ).rows[0]!.n;
    cheap = exactIsCheap(scan.startsFromAudiences, members);
  }
  const counter = new PreviewCounter(plan, population, cheap);
  for (let size = counter.nextChunk(); size > 0; size = counter.nextChunk()) {
    if (hooks.chunkDelayMs) await new Promise((resolve) => setTimeout(resolve, hooks.chunkDelayMs));
    hooks.checkpoint();
    const { read, hits } = await next(size);
    hooks.progress(counter.addChunk(read, hits, await countNamespaces(hits)));
  }
  if (scan) {
    hooks.checkpoint();
    // The whole store in one statement; the random-order estimate stays the running one meanwhile
    // (a cancel or a lost lease cancels the statement on the server).
    const { rows } = await client.query<{ id: number }>(scan.sql, scan.params);
    const sample = counter.scanSample(rows.map((r) => r.id));
    counter.addScan(sample.length, await countNamespaces(sample));
  }
  hooks.checkpoint();
  hooks.progress(counter.final());
  return counter;
}
