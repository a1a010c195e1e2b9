import {
  type GraphQLField,
  type GraphQLObjectType,
  getNamedType,
  isLeafType,
  isNonNullType,
  isObjectType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../../src/graphql/index.js';
import { startTestServer, type TestServer } from './harness.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

/** Values for the required arguments connection fields take (a new one fails the test until it is added here). */
const REQUIRED_ARGS: Record<string, string> = {
  expression: '"loyalty.tier = \\"gold\\""',
  namespace: '"segql"',
  query: '"gold"',
};

interface ConnectionField {
  owner: GraphQLObjectType;
  field: GraphQLField<unknown, unknown>;
}

/** Every field of the schema that returns a Relay connection. */
function connectionFields(): ConnectionField[] {
  const found: ConnectionField[] = [];
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      const target = getNamedType(field.type);
      if (isObjectType(target) && target.name.endsWith('Connection') && target.getFields().edges) {
        found.push({ owner: type, field });
      }
    }
  }
  return found;
}

/** The scalar and enum fields of a type that take no required argument. */
function scalarFields(type: GraphQLObjectType): string[] {
  return Object.values(type.getFields())
    .filter((f) => isLeafType(getNamedType(f.type)) && !f.deprecationReason)
    .filter((f) => f.args.every((a) => !isNonNullType(a.type)))
    .map((f) => f.name);
}

/** A widest page of the connection: `first: 500`, every scalar of the node, cursors and page info. */
function widestPage({ owner, field }: ConnectionField): string {
  const edge = getNamedType(field.type) as GraphQLObjectType;
  const node = getNamedType(
    (getNamedType(edge.getFields().edges!.type) as GraphQLObjectType).getFields().node!.type,
  ) as GraphQLObjectType;
  const args = ['first: 500'];
  for (const arg of field.args) {
    if (!isNonNullType(arg.type)) continue;
    const value = REQUIRED_ARGS[arg.name];
    if (value === undefined) throw new Error(`No test value for the required argument ${field.name}(${arg.name})`);
    args.push(`${arg.name}: ${value}`);
  }
  const page = `${field.name}(${args.join(', ')}) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { ${scalarFields(node).join(' ')} } } }`;
  if (owner === schema.getQueryType()) return `{ ${page} }`;
  if (!owner.getInterfaces().some((i) => i.name === 'Node')) {
    throw new Error(`${owner.name}.${field.name}: no way to reach a connection on a type without a global id`);
  }
  return `{ node(id: "none") { ... on ${owner.name} { ${page} } } }`;
}

describe('query cost', () => {
  const fields = connectionFields();

  it('finds the connections of the schema', () => {
    expect(fields.map(({ owner, field }) => `${owner.name}.${field.name}`).sort()).toEqual([
      'Audience.members',
      'Audience.sizeHistory',
      'Dataset.records',
      'DefinitionChangePreview.joinSample',
      'DefinitionChangePreview.leaveSample',
      'ExternalAudience.ingestionRuns',
      'IngestionRun.errors',
      'Preview.results',
      'Profile.events',
      'Profile.membershipHistory',
      'Query.audiences',
      'Query.datasets',
      'Query.exportJobs',
      'Query.profiles',
      'Query.profilesMatching',
      'Query.schedules',
      'Query.searchEntities',
      'Query.segmentDefinitions',
      'Query.segmentJobs',
      'Schedule.runs',
      'Schedule.ticks',
      'SegmentDefinition.versions',
    ]);
  });

  it.each(fields.map((f) => [`${f.owner.name}.${f.field.name}`, f] as const))(
    'lets the widest documented page of %s (500 rows, every scalar of the node) pass',
    async (_name, connection) => {
      const res = await server.gql(widestPage(connection));
      expect(res.errors).toBeUndefined();
    },
  );

  it('lets the 500 audiences page with their folders pass', async () => {
    const res = await server.gql(
      '{ audiences(first: 500) { edges { node { id name size lifecycleState labels updatedAt folder { id path } } } } }',
    );
    expect(res.errors).toBeUndefined();
    expect(res.data.audiences.edges).toEqual([]);
  });

  it('refuses a page of 100 audiences with 100 members each as QUERY_TOO_COMPLEX', async () => {
    const res = await server.gql(
      '{ audiences(first: 100) { edges { node { members(first: 100) { edges { node { status } } } } } } }',
    );
    expect(res.data).toBeNull();
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 5000 });
    expect(res.errors?.[0]?.extensions?.actual).toBeGreaterThan(10_000);
  });

  it('counts nested pages by their page sizes: 10 audiences with 100 members each pass', async () => {
    const res = await server.gql(
      '{ audiences(first: 10) { edges { node { members(first: 100) { edges { node { status } } } } } } }',
    );
    expect(res.errors).toBeUndefined();
  });
});
