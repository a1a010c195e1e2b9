/**
 * Every mutation field runs under the connection's write gate (db/write-gate.ts): its
 * resolver starts once no job worker is writing its results, waiting without holding the event
 * loop, instead of meeting the worker's SQLite write lock in a busy wait that would. Declared once
 * here for the whole Mutation type, so no mutation can forget it. The gate covers the resolver's
 * synchronous part; a resolver that writes after an await (an upload, the ingest queue) takes
 * the gate again there. The synchronous part also waits for any unit of work another request
 * has open (db/unit.ts), so that what it writes outside a unit never lands in that unit's
 * transaction.
 */
import SchemaBuilder, { BasePlugin, type PothosOutputFieldConfig, type SchemaTypes } from '@pothos/core';
import type { GraphQLFieldResolver } from 'graphql';
import { writeInTurn } from '../db/unit.js';
import type { Context } from './context.js';

const pluginName = 'writeGate';

declare global {
  export namespace PothosSchemaTypes {
    export interface Plugins<Types extends SchemaTypes> {
      writeGate: WriteGatePlugin<Types>;
    }
  }
}

export class WriteGatePlugin<Types extends SchemaTypes> extends BasePlugin<Types> {
  override wrapResolve(
    resolver: GraphQLFieldResolver<unknown, Types['Context'], object>,
    fieldConfig: PothosOutputFieldConfig<Types>,
  ): GraphQLFieldResolver<unknown, Types['Context'], object> {
    if (fieldConfig.parentType !== 'Mutation') return resolver;
    return (parent, args, context, info) =>
      writeInTurn((context as Context).conn, () => resolver(parent, args, context, info));
  }
}

SchemaBuilder.registerPlugin(pluginName, WriteGatePlugin);

export default pluginName;
