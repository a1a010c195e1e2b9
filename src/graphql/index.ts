import { GraphQLDeferDirective, GraphQLStreamDirective } from '@graphql-tools/utils';
import { lexicographicSortSchema, printSchema, specifiedDirectives } from 'graphql';
import { builder } from './builder.js';
import './types/sandbox.js';
import './types/profile.js';
import './types/profile-schema.js';
import './types/system.js';
import './types/folder.js';
import './types/audience.js';
import './types/segment-definition.js';
import './types/pql.js';
import './types/job.js';
import './types/segment-job.js';
import './types/membership.js';
import './types/preview.js';
import './types/schedule.js';
import './types/search.js';
import './types/dataset.js';
import './types/export-job.js';
import './types/external-audience.js';
import './types/explain.js';
import './types/size-history.js';
import './types/definition-change.js';

// @defer and @stream are part of the contract (the server streams incremental results), so they
// are declared here and appear in schema.graphql for code generators, not only added at runtime.
export const schema = builder.toSchema({
  directives: [...specifiedDirectives, GraphQLDeferDirective, GraphQLStreamDirective],
});

/** The SDL committed as schema.graphql (sorted, so the diff only shows real changes). */
export function printedSchema(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
