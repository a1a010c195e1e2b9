/**
 * Compiled execution (src/server/jit.ts) answers every operation exactly as the reference
 * executor does: the same operations through yoga with and without the plugin, compared byte for
 * byte, on a schema with the shapes SegQL's has (interfaces, fragments, non-null errors, bad
 * variables, a JSON scalar reading variables inside a literal, mutations, @defer), and a
 * subscription's events against graphql-js's execution of them. A mutation runs once: compiled,
 * or on the reference executor when its variables are refused.
 */

import { useDeferStream } from '@graphql-yoga/plugin-defer-stream';
import {
  execute,
  GraphQLError,
  type GraphQLResolveInfo,
  GraphQLScalarType,
  Kind,
  parse,
  type ValueNode,
} from 'graphql';
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

/** An instant as ISO text in, epoch ms inside (as SegQL's DateTime). */
const StampScalar = new GraphQLScalarType({
  name: 'Stamp',
  serialize: (v) => new Date(v as number).toISOString(),
  parseValue: (v) => {
    const ms = typeof v === 'string' ? Date.parse(v) : Number.NaN;
    if (Number.isNaN(ms))
      throw new GraphQLError(`Stamp must be ISO text, got ${JSON.stringify(v)}`, {
        extensions: { code: 'BAD_USER_INPUT' },
      });
    return ms;
  },
});

/** How many times each mutation's resolver ran, over both servers. */
const ran = { ingest: 0 };
/** What `refuse`'s resolver was told of where it runs, a line a run. */
const seen: string[] = [];

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
        scalar Stamp
        input WhoIn { namespace: String!, id: String! }
        input EventIn { id: String, at: Stamp!, who: WhoIn!, data: JSON, tags: [String!] }
        type Mutation {
          rename(id: ID!, name: String!): Audience
          ingest(events: [EventIn!]!): String!
          refuse: Int
          fail: Int!
        }
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
          // What it was handed, coerced: the compiled run must hand the same.
          ingest: (_: unknown, args: { events: unknown[] }) => {
            ran.ingest++;
            return JSON.stringify(args.events);
          },
          refuse: (_: unknown, _args: unknown, _ctx: unknown, info: GraphQLResolveInfo) => {
            seen.push(`${info.parentType.name} ${info.operation.operation} ${info.schema.getQueryType()?.name}`);
            throw new GraphQLError('not yours', { extensions: { code: 'FORBIDDEN' } });
          },
          fail: () => {
            throw new Error('disk says no');
          },
        },
        JSON: JSONScalar,
        Stamp: StampScalar,
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

const ingest = 'mutation($e: [EventIn!]!) { ingest(events: $e) }';
const event = { id: 'e1', at: '2026-01-01T00:00:00.000Z', who: { namespace: 'email', id: 'a@b' }, data: { n: 1 } };
/** Mutations: run compiled unless their variables are refused (those run nothing, and are worded by the reference executor). */
const mutations: { query: string; variables?: Record<string, unknown> }[] = [
  { query: ingest, variables: { e: [event, { ...event, id: null, tags: 'one', data: [1, { a: null }] }] } },
  // A single value where a list is declared is a list of it, as graphql-js coerces it.
  { query: ingest, variables: { e: event } },
  { query: ingest, variables: { e: [{ ...event, at: 'yesterday' }] } },
  { query: ingest, variables: { e: [{ ...event, extra: 1 }] } },
  { query: ingest, variables: { e: [{ ...event, who: { namespace: 'email' } }] } },
  { query: ingest, variables: { e: [{ ...event, id: 7 }] } },
  { query: ingest, variables: {} },
  { query: 'mutation { refuse }' },
  { query: 'mutation { fail }' },
  // One root field runs compiled as the query of a schema rooted at Mutation (jit.ts); through a
  // fragment, or beside another field, it keeps graphql-jit's serial mutation.
  { query: 'mutation { ...M } fragment M on Mutation { renamed: rename(id: "a2", name: "Z") { id name } }' },
  {
    query:
      'mutation { a: rename(id: "a1", name: "X") { id } b: refuse c: rename(id: "a2", name: "Y") { name broken } }',
  },
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
    // Operations ran compiled, the four queries that reported errors again on the reference
    // executor; the JSON literal that reads a variable (which graphql-jit cannot compile) ran
    // there only.
    expect(jit.stats).toEqual({ compiled: operations.length - 1, reference: 1, rerun: 4 });
  });

  it('answers mutations as the reference executor does, running each once', async () => {
    const reference = server(false);
    const jit = server(true);
    ran.ingest = 0;
    for (const op of mutations) {
      expect(await post(jit.yoga, op), JSON.stringify(op)).toBe(await post(reference.yoga, op));
    }
    // The two accepted ingests ran once on each server; the five refused ran nowhere.
    expect(ran.ingest).toBe(4);
    // The refused variables went to the reference executor (which refused them too); the
    // resolvers' errors are the compiled run's answer.
    expect(jit.stats).toEqual({ compiled: mutations.length, reference: 0, rerun: 5 });
  });

  it('runs a mutation of one root field as the query of a schema rooted at Mutation, the others serially', async () => {
    const jit = server(true);
    seen.length = 0;
    await post(jit.yoga, { query: 'mutation { refuse }' });
    await post(jit.yoga, { query: 'mutation { ...R } fragment R on Mutation { refuse }' });
    await post(jit.yoga, { query: 'mutation { a: refuse b: refuse }' });
    // The resolver's parent type is Mutation every time; only a one-field mutation's `info`
    // names a query operation over the Mutation-rooted schema (no SegQL resolver or plugin reads
    // the operation's kind: Pothos' complexity takes its root type from that schema).
    expect(seen).toEqual([
      'Mutation query Mutation',
      'Mutation mutation Query',
      'Mutation mutation Query',
      'Mutation mutation Query',
    ]);
  });

  it('leaves @defer to the reference executor, which delivers it incrementally', async () => {
    const jit = server(true);
    const text = await post(jit.yoga, { query: '{ audiences { id } ... @defer { slow } }' });
    expect(text).toContain('"hasNext":true');
    expect(text).toContain('"slow":"later"');
    expect(jit.stats).toEqual({ compiled: 0, reference: 1, rerun: 0 });
  });
});

describe('compiled subscription events', () => {
  const schema = createSchema({
    typeDefs: /* GraphQL */ `
      scalar Stamp
      type Change { at: Stamp!, to: String!, broken: String!, note: String }
      type Commit { lagged: Int!, changes: [Change!]! }
      type Query { ok: Boolean }
      type Subscription { committed(topic: String): Commit! }
    `,
    resolvers: {
      Stamp: StampScalar,
      Change: {
        broken: () => {
          throw new Error('no such thing');
        },
      },
      Subscription: {
        committed: {
          subscribe: async function* () {},
          // The event is the commit; the topic only shapes what is read.
          resolve: (commit: { lagged: number; changes: unknown[] }, args: { topic?: string }) =>
            args.topic === 'none' ? { ...commit, changes: [] } : commit,
        },
      },
    },
  });
  const events = [
    { lagged: 0, changes: [{ at: Date.UTC(2026, 0, 1), to: 'REALIZED' }] },
    {
      lagged: 3,
      changes: [
        { at: Date.UTC(2026, 0, 2, 3, 4, 5, 6), to: 'EXITED', note: null },
        { at: Date.UTC(2026, 0, 3), to: 'REALIZED', note: 'second' },
      ],
    },
    { lagged: 0, changes: [] },
  ];
  const documents: { query: string; variables?: Record<string, unknown> }[] = [
    { query: 'subscription { committed { lagged changes { at to } } }' },
    { query: 'subscription($t: String) { committed(topic: $t) { changes { to note } } }', variables: { t: 'none' } },
    { query: 'subscription S { c: committed { ...F } } fragment F on Commit { changes { at } lagged }' },
    // A field that throws: the compiled run reports it, and the reference executor answers.
    { query: 'subscription { committed { changes { to broken } } }' },
  ];

  it('answers every event as graphql-js does, again on it when the compiled run reported errors', async () => {
    const jit = compiledExecution(() => {});
    for (const { query, variables } of documents) {
      const args = { schema, document: parse(query), variableValues: variables, contextValue: {} };
      for (const event of events) {
        const compiled = await jit.executeEvent(args, event);
        const reference = await execute({ ...args, rootValue: event });
        expect(JSON.stringify(compiled), query).toBe(JSON.stringify(reference));
      }
    }
    // Every event ran compiled; the throwing field's two events that had changes ran again.
    expect(jit.stats).toEqual({ compiled: documents.length * events.length, reference: 0, rerun: 2 });
  });

  it('leaves a document with @defer to the reference executor', async () => {
    const jit = compiledExecution(() => {});
    const document = parse('subscription { committed { lagged ... @defer { changes { to } } } }');
    const args = { schema, document, contextValue: {} };
    const result = await jit.executeEvent(args, events[0]);
    expect(result).toEqual(await execute({ ...args, rootValue: events[0] }));
    expect(jit.stats).toEqual({ compiled: 0, reference: 1, rerun: 0 });
  });
});
