import { type ExecutionResult, GraphQLError } from 'graphql';
import { type Plugin, usePayloadFormatter } from 'graphql-yoga';
import type { Logger } from 'pino';
import { isCorruption } from '../db/integrity.js';
import { DomainError, type ErrorCode } from '../domain/errors.js';
import { PqlError } from '../pql/index.js';

/**
 * Codes that yoga, graphql-js and envelop put on their own errors, mapped to the documented
 * ones (docs/api.md): a client sees only codes it can look up.
 */
const FOREIGN_CODES: Record<string, ErrorCode> = {
  BAD_REQUEST: 'BAD_USER_INPUT',
  GRAPHQL_PARSE_FAILED: 'BAD_USER_INPUT',
  GRAPHQL_VALIDATION_FAILED: 'BAD_USER_INPUT',
  OPERATION_RESOLUTION_FAILURE: 'BAD_USER_INPUT',
  REQUEST_ENTITY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  INTERNAL_SERVER_ERROR: 'INTERNAL',
};

/** A syntax error's message with where it is, for clients that do not read `locations`. */
function withPosition(error: GraphQLError): string {
  const at = error.locations?.[0];
  return at ? `${error.message} (line ${at.line}, column ${at.column})` : error.message;
}

/**
 * The one place where failures become GraphQL errors with `extensions.code` (docs/api.md):
 * domain and PQL errors keep their code and details; GraphQL's own request errors (syntax,
 * validation, variable coercion, malformed body) are BAD_USER_INPUT unless they already
 * carry a code; anything else is a bug: INTERNAL with the request id, details only in the log.
 */
export function toClientError(
  error: GraphQLError,
  requestId: string | undefined,
  log: Logger,
  onInternal?: (err: unknown) => void,
): GraphQLError {
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
  if (original instanceof GraphQLError) return toClientError(original, requestId, log, onInternal);
  const code = error.extensions?.code;
  if (typeof code === 'string' && Object.hasOwn(FOREIGN_CODES, code)) {
    let message = code === 'GRAPHQL_PARSE_FAILED' ? withPosition(error) : error.message;
    if (code === 'OPERATION_RESOLUTION_FAILURE' && message.startsWith('Could not determine')) {
      message = `${message} Give "operationName" naming one of the document's operations (it needs one when it has several).`;
    }
    return new GraphQLError(message, { ...base, extensions: { ...error.extensions, code: FOREIGN_CODES[code] } });
  }
  if (typeof error.extensions?.code === 'string') return error;
  if (!original) {
    return new GraphQLError(error.message, { ...base, extensions: { code: 'BAD_USER_INPUT' } });
  }
  log.error({ err: original, requestId, path: error.path }, 'unexpected error while resolving');
  onInternal?.(original);
  if (isCorruption(original)) {
    return new GraphQLError(
      `The database is damaged; the server has stopped writing and needs a restored copy (request id ${requestId ?? 'unknown'})`,
      { ...base, extensions: { code: 'INTERNAL', requestId } },
    );
  }
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
  onInternal?: (err: unknown) => void,
): ExecutionResult | false {
  if (!result.errors?.length) return false;
  return { ...result, errors: result.errors.map((e) => toClientError(e, requestId, log, onInternal)) };
}

const ACCEPTED_TYPES = [
  'application/json',
  'application/graphql+json',
  'application/graphql',
  'multipart/form-data',
  'application/x-www-form-urlencoded',
];

const AUTH_STATUS: Record<string, number> = { UNAUTHENTICATED: 401, FORBIDDEN: 403 };

/**
 * An operation refused as a whole for want of a key or a scope answers 401/403. `spec: true`
 * makes yoga apply it only for `application/graphql-response+json`: plain `application/json`
 * clients keep the 200 the GraphQL-over-HTTP spec gives them.
 */
function withAuthStatus(result: ExecutionResult): ExecutionResult {
  if (!result.errors?.length) return result;
  // Refused as a whole: no data, or every root field null (mutation results are nullable).
  if (result.data != null && Object.values(result.data).some((v) => v !== null)) return result;
  const statuses = result.errors.map((e) => AUTH_STATUS[String(e.extensions?.code)]);
  if (statuses.some((s) => s === undefined)) return result;
  const status = Math.max(...(statuses as number[]));
  return {
    ...result,
    errors: result.errors.map(
      (e) =>
        new GraphQLError(e.message, {
          nodes: e.nodes,
          source: e.source,
          positions: e.positions,
          path: e.path,
          extensions: { ...e.extensions, http: { status, spec: true } },
        }),
    ),
  };
}

/** Envelop/yoga plugins that apply `toClientError` on every path: HTTP, SSE and graphql-ws. */
export function errorMappingPlugins(log: Logger, onInternal?: (err: unknown) => void): Plugin[] {
  const requestIdOf = (ctx: unknown) => (ctx as { requestId?: string } | undefined)?.requestId;
  return [
    usePayloadFormatter((result, args) => mapResult(result, requestIdOf(args.contextValue), log, onInternal)) as Plugin,
    {
      onValidate() {
        return ({ result, setResult }) => {
          if (result.length > 0) setResult(result.map((e) => toClientError(e, undefined, log)));
        };
      },
      onRequestParse({ request, requestParser, endResponse, fetchAPI }) {
        // Yoga answers a body it has no parser for with an empty 415; say what it takes instead.
        if (requestParser || request.method !== 'POST') return;
        const type = request.headers.get('content-type') ?? 'none';
        const message = `Unsupported content type "${type}": send ${ACCEPTED_TYPES.join(', ')}`;
        endResponse(
          new fetchAPI.Response(JSON.stringify({ errors: [{ message, extensions: { code: 'BAD_USER_INPUT' } }] }), {
            status: 415,
            headers: { 'content-type': 'application/json; charset=utf-8', accept: ACCEPTED_TYPES.join(', ') },
          }),
        );
      },
      onResultProcess({ request, result, setResult }) {
        const requestId = request.headers.get('x-request-id') ?? undefined;
        const fix = (r: unknown) => {
          const er = r as ExecutionResult;
          if (!er || typeof er !== 'object' || !Array.isArray(er.errors)) return r;
          return withAuthStatus({
            ...er,
            errors: er.errors.map((e) =>
              e instanceof GraphQLError
                ? toClientError(e, requestId, log, onInternal)
                : toClientError(new GraphQLError(String(e)), requestId, log, onInternal),
            ),
          });
        };
        if (Array.isArray(result)) setResult(result.map(fix) as never);
        else if (result && typeof result === 'object' && !(Symbol.asyncIterator in result))
          setResult(fix(result) as never);
      },
    },
  ];
}
