import { GraphQLError, GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { parseDatetime } from '../domain/document-validation.js';

function parseDateTime(value: unknown): number {
  const parsed = typeof value === 'string' ? parseDatetime(value) : undefined;
  if (!parsed?.ok) {
    const why = parsed ? `: ${parsed.reason}` : '';
    throw new GraphQLError(
      `DateTime must be an ISO-8601 string such as "2026-11-28T09:30:00.000Z", got ${JSON.stringify(value)}${why}`,
      { extensions: { code: 'BAD_USER_INPUT' } },
    );
  }
  return parsed.ms;
}

/**
 * ISO text of instants seen recently. A page of audiences writes the same few hundred instants
 * on every request, and `toISOString` was a measurable share of its CPU (the `api` bench).
 */
const isoCache = new Map<number, string>();
const ISO_CACHE_SIZE = 50_000;

function isoOf(ms: number): string {
  let iso = isoCache.get(ms);
  if (iso === undefined) {
    iso = new Date(ms).toISOString();
    if (isoCache.size >= ISO_CACHE_SIZE) isoCache.clear();
    isoCache.set(ms, iso);
  }
  return iso;
}

export const DateTimeScalar = new GraphQLScalarType<number, string>({
  name: 'DateTime',
  description: 'An instant, ISO-8601 in UTC with milliseconds, e.g. 2026-11-28T09:30:00.000Z.',
  serialize: (value) => isoOf(value instanceof Date ? value.getTime() : (value as number)),
  parseValue: parseDateTime,
  parseLiteral: (ast) => parseDateTime(ast.kind === Kind.STRING ? ast.value : undefined),
});

function literalValue(ast: ValueNode, variables: Record<string, unknown> | null | undefined): unknown {
  switch (ast.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return ast.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(ast.value);
    case Kind.NULL:
      return null;
    case Kind.LIST:
      return ast.values.map((v) => literalValue(v, variables));
    case Kind.OBJECT:
      return Object.fromEntries(ast.fields.map((f) => [f.name.value, literalValue(f.value, variables)]));
    case Kind.VARIABLE:
      return variables?.[ast.name.value];
    default:
      return undefined;
  }
}

export const JSONScalar = new GraphQLScalarType<unknown, unknown>({
  name: 'JSON',
  description: 'Any JSON value: profile attributes, event payloads, pql/json trees.',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (ast, variables) => literalValue(ast, variables),
});

/** What the File scalar holds: an uploaded file (a WHATWG File, or anything read the same way). */
export interface UploadedFile {
  name: string;
  stream(): ReadableStream<Uint8Array>;
  /** Set when the server already wrote the upload to a file of its own, which the operation may take over. */
  path?: string;
}

function parseFile(value: unknown): UploadedFile {
  if (value && typeof value === 'object' && typeof (value as UploadedFile).stream === 'function') {
    return value as UploadedFile;
  }
  throw new GraphQLError(
    'File must be a file sent as a multipart upload (the GraphQL multipart request spec), not a value in the query',
    { extensions: { code: 'BAD_USER_INPUT' } },
  );
}

export const FileScalar = new GraphQLScalarType<UploadedFile, never>({
  name: 'File',
  description: 'A file uploaded with the GraphQL multipart request spec (a multipart/form-data request).',
  serialize: () => {
    throw new GraphQLError('A File is only ever an input');
  },
  parseValue: parseFile,
  parseLiteral: () => parseFile(undefined),
});
