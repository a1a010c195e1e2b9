/**
 * Compiled execution (src/server/jit.ts) answers every operation exactly as the reference
 * executor does: the same operations through yoga with and without the plugin, compared byte for
 * byte, on a schema with the shapes SegQL's has (interfaces, fragments, non-null errors, bad
 * variables, a JSON scalar reading variables inside a literal, a mutation, @defer).
 */

import { useDeferStream } from '@graphql-yoga/plugin-defer-stream';
import { GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { createSchema, createYoga } from 'graphql-yoga';
import { describe, expect, it } from 'vitest';
import { compiledExecution } from '../../src/server/jit.js';

function literal(ast: ValueNode, variables: Record<string, unknown> | null | undefined): unknown {
  if (ast.kind === Kind.OBJECT)
    return Object.fromEntries(ast.fields.map((f) => [f.name.value, literal(f.value, variables)]));
  if (ast.kind === Kind.VARIABLE) return variables?.[ast.name.value];
  if (ast.kind === Kind.INT) return Number(ast.value);
  return 'value' in ast ? ast.value : null;
}

const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral: (ast, variables) => literal(ast, variables),
});

const audiences = [
  { id: 'a1', name: 'Gold', size: 3, createdAt: new Date(Date.UTC(2026, 0, 1)) },
  { id: 'a2', name: 'Silver', size: 0, createdAt: new Date(Date.UTC(2026, 0, 2)) },
];

function server(withJit: boolean) {
  const jit = compiledExecution(() => {});
  const yoga = createYoga({
    schema: createSchema({
      typeDefs: /* GraphQL */ `
        scalar JSON
        interface Node { id: ID! }
        type Audience implements Node { id: ID! name: String! size: Int! createdAt: String! broken: String! }
        type Query {
          audiences(first: Int): [Audience!]!
          node(id: ID!): Node
          echo(value: JSON): JSON
          slow: String
        }
        type Mutation { rename(id: ID!, name: String!): Audience }
      `,
      resolvers: {
        Node: { __resolveType: () => 'Audience' },
        Audience: {
          createdAt: (a: (typeof audiences)[number]) => a.createdAt.toISOString(),
          broken: () => {
            throw new Error('no such thing');
          },
        },
        Query: {
          audiences: (_: unknown, args: { first?: number }) => audiences.slice(0, args.first ?? 10),
          node: (_: unknown, args: { id: string }) => audiences.find((a) => a.id === args.id) ?? null,
          echo: (_: unknown, args: { value: unknown }) => args.value,
          slow: async () => 'later',
        },
        Mutation: {
          rename: (_: unknown, args: { id: string; name: string }) => ({
            ...audiences.find((a) => a.id === args.id)!,
            name: args.name,
          }),
        },
        JSON: JSONScalar,
      },
    }),
    plugins: withJit ? [useDeferStream(), jit] : [useDeferStream()],
    logging: false,
  });
  return { yoga, stats: jit.stats };
}

const operations: { query: string; variables?: Record<string, unknown> }[] = [
  { query: '{ audiences(first: 2) { id name size createdAt } }' },
  {
    query: 'query($n: Int) { a: audiences(first: $n) { ...F } } fragment F on Audience { id name }',
    variables: { n: 1 },
  },
  { query: '{ node(id: "a2") { id ... on Audience { name size } } }' },
  { query: '{ audiences { id broken } }' },
  { query: 'mutation { rename(id: "a1", name: "Platinum") { id name } }' },
  { query: 'query Q { ...R } fragment R on Query { list: audiences { ... on Audience { broken } } }' },
  { query: 'query($n: Int) { audiences(first: $n) { id } }', variables: { n: 'many' } },
  { query: '{ node(id: "a1") { ... on Audience { id broken } } }' },
  { query: 'query($t: String) { echo(value: { tier: $t, points: 3 }) }', variables: { t: 'gold' } },
  { query: '{ echo(value: { tier: "gold", points: [1, 2] }) }' },
  { query: 'query($v: JSON) { echo(value: $v) }', variables: { v: { tier: 'gold', at: null } } },
];

async function post(yoga: ReturnType<typeof server>['yoga'], body: unknown) {
  const res = await yoga.fetch('http://localhost/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, multipart/mixed' },
    body: JSON.stringify(body),
  });
  return res.text();
}

describe('compiled execution', () => {
  it('answers every operation byte for byte as the reference executor does', async () => {
    const reference = server(false);
    const jit = server(true);
    for (const op of operations) {
      expect(await post(jit.yoga, op), op.query).toBe(await post(reference.yoga, op));
    }
    // Queries ran compiled, the four that reported errors again on the reference executor; the
    // mutation and the JSON literal that reads a variable (which graphql-jit cannot compile) ran
    // there only.
    expect(jit.stats).toEqual({ compiled: operations.length - 2, reference: 2, rerun: 4 });
  });

  it('leaves @defer to the reference executor, which delivers it incrementally', async () => {
    const jit = server(true);
    const text = await post(jit.yoga, { query: '{ audiences { id } ... @defer { slow } }' });
    expect(text).toContain('"hasNext":true');
    expect(text).toContain('"slow":"later"');
    expect(jit.stats).toEqual({ compiled: 0, reference: 1, rerun: 0 });
  });
});
