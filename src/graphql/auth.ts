/**
 * Scopes as Pothos scope-auth sees them. The root types require `read` (queries and
 * subscriptions) or `write` (mutations); fields that change a sandbox's shape require `admin`.
 * Because the plugin checks each field as it executes, no way of writing a document (aliases,
 * fragments, a second operation) can reach a field without its check. Who the key is, and
 * whether it may act in the sandbox, is decided earlier, where the context is made.
 */
import type { AuthFailure } from '@pothos/plugin-scope-auth';
import { GraphQLError, type GraphQLResolveInfo } from 'graphql';
import type { Scope } from '../domain/api-keys.js';
import type { Context } from './context.js';

export type AuthScopes = Record<Scope, boolean>;

export function authScopesOf(ctx: Context): AuthScopes {
  const scopes = ctx.principal.scopes;
  return { read: scopes.has('read'), write: scopes.has('write'), admin: scopes.has('admin') };
}

/** The scopes a failed check asked for, from the plugin's failure tree. */
function missingScopes(failure: AuthFailure, into = new Set<string>()): Set<string> {
  if ('scope' in failure && typeof failure.scope === 'string') into.add(failure.scope);
  if ('failures' in failure) for (const f of failure.failures) missingScopes(f, into);
  return into;
}

export function unauthorizedError(
  _parent: unknown,
  _ctx: Context,
  info: GraphQLResolveInfo,
  result: { message: string; failure: AuthFailure },
): GraphQLError {
  const scopes = [...missingScopes(result.failure)].map((s) => `"${s}"`).join(' or ') || 'another';
  return new GraphQLError(`${info.parentType.name}.${info.fieldName} needs an API key with the ${scopes} scope`, {
    extensions: { code: 'FORBIDDEN' },
  });
}
