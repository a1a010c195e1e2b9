/**
 * Which queries may be answered from the response cache (src/server/response-cache.ts): those
 * that select only fields listed here. A field belongs here when its value is a function of the
 * database's committed rows and the query's arguments alone — no clock (`stale`, estimates), no
 * state held in memory (running previews), no caller identity beyond the scopes the cache keys
 * on. Those are exactly the answers the database's write stamp can tell are still current.
 *
 * A field left out only means its queries run every time; a field wrongly listed would serve a
 * stale answer, so the list is short and each entry was read against its resolver. The `api`
 * bench's page (audiences with definition, size and latest job) and its siblings are in it.
 */
import { type DocumentNode, type GraphQLSchema, Kind, TypeInfo, visit, visitWithTypeInfo } from 'graphql';

const FIELDS: Record<string, readonly string[]> = {
  Query: ['audiences', 'audience', 'segmentDefinitions', 'segmentDefinition'],
  AudienceConnection: ['edges', 'pageInfo', 'totalCount'],
  AudienceEdge: ['cursor', 'node'],
  SegmentDefinitionConnection: ['edges', 'pageInfo', 'totalCount'],
  SegmentDefinitionEdge: ['cursor', 'node'],
  PageInfo: ['startCursor', 'endCursor', 'hasNextPage', 'hasPreviousPage'],
  Audience: [
    'id',
    'name',
    'namespace',
    'description',
    'origin',
    'lifecycleState',
    'labels',
    'segmentDefinition',
    'dependents',
    'size',
    'lastEvaluatedAt',
    'version',
    'createdAt',
    'updatedAt',
  ],
  SegmentDefinition: [
    'id',
    'name',
    'description',
    'expression',
    'normalizedExpression',
    'evaluationInfo',
    'eligibility',
    'eligibilityReasons',
    'evaluationWarnings',
    'referencedFields',
    'schemaName',
    'ttlInDays',
    'version',
    'createdAt',
    'updatedAt',
    'audience',
    'latestJob',
    'dependsOn',
  ],
  EvaluationInfo: ['batch', 'streaming', 'edge'],
  PqlExpression: ['type', 'format', 'value'],
  SegmentJob: [
    'id',
    'kind',
    'status',
    'trigger',
    'all',
    'at',
    'attempts',
    'error',
    'progress',
    'createdAt',
    'startedAt',
    'finishedAt',
  ],
  JobProgress: ['done', 'total', 'fraction'],
};

/** Schema coordinates (`Type.field`) whose values the write stamp covers. */
export const CACHEABLE_FIELDS: ReadonlySet<string> = new Set(
  Object.entries(FIELDS).flatMap(([type, fields]) => fields.map((f) => `${type}.${f}`)),
);

/** Directives that only choose fields by the variables, which are part of the cache key. */
const NEUTRAL_DIRECTIVES = new Set(['include', 'skip']);

/**
 * True when every operation of the document is a query and every field anywhere in it (its
 * fragments included, used or not) is cacheable. Judged once per parsed document.
 */
export function isCacheableDocument(schema: GraphQLSchema, document: DocumentNode): boolean {
  let cacheable = true;
  const typeInfo = new TypeInfo(schema);
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      OperationDefinition(node) {
        if (node.operation !== 'query') cacheable = false;
      },
      Directive(node) {
        if (!NEUTRAL_DIRECTIVES.has(node.name.value)) cacheable = false;
      },
      Field(node) {
        if (node.name.value === '__typename') return;
        const parent = typeInfo.getParentType();
        if (!parent || !CACHEABLE_FIELDS.has(`${parent.name}.${node.name.value}`)) cacheable = false;
      },
    }),
  );
  return cacheable && document.definitions.some((d) => d.kind === Kind.OPERATION_DEFINITION);
}
