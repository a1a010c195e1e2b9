/**
 * Expressions checked against a sandbox stored in PostgreSQL, with the same catalogue and the
 * same audience lookups as on SQLite (expressions.ts, profile-schema.ts): only the reads differ.
 */
import type pg from 'pg';
import { pgStatementRunner } from '../db/pg/index.js';
import type { StatementRunner } from '../db/statement.js';
import type { FieldCatalog } from '../pql/index.js';
import {
  type CheckedInput,
  checkParsed,
  type ExpressionInput,
  parseExpression,
  resolveAudiences,
} from './expressions.js';
import { readSchemaFields, sandboxCatalog } from './profile-schema.js';

/** A sandbox's field catalogue, read through the client (so inside its transaction's snapshot). */
export async function readCatalogPg(client: pg.ClientBase, sandboxId: number): Promise<FieldCatalog> {
  return sandboxCatalog(await readSchemaFields(pgStatementRunner(client), sandboxId)).catalog;
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
  return checkDefinitionOn(pgStatementRunner(client), sandboxId, catalog, input, definition);
}

/**
 * checkDefinitionPg through any statement runner (by name, so on either database, inside the
 * caller's unit): the audiences an expression names looked up first, each once.
 */
export async function checkDefinitionOn(
  store: StatementRunner,
  sandboxId: number,
  catalog: FieldCatalog,
  input: ExpressionInput,
  definition = true,
): Promise<CheckedInput> {
  const parsed = parseExpression(input);
  const audiences = await resolveAudiences(store, sandboxId, parsed.ast);
  return checkParsed(parsed, { catalog, resolveAudience: (ref) => audiences.get(ref) }, definition);
}
