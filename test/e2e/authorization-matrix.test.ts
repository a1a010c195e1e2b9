/**
 * Every root field of the schema, asked by every kind of caller, written every way a document
 * can reach it. The list of fields comes from the schema itself, so a field added later is
 * covered without editing this file; only the admin fields are named here, as the API reference
 * names them.
 */
import { createHash } from 'node:crypto';
import {
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLObjectType,
  getNamedType,
  isEnumType,
  isInputObjectType,
  isLeafType,
  isListType,
  isNonNullType,
  isScalarType,
} from 'graphql';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgConnection } from '../../src/db/pg/index.js';
import { createApiKey, touchKeyStamp } from '../../src/domain/api-keys.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { schema } from '../../src/graphql/index.js';
import { e2eBackend, startTestServer, type TestServer } from './harness.js';

/** Fields that change a sandbox's shape: `admin` only (docs/api.md "Auth"). */
const ADMIN_FIELDS = new Set(['createSandbox', 'updateProfileSchema']);

type Caller = 'none' | 'read' | 'write' | 'admin' | 'otherSandbox';
const CALLERS: Caller[] = ['none', 'read', 'write', 'admin', 'otherSandbox'];
type Form = 'direct' | 'alias' | 'inlineFragment' | 'namedFragment' | 'secondOperation';
const FORMS: Form[] = ['direct', 'alias', 'inlineFragment', 'namedFragment', 'secondOperation'];

/** A literal of the input type that passes validation (its value may still be refused by the resolver). */
function literal(type: GraphQLInputType): string {
  if (isNonNullType(type)) return literal(type.ofType);
  if (isListType(type)) return `[${literal(type.ofType)}]`;
  if (isEnumType(type)) return type.getValues()[0]!.name;
  if (isInputObjectType(type)) {
    const fields = Object.values(type.getFields()).filter((f) => isNonNullType(f.type) && f.defaultValue === undefined);
    return `{ ${fields.map((f) => `${f.name}: ${literal(f.type)}`).join(', ')} }`;
  }
  if (isScalarType(type)) {
    switch (type.name) {
      case 'Int':
      case 'Float':
        return '1';
      case 'Boolean':
        return 'false';
      case 'DateTime':
        return '"2026-01-01T00:00:00.000Z"';
      case 'JSON':
        return '{}';
      default:
        return '"matrix"';
    }
  }
  throw new Error(`no literal for ${String(type)}`);
}

function call(field: GraphQLField<unknown, unknown>, alias = ''): string {
  const args = field.args
    .filter((a: GraphQLArgument) => isNonNullType(a.type) && a.defaultValue === undefined)
    .map((a) => `${a.name}: ${literal(a.type)}`);
  const selection = isLeafType(getNamedType(field.type)) ? '' : ' { __typename }';
  return `${alias}${field.name}${args.length ? `(${args.join(', ')})` : ''}${selection}`;
}

function document(
  operation: 'query' | 'mutation' | 'subscription',
  root: string,
  field: GraphQLField<unknown, unknown>,
  form: Form,
): { query: string; operationName?: string } {
  switch (form) {
    case 'direct':
      return { query: `${operation} { ${call(field)} }` };
    case 'alias':
      return { query: `${operation} { renamed: ${call(field)} }` };
    case 'inlineFragment':
      return { query: `${operation} { ... on ${root} { ${call(field)} } }` };
    case 'namedFragment':
      return { query: `${operation} { ...F } fragment F on ${root} { ${call(field)} }` };
    case 'secondOperation':
      return {
        query: `query Harmless { __typename } ${operation} Target { ${call(field)} }`,
        operationName: 'Target',
      };
  }
}

function expectedCode(caller: Caller, operation: string, field: string): string | undefined {
  if (caller === 'none') return 'UNAUTHENTICATED';
  if (caller === 'otherSandbox') return 'FORBIDDEN';
  if (ADMIN_FIELDS.has(field)) return caller === 'admin' ? undefined : 'FORBIDDEN';
  if (operation === 'mutation') return caller === 'read' ? 'FORBIDDEN' : undefined;
  return undefined;
}

const AUTH_CODES = new Set(['UNAUTHENTICATED', 'FORBIDDEN']);

describe('authorization matrix over every root field', () => {
  let server: TestServer;
  const headers = {} as Record<Caller, Record<string, string>>;

  /** Every row of every table: a refused mutation must leave it unchanged. */
  async function fingerprint(): Promise<string> {
    const hash = createHash('sha256');
    if (e2eBackend() === 'postgres') {
      const { pool } = server.app.conn as PgConnection;
      // One round trip: every table's rows as text, each table's sorted (its key is not known here).
      const tables = (
        await pool.query<{ name: string }>(
          "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
        )
      ).rows.map((r) => r.name);
      const parts = tables.map(
        (name) =>
          `SELECT ${pg.escapeLiteral(name)} || ':' || coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM ${pg.escapeIdentifier(name)} t`,
      );
      const { rows } = await pool.query(
        `SELECT string_agg(x, E'\\n' ORDER BY x) AS fp FROM (${parts.join(' UNION ALL ')}) q(x)`,
      );
      return hash.update(rows[0].fp ?? '').digest('hex');
    }
    const sqlite = server.sqlite.sqlite;
    const tables = sqlite
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
      .pluck()
      .all() as string[];
    for (const t of tables) {
      for (const row of sqlite.prepare(`SELECT * FROM "${t}"`).raw().all()) {
        hash.update(`${t}:${JSON.stringify(row, (_k, v) => (Buffer.isBuffer(v) ? v.toString('hex') : v))}\n`);
      }
    }
    return hash.digest('hex');
  }

  async function send(
    operation: 'query' | 'mutation' | 'subscription',
    doc: { query: string; operationName?: string },
    caller: Caller,
  ): Promise<{ codes: string[]; raw: string }> {
    // Headers within 10 s whatever the load; then an allowed subscription may stay quiet, so its
    // body is read for 400 ms (a refusal comes with the headers).
    const controller = new AbortController();
    let timer = setTimeout(() => controller.abort(), 10_000);
    const res = await fetch(server.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: operation === 'subscription' ? 'text/event-stream' : 'application/graphql-response+json',
        ...headers[caller],
      },
      body: JSON.stringify(doc),
      signal: controller.signal,
    });
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(), operation === 'subscription' ? 400 : 10_000);
    let raw = '';
    if (operation === 'subscription' && res.headers.get('content-type')?.includes('text/event-stream')) {
      // A refusal comes at once; an allowed subscription may stay quiet, so read what comes in time.
      const reader = res.body!.getReader();
      try {
        while (!/\n\n/.test(raw)) {
          const { value, done } = await reader.read();
          if (done) break;
          raw += new TextDecoder().decode(value);
        }
      } catch {
        // timed out while quiet: allowed and waiting for events
      }
      await reader.cancel().catch(() => {});
    } else {
      raw = await res.text();
    }
    clearTimeout(timer);
    const codes = [...raw.matchAll(/"code":"([A-Z_]+)"/g)].map((m) => m[1]!);
    return { codes, raw };
  }

  beforeAll(async () => {
    server = await startTestServer();
    const conn = server.app.conn;
    await ensureSandbox(conn, 'other');
    const make = async (name: string, scopes: string[], sandbox = 'prod') =>
      (await createApiKey(conn, { name, sandboxes: [sandbox], scopes })).key;
    const keys: Record<Exclude<Caller, 'none'>, string> = {
      read: await make('r', ['read']),
      write: await make('w', ['read', 'write']),
      admin: await make('a', ['read', 'write', 'admin']),
      otherSandbox: await make('o', ['read', 'write', 'admin'], 'other'),
    };
    touchKeyStamp(server.dataDir);
    headers.none = {};
    for (const [caller, key] of Object.entries(keys)) headers[caller as Caller] = { authorization: `Bearer ${key}` };
  });
  afterAll(() => server?.stop());

  const roots: ['query' | 'mutation' | 'subscription', GraphQLObjectType][] = [
    ['query', schema.getQueryType()!],
    ['mutation', schema.getMutationType()!],
    ['subscription', schema.getSubscriptionType()!],
  ];

  for (const [operation, root] of roots) {
    const fields = Object.values(root.getFields());
    it(`${operation}: ${fields.length} fields × ${CALLERS.length} callers × ${FORMS.length} forms`, async () => {
      expect(fields.length).toBeGreaterThan(operation === 'subscription' ? 3 : 10);
      const wrong: string[] = [];
      // A query never writes, whoever asks and however it is written (issue: estimate(refresh) started a job).
      const beforeQueries = operation === 'query' ? await fingerprint() : '';
      // The data as the last refused mutation left it: the next refused one starts from it, unless
      // an allowed one ran in between (then it is read again). Half the fingerprints, each of
      // which reads every row: the same moments compared as reading before and after each one.
      let settled: string | undefined;
      for (const field of fields) {
        for (const caller of CALLERS) {
          const expected = expectedCode(caller, operation, field.name);
          const runForm = async (form: Form) => {
            const doc = document(operation, root.name, field, form);
            const checkWrites = Boolean(expected) && operation === 'mutation';
            const before = checkWrites ? (settled ?? (await fingerprint())) : '';
            const { codes, raw } = await send(operation, doc, caller);
            const authCodes = codes.filter((c) => AUTH_CODES.has(c));
            const what = `${operation} ${field.name} as ${caller} (${form})`;
            if (checkWrites) {
              settled = await fingerprint();
              if (settled !== before) wrong.push(`${what}: refused but changed data`);
            } else {
              settled = undefined;
            }
            if (expected) {
              if (!authCodes.includes(expected)) wrong.push(`${what}: expected ${expected}, got ${raw.slice(0, 200)}`);
            } else if (authCodes.length > 0) {
              wrong.push(`${what}: expected to be allowed, got ${raw.slice(0, 200)}`);
            }
          };
          // Mutations one at a time, so each refused one is compared with the data just before it.
          if (operation === 'mutation') for (const form of FORMS) await runForm(form);
          else await Promise.all(FORMS.map(runForm));
        }
      }
      expect(wrong).toEqual([]);
      if (operation === 'query') expect(await fingerprint()).toBe(beforeQueries);
      // Hundreds of requests, each mutation between two fingerprints: generous on a loaded machine.
    }, 120_000);
  }
});
