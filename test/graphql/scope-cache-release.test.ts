/**
 * releaseScopeCache (src/graphql/scope-cache-release.ts): scope-auth's per-operation cache is
 * dropped once the operation is over, and not before. Checked through yoga on a small Pothos
 * schema with scope-auth: the cache a resolver saw is still the context's while the operation
 * runs (a deferred field sees the root field's), and is gone after it; without the plugin it
 * stays, which is what kept whole requests alive across minor GCs.
 */

import { useDeferStream } from '@graphql-yoga/plugin-defer-stream';
import SchemaBuilder from '@pothos/core';
import ScopeAuthPlugin, { RequestCache } from '@pothos/plugin-scope-auth';
import { createYoga } from 'graphql-yoga';
import { describe, expect, it } from 'vitest';
import { releaseScopeCache } from '../../src/graphql/scope-cache-release.js';

interface Ctx {
  /** The context each resolver got (yoga's own object, with ours merged in) and the cache it saw. */
  seen: { ctx: Ctx; cache: RequestCache<never> }[];
}

function server(release: boolean) {
  const builder = new SchemaBuilder<{ Context: Ctx; AuthScopes: { read: boolean } }>({
    plugins: [ScopeAuthPlugin],
    scopeAuth: { authScopes: () => ({ read: true }) },
  });
  const cacheOf = (ctx: Ctx) => RequestCache.fromContext(ctx as never, builder as never) as RequestCache<never>;
  const Later = builder.objectRef<{ n: number }>('Later').implement({
    fields: (t) => ({
      n: t.int({
        resolve: async (v, _a, ctx) => {
          await new Promise((r) => setTimeout(r, 20));
          ctx.seen.push({ ctx, cache: cacheOf(ctx) });
          return v.n;
        },
      }),
    }),
  });
  builder.queryType({
    authScopes: { read: true },
    fields: (t) => ({
      hello: t.string({
        resolve: (_r, _a, ctx) => {
          ctx.seen.push({ ctx, cache: cacheOf(ctx) });
          return 'hi';
        },
      }),
      later: t.field({ type: Later, resolve: () => ({ n: 7 }) }),
    }),
  });
  const contexts: Ctx[] = [];
  const yoga = createYoga<object, Ctx>({
    schema: builder.toSchema(),
    plugins: [useDeferStream(), ...(release ? [releaseScopeCache()] : [])],
    context: () => {
      const ctx: Ctx = { seen: [] };
      contexts.push(ctx);
      return ctx;
    },
  });
  return { yoga, contexts, cacheOf };
}

const post = (yoga: ReturnType<typeof server>['yoga'], query: string, accept = 'application/json') =>
  yoga.fetch('http://localhost/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept },
    body: JSON.stringify({ query }),
  });

describe('releaseScopeCache', () => {
  it('drops the scope cache of an operation once it has run', async () => {
    for (const release of [true, false]) {
      const { yoga, contexts, cacheOf } = server(release);
      const res = await post(yoga, '{ hello }');
      expect(await res.json()).toEqual({ data: { hello: 'hi' } });
      const [seen] = contexts.map((c) => c.seen);
      expect(seen).toHaveLength(1);
      const { ctx, cache } = seen![0]!;
      // A new cache for the same context means the old entry was deleted.
      if (release) expect(cacheOf(ctx)).not.toBe(cache);
      else expect(cacheOf(ctx)).toBe(cache);
    }
  });

  it('keeps it while a deferred part is still resolving, and drops it at the end', async () => {
    const { yoga, contexts, cacheOf } = server(true);
    const res = await post(yoga, '{ hello later { ... @defer { n } } }', 'multipart/mixed');
    const body = await res.text();
    expect(body).toContain('"hello":"hi"');
    expect(body).toContain('"n":7');
    const [seen] = contexts.map((c) => c.seen);
    expect(seen).toHaveLength(2);
    const [root, deferred] = seen!;
    expect(deferred!.ctx).toBe(root!.ctx);
    expect(deferred!.cache).toBe(root!.cache);
    expect(cacheOf(root!.ctx)).not.toBe(root!.cache);
  });
});
