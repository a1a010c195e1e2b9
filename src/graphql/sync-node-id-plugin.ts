/**
 * The relay plugin resolves every node's `id` through an `async` function, so each id of a list is
 * a promise graphql-jit must wait on (the 22 audiences of the `edge` bench's answer: ~23 KB of the
 * request's garbage). A node whose own id resolver answers at once gets its global id encoded at
 * once here: the same text, from the same `encodeGlobalID`, without the promise. It is the last
 * plugin, so the innermost wrapper: scope checks and the other plugins still wrap what it returns.
 */
import SchemaBuilder, { BasePlugin, type PothosOutputFieldConfig, type SchemaTypes } from '@pothos/core';
import type { GraphQLFieldResolver } from 'graphql';

const pluginName = 'syncNodeId';

declare global {
  export namespace PothosSchemaTypes {
    export interface Plugins<Types extends SchemaTypes> {
      syncNodeId: SyncNodeIdPlugin<Types>;
    }
  }
}

type IdResolver = (parent: unknown, args: object, context: object, info: unknown) => unknown;

export class SyncNodeIdPlugin<Types extends SchemaTypes> extends BasePlugin<Types> {
  override wrapResolve(
    resolver: GraphQLFieldResolver<unknown, Types['Context'], object>,
    fieldConfig: PothosOutputFieldConfig<Types>,
  ): GraphQLFieldResolver<unknown, Types['Context'], object> {
    const encode = this.builder.options.relay?.encodeGlobalID;
    if (fieldConfig.name !== 'id' || fieldConfig.graphqlKind !== 'Object' || !encode) return resolver;
    const type = this.buildCache.getTypeConfig(fieldConfig.parentType);
    // builder.node's options: only a node type has an `id` with a resolver there.
    const idOf = (type.pothosOptions as { id?: { resolve?: IdResolver } }).id?.resolve;
    if (type.kind !== 'Object' || typeof idOf !== 'function') return resolver;
    const typename = type.name;
    return (parent, args, context, info) => {
      const id = idOf(parent, args, context, info);
      if (id instanceof Promise) return id.then((value) => encode(typename, String(value), context));
      return encode(typename, String(id), context);
    };
  }
}

SchemaBuilder.registerPlugin(pluginName, SyncNodeIdPlugin);

export default pluginName;
