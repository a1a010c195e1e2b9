import { type ExecutionResult, GraphQLError } from 'graphql';
import { type Plugin, usePayloadFormatter } from 'graphql-yoga';
import type { Logger } from 'pino';
import { DomainError } from '../domain/errors.js';
import { PqlError } from '../pql/errors.js';

/**
 * The one place where failures become GraphQL errors with `extensions.code` (docs/api.md):
 * domain and PQL errors keep their code and details; GraphQL's own request errors (syntax,
 * validation, variable coercion, malformed body) are BAD_USER_INPUT unless they already
 * carry a code; anything else is a bug: INTERNAL with the request id, details only in the log.
 */
export function toClientError(error: GraphQLError, requestId: string | undefined, log: Logger): GraphQLError {
  const original = error.originalError;
  const base = { nodes: error.nodes, source: error.source, positions: error.positions, path: error.path };
  if (original instanceof DomainError) {
    return new GraphQLError(original.message, { ...base, extensions: { ...original.extensions, code: original.code } });
  }
  if (original instanceof PqlError) {
    const { line, column, offset, length } = original.loc;
    const pql =
      original.code === 'PQL_SYNTAX_ERROR'
        ? { line, column, offset, length, expected: original.expected }
        : { line, column, offset, length };
    return new GraphQLError(original.message, { ...base, extensions: { code: original.code, pql } });
  }
  if (original instanceof GraphQLError) return toClientError(original, requestId, log);
  // Yoga's own request errors (malformed body, wrong method…) say BAD_REQUEST; docs/api.md calls that BAD_USER_INPUT.
  if (error.extensions?.code === 'BAD_REQUEST') {
    return new GraphQLError(error.message, { ...base, extensions: { ...error.extensions, code: 'BAD_USER_INPUT' } });
  }
  if (typeof error.extensions?.code === 'string') return error;
  if (!original) {
    return new GraphQLError(error.message, { ...base, extensions: { code: 'BAD_USER_INPUT' } });
  }
  log.error({ err: original, requestId, path: error.path }, 'unexpected error while resolving');
  return new GraphQLError(`Internal error; quote request id ${requestId ?? 'unknown'} when reporting it`, {
    ...base,
    extensions: { code: 'INTERNAL', requestId },
  });
}

/** A result with every error made a client error; `false` when it has none. */
export function mapResult(
  result: ExecutionResult,
  requestId: string | undefined,
  log: Logger,
): ExecutionResult | false {
  if (!result.errors?.length) return false;
  return { ...result, errors: result.errors.map((e) => toClientError(e, requestId, log)) };
}

/** Envelop/yoga plugins that apply `toClientError` on every path: HTTP, SSE and graphql-ws. */
export function errorMappingPlugins(log: Logger): Plugin[] {
  const requestIdOf = (ctx: unknown) => (ctx as { requestId?: string } | undefined)?.requestId;
  return [
    usePayloadFormatter((result, args) => mapResult(result, requestIdOf(args.contextValue), log)) as Plugin,
    {
      onValidate() {
        return ({ result, setResult }) => {
          if (result.length > 0) setResult(result.map((e) => toClientError(e, undefined, log)));
        };
      },
      onResultProcess({ request, result, setResult }) {
        const requestId = request.headers.get('x-request-id') ?? undefined;
        const fix = (r: unknown) => {
          const er = r as ExecutionResult;
          if (!er || typeof er !== 'object' || !Array.isArray(er.errors)) return r;
          return {
            ...er,
            errors: er.errors.map((e) =>
              e instanceof GraphQLError
                ? toClientError(e, requestId, log)
                : toClientError(new GraphQLError(String(e)), requestId, log),
            ),
          };
        };
        if (Array.isArray(result)) setResult(result.map(fix) as never);
        else if (result && typeof result === 'object' && !(Symbol.asyncIterator in result))
          setResult(fix(result) as never);
      },
    },
  ];
}
