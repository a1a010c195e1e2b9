/** Error codes of docs/api.md; the GraphQL layer maps them to `extensions.code` in one place. */
export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'PQL_SYNTAX_ERROR'
  | 'PQL_TYPE_ERROR'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'QUERY_TOO_COMPLEX'
  | 'QUERY_TIMEOUT'
  | 'PAYLOAD_TOO_LARGE'
  | 'INTERNAL';

/** A failure the caller can act on: thrown by domain code, never built as a GraphQL error there. */
export class DomainError extends Error {
  readonly code: ErrorCode;
  readonly extensions: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) {
    super(message);
    this.name = 'DomainError';
    this.code = code;
    this.extensions = extensions;
  }
}

export const badInput = (message: string, field?: string) =>
  new DomainError('BAD_USER_INPUT', message, field ? { field } : {});
export const notFound = (message: string, id?: string) => new DomainError('NOT_FOUND', message, id ? { id } : {});
export const conflict = (message: string, extensions: Record<string, unknown> = {}) =>
  new DomainError('CONFLICT', message, extensions);
