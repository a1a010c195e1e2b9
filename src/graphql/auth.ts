/**
 * Scopes per operation (spec/api.md "Auth"): queries and subscriptions need `read`, mutations
 * `write`, and the mutations that change a sandbox's shape (`ADMIN_FIELDS`) `admin`. The key
 * itself is checked where the context is made (server.ts), so an unknown key never executes.
 */

import { type DocumentNode, GraphQLError, getOperationAST, Kind } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { assertScope, type Principal, type Scope } from '../domain/api-keys.js';
import { DomainError } from '../domain/errors.js';

/** Schema changes and sandbox management. */
const ADMIN_FIELDS = new Set(['updateProfileSchema', 'createSandbox']);

function requiredScope(
  document: DocumentNode,
  operationName: string | null | undefined,
): { scope: Scope; what: string } {
  const operation = getOperationAST(document, operationName);
  if (operation?.operation !== 'mutation') {
    return { scope: 'read', what: `A ${operation?.operation ?? 'query'}` };
  }
  for (const selection of operation.selectionSet.selections) {
    if (selection.kind === Kind.FIELD && ADMIN_FIELDS.has(selection.name.value)) {
      return { scope: 'admin', what: `The mutation ${selection.name.value}` };
    }
  }
  return { scope: 'write', what: 'A mutation' };
}

function forbidden(err: unknown): GraphQLError {
  const e = err as DomainError;
  return new GraphQLError(e.message, { extensions: { code: e.code } });
}

/** Refuses, before execution, an operation the request's key has no scope for. */
export function scopePlugin(): Plugin {
  const check = (args: { document: DocumentNode; operationName?: string | null; contextValue: unknown }) => {
    const principal = (args.contextValue as { principal?: Principal }).principal;
    if (!principal) return undefined;
    const { scope, what } = requiredScope(args.document, args.operationName);
    try {
      assertScope(principal, scope, what);
      return undefined;
    } catch (err) {
      if (err instanceof DomainError) return forbidden(err);
      throw err;
    }
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const error = check(args);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const error = check(args);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
  };
}
