/**
 * Expressions checked against a sandbox stored in PostgreSQL, with the same catalogue and the
 * same audience lookups as on SQLite (expressions.ts, profile-schema.ts): only the reads differ.
 */
import type pg from 'pg';
import { audienceReferences, type FieldCatalog, type ResolvedAudience } from '../pql/index.js';
import {
  AUDIENCE_LOOKUPS,
  type AudienceRow,
  audienceLookups,
  type CheckedInput,
  checkParsed,
  type ExpressionInput,
  parseExpression,
  resolvedAudience,
} from './expressions.js';
import { type SchemaField, sandboxCatalog } from './profile-schema.js';

/** A sandbox's field catalogue, read through the client (so inside its transaction's snapshot). */
export async function readCatalogPg(client: pg.ClientBase, sandboxId: number): Promise<FieldCatalog> {
  const { rows } = await client.query<SchemaField>(
    'SELECT class, path, type, description FROM schema_fields WHERE sandbox_id = $1',
    [sandboxId],
  );
  return sandboxCatalog(rows).catalog;
}

async function resolveAudiencePg(
  client: pg.ClientBase,
  sandboxId: number,
  ref: string,
): Promise<ResolvedAudience | undefined> {
  for (const { by, key } of audienceLookups(ref)) {
    const { rows } = await client.query<AudienceRow>(AUDIENCE_LOOKUPS[by].postgres, [sandboxId, key]);
    if (rows[0]) return resolvedAudience(rows[0]);
  }
  return undefined;
}

/**
 * Parses and checks a definition as checkExpression does on SQLite (`definition`, the default,
 * requires a boolean; false checks any expression). The checker asks for the audiences an
 * expression names synchronously, so they are looked up first, each once.
 */
export async function checkDefinitionPg(
  client: pg.ClientBase,
  sandboxId: number,
  catalog: FieldCatalog,
  input: ExpressionInput,
  definition = true,
): Promise<CheckedInput> {
  const parsed = parseExpression(input);
  const audiences = new Map<string, ResolvedAudience>();
  for (const ref of audienceReferences(parsed.ast)) {
    const found = await resolveAudiencePg(client, sandboxId, ref);
    if (found) audiences.set(ref, found);
  }
  return checkParsed(parsed, { catalog, resolveAudience: (ref) => audiences.get(ref) }, definition);
}
