/**
 * Ad-hoc evaluation as the API offers it: the work runs on the query pool (worker threads,
 * within the per-request budget); only the cheap lookups by id stay on the main thread.
 */
import type { App } from '../app.js';
import type { EdgeEvaluation } from '../evaluation.js';
import type { ExpressionInput } from '../expressions.js';
import type { Page, PageArgs } from '../paging.js';
import type { IdentityInput } from '../profile-ingest.js';
import { type Profile, profilesByIds } from '../profiles.js';

/** The exact set of qualifying profiles (SQL engine) at `at`, in id order; totalCount runs only when asked for. */
export async function profilesMatching(
  app: App,
  sandboxId: number,
  input: ExpressionInput,
  at: number,
  page: PageArgs,
): Promise<Page<Profile> & { totalCount: () => Promise<number> }> {
  const ids = await app.queries.run<'matchingProfileIds', Page<number>>('matchingProfileIds', {
    sandboxId,
    input,
    at,
    page: { first: page.first, last: page.last, after: page.after, before: page.before },
  });
  const found = await profilesByIds(app.conn, sandboxId, ids.items);
  // A profile deleted since the worker read the page is left out, with its cursor.
  const kept = ids.items.flatMap((id, i) => {
    const profile = found.get(id);
    return profile ? [{ profile, cursor: ids.cursors[i]! }] : [];
  });
  return {
    ...ids,
    items: kept.map((k) => k.profile),
    cursors: kept.map((k) => k.cursor),
    totalCount: () => app.queries.run<'countMatching', number>('countMatching', { sandboxId, input, at }),
  };
}

/**
 * Evaluates one profile with the JS engine: an expression, or the definitions of the given
 * audiences (default: every edge-enabled definition of the sandbox).
 */
export function evaluateProfile(
  app: App,
  sandboxId: number,
  identity: IdentityInput,
  options: { expression?: ExpressionInput | null; audienceIds?: readonly number[] | null; at: number },
): Promise<EdgeEvaluation> {
  return app.queries.run('evaluateProfile', {
    sandboxId,
    identity: { namespace: identity.namespace, id: identity.id },
    expression: options.expression ?? null,
    audienceIds: options.audienceIds ? [...options.audienceIds] : null,
    at: options.at,
  });
}
