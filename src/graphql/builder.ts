import SchemaBuilder from '@pothos/core';
import ComplexityPlugin from '@pothos/plugin-complexity';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import RelayPlugin, { resolveNodes } from '@pothos/plugin-relay';
import SimpleObjectsPlugin from '@pothos/plugin-simple-objects';
import { GraphQLError, type GraphQLResolveInfo } from 'graphql';
import { decodeGlobalId, encodeGlobalId } from '../domain/ids.js';
import type { Context } from './context.js';
import { DateTimeScalar, JSONScalar } from './scalars.js';

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

export const builder = new SchemaBuilder<{
  Context: Context;
  Scalars: {
    ID: { Input: string; Output: string | number };
    /** Epoch milliseconds inside, ISO-8601 UTC with milliseconds on the wire. */
    DateTime: { Input: number; Output: number | Date };
    JSON: { Input: unknown; Output: unknown };
  };
  DefaultFieldNullability: false;
  /** Every connection can count its whole filtered list; lazily, only when asked. */
  Connection: { totalCount: number | (() => number) };
}>({
  plugins: [RelayPlugin, DataloaderPlugin, ComplexityPlugin, SimpleObjectsPlugin],
  defaultFieldNullability: false,
  relay: {
    cursorType: 'String',
    encodeGlobalID: (typename, id) => encodeGlobalId(typename, String(id)),
    // An id that decodes to nothing known resolves to null in node/nodes (api.md), not to an error.
    decodeGlobalID: (globalID) => {
      const decoded = decodeGlobalId(globalID);
      return decoded ? { typename: decoded.type, id: decoded.id } : { typename: UNKNOWN_TYPE, id: globalID };
    },
    clientMutationId: 'omit',
    nodeQueryOptions: {
      description: 'Any entity by its global id; null when it does not exist in this sandbox.',
      resolve: (_root, { id }, _ctx, _info, resolveNode) => (isNodeType(id.typename) ? resolveNode(id) : null),
    },
    nodesQueryOptions: {
      description: 'Entities by global id, in order; null for each that does not exist.',
      // The plugin's own resolveNodes callback ignores the ids given to it and loads them all,
      // so one id of an unknown type failed the whole list: unknown ones go in as null instead.
      resolve: (_root, { ids }, ctx, info) => {
        if (ids.length > ctx.limits.maxPageSize) {
          throw new GraphQLError(`"ids" takes at most ${ctx.limits.maxPageSize} ids, got ${ids.length}`, {
            extensions: { code: 'BAD_USER_INPUT', field: 'ids', limit: ctx.limits.maxPageSize, actual: ids.length },
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
    defaultComplexity: 1,
    defaultListMultiplier: 10,
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

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

builder.globalConnectionField('totalCount', (t) =>
  t.int({
    description: 'All items matching the filter, over all pages.',
    resolve: (parent) => (typeof parent.totalCount === 'function' ? parent.totalCount() : parent.totalCount),
  }),
);
