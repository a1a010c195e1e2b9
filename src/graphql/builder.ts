import SchemaBuilder from '@pothos/core';
import ComplexityPlugin, { type FieldComplexityValue } from '@pothos/plugin-complexity';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import RelayPlugin, { resolveNodes } from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import SimpleObjectsPlugin from '@pothos/plugin-simple-objects';
import {
  GraphQLError,
  type GraphQLOutputType,
  type GraphQLResolveInfo,
  getNamedType,
  isLeafType,
  isListType,
  isNonNullType,
} from 'graphql';
import { decodeGlobalId, encodeGlobalId } from '../domain/ids.js';
import { MAX_PAGE_SIZE } from '../domain/paging.js';
import { type AuthScopes, authScopesOf, unauthorizedError } from './auth.js';
import type { Context } from './context.js';
import { DateTimeScalar, FileScalar, JSONScalar, type UploadedFile } from './scalars.js';
import SyncNodeIdPlugin from './sync-node-id-plugin.js';
import WriteGatePlugin from './write-gate-plugin.js';

const UNKNOWN_TYPE = '__unknown__';

function isNodeType(typename: string): boolean {
  if (typename === UNKNOWN_TYPE) return false;
  try {
    // Only types that can load by id are nodes; `Query` or `PageInfo` in an id name nothing.
    const options = builder.configStore.getTypeConfig(typename, 'Object').pothosOptions as Record<string, unknown>;
    return ['loadMany', 'loadOne', 'loadManyWithoutCache', 'loadWithoutCache'].some((k) => options[k] !== undefined);
  } catch {
    return false;
  }
}

/**
 * Cost of a field without its own complexity: the unit is an object the server has to produce.
 * A scalar is read with the row it belongs to and costs nothing, so the widest page of any
 * connection costs about its page size; an object costs 1, and a list counts as 10 of its items.
 * Connections multiply their items' cost by the page size (connection.ts), so nested pages multiply.
 */
function fieldCost(type: GraphQLOutputType): FieldComplexityValue {
  if (isLeafType(getNamedType(type))) return 0;
  const list = isListType(isNonNullType(type) ? type.ofType : type);
  return list ? { field: 1, multiplier: 10 } : 1;
}

export const builder = new SchemaBuilder<{
  Context: Context;
  Scalars: {
    ID: { Input: string; Output: string | number };
    /** Epoch milliseconds inside, ISO-8601 UTC with milliseconds on the wire. */
    DateTime: { Input: number; Output: number | Date };
    JSON: { Input: unknown; Output: unknown };
    File: { Input: UploadedFile; Output: never };
  };
  DefaultFieldNullability: false;
  AuthScopes: AuthScopes;
  /** Every connection can count its whole filtered list; lazily, only when asked. */
  Connection: { totalCount: number | (() => number | Promise<number>) };
}>({
  // Relay before scope-auth, so scopes see decoded ids (docs/dependencies.md); the write gate
  // late, so it wraps the resolver itself and not the scope checks before it; the node ids' own
  // resolver innermost of all (sync-node-id-plugin.ts).
  plugins: [
    RelayPlugin,
    ScopeAuthPlugin,
    DataloaderPlugin,
    ComplexityPlugin,
    SimpleObjectsPlugin,
    WriteGatePlugin,
    SyncNodeIdPlugin,
  ],
  defaultFieldNullability: false,
  scopeAuth: {
    // Checked once per field that executes, however the document reaches it (aliases,
    // fragments, several operations): the root types below carry the scopes.
    authScopes: authScopesOf,
    authorizeOnSubscribe: true,
    unauthorizedError,
  },
  relay: {
    cursorType: 'String',
    encodeGlobalID: (typename, id) => encodeGlobalId(typename, String(id)),
    // An id that decodes to nothing known resolves to null in node/nodes (docs/api.md), not to an error.
    decodeGlobalID: (globalID) => {
      const decoded = decodeGlobalId(globalID);
      return decoded ? { typename: decoded.type, id: decoded.id } : { typename: UNKNOWN_TYPE, id: globalID };
    },
    clientMutationId: 'omit',
    nodeTypeOptions: { description: 'An entity with a global id, refetchable through node(id:).' },
    idFieldOptions: { description: 'The global id: opaque, stable, unique across types; give it to node(id:).' },
    pageInfoTypeOptions: { description: 'Where a page sits in its list, and the cursors to page on from it.' },
    hasNextPageFieldOptions: { description: 'More items follow the last one of this page.' },
    hasPreviousPageFieldOptions: { description: 'More items come before the first one of this page.' },
    startCursorFieldOptions: { description: 'Cursor of the first item of the page; null when the page is empty.' },
    endCursorFieldOptions: { description: 'Cursor of the last item of the page; null when the page is empty.' },
    pageInfoFieldOptions: { description: 'Cursors and whether more items follow.', complexity: 0 },
    edgesFieldOptions: {
      description: 'The items of this page, in order, each with its cursor.',
      // The connection field's multiplier is already the page size.
      complexity: { field: 0, multiplier: 1 },
    },
    nodeFieldOptions: { description: 'The item.' },
    cursorFieldOptions: { description: 'Opaque position of this item; pass it as after or before.' },
    firstArgOptions: { description: 'Page forward: this many items (default 20, at most 500).' },
    afterArgOptions: { description: 'Page forward from the item with this cursor (endCursor of the previous page).' },
    lastArgOptions: { description: 'Page backward: this many items (at most 500).' },
    beforeArgOptions: { description: 'Page backward from the item with this cursor (startCursor of the next page).' },
    nodeQueryOptions: {
      description: 'Any entity by its global id; null when it does not exist in this sandbox.',
      args: { id: { description: 'The global id.' } },
      resolve: (_root, { id }, _ctx, _info, resolveNode) => (isNodeType(id.typename) ? resolveNode(id) : null),
    },
    nodesQueryOptions: {
      description: 'Entities by global id, in order; null for each that does not exist.',
      args: { ids: { description: 'The global ids.' } },
      // The plugin's own resolveNodes callback ignores the ids given to it and loads them all,
      // so one id of an unknown type failed the whole list: unknown ones go in as null instead.
      resolve: (_root, { ids }, ctx, info) => {
        if (ids.length > MAX_PAGE_SIZE) {
          throw new GraphQLError(`"ids" takes at most ${MAX_PAGE_SIZE} ids, got ${ids.length}`, {
            extensions: { code: 'BAD_USER_INPUT', field: 'ids', limit: MAX_PAGE_SIZE, actual: ids.length },
          });
        }
        return loadKnownNodes(
          ctx,
          info,
          ids.map((id) => (isNodeType(id.typename) ? id : null)),
        );
      },
    },
  },
  complexity: {
    fieldComplexity: (_args, _ctx, field) => fieldCost(field.type),
    limit: (ctx) => ({ complexity: ctx.limits.maxCost }),
    complexityError: (kind, result) =>
      new GraphQLError(
        `Query ${kind.toLowerCase()} ${result.complexity} exceeds the limit of ${result.maxComplexity}`,
        {
          extensions: { code: 'QUERY_TOO_COMPLEX', limit: result.maxComplexity, actual: result.complexity },
        },
      ),
  },
});

/** Loads nodes by decoded global id; a null id stays null at its position. */
function loadKnownNodes(
  ctx: Context,
  info: GraphQLResolveInfo,
  ids: ({ typename: string; id: string } | null)[],
): Promise<never[]> {
  return resolveNodes(builder, ctx, info, ids) as Promise<never[]>;
}

builder.addScalarType('DateTime', DateTimeScalar);
builder.addScalarType('JSON', JSONScalar);
builder.addScalarType('File', FileScalar);

// Every root field needs its operation's scope; fields that change a sandbox's shape ask for
// `admin` instead (their own authScopes with skipTypeScopes).
builder.queryType({ description: 'Reads, all within the sandbox of the request.', authScopes: { read: true } });
builder.mutationType({
  description:
    'Writes. Every result is nullable: a mutation that fails is null with its error in `errors` (path, extensions.code), and the other mutations of the operation keep their results.',
  authScopes: { write: true },
});
builder.subscriptionType({
  description: 'Live updates over graphql-ws or Server-Sent Events.',
  authScopes: { read: true },
});

builder.globalConnectionField('totalCount', (t) =>
  t.int({
    description: 'All items matching the filter, over all pages.',
    // One count per connection, paid for in the connection field's own cost (connection.ts).
    complexity: 0,
    resolve: (parent) => (typeof parent.totalCount === 'function' ? parent.totalCount() : parent.totalCount),
  }),
);

/** The builder's resolved type parameters, for helpers that build fields outside a type's `fields`. */
export type SchemaTypes = typeof builder.$inferSchemaTypes;
