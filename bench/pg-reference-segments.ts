/**
 * The reference definitions in the bench's PostgreSQL database, stored as the product stores
 * them: the domain creates them (audiences, segment definitions with their canonical
 * expression text, dependencies, versions) in a small SQLite scratch that holds only the data
 * set's sandbox and schema fields, and the rows are copied across with their ids. The domain
 * does not serve from PostgreSQL yet (docs/scale-out.md), so this is the one way to get rows
 * that are exactly the product's; the scratch stays open to check expressions against the
 * same catalogue and audience ids when they are compiled for PostgreSQL.
 */
import Database from 'better-sqlite3';
import type pg from 'pg';
import { type Connection, openDatabase } from '../src/db/index.js';
import { checkExpressionSync } from '../src/domain/expressions.js';
import { compileToSql, type SqlStatement } from '../src/pql/index.js';
import type { Dataset, Definition } from './lib.js';
import { copyRows, syncIdentity } from './pg-dataset.js';
import { createReferenceSegments, type ReferenceSegments } from './reference-segments.js';

/** Tables the domain writes when it creates a definition, in an order their references allow. */
const DEFINITION_TABLES = ['audiences', 'segment_definitions', 'definition_dependencies', 'definition_versions'];

/** Tables a segment job writes or reads for the bench audiences: emptied before the definitions are stored. */
const JOB_TABLES = [
  'memberships',
  'membership_history',
  'audience_size_history',
  'jobs',
  'job_ranges',
  'job_range_results',
];

export interface PgReferenceSegments extends ReferenceSegments {
  /** The scratch the definitions were made in: the checker's catalogue and audiences. */
  scratch: Connection;
  /** Per audience in plan order, the expression text as PostgreSQL stores it. */
  stored: { definitionId: number; audienceId: number; name: string; expressionText: string }[];
  close(): void;
}

export async function storeReferenceSegments(
  client: pg.ClientBase,
  dataset: Dataset,
  definitions: readonly Definition[],
): Promise<PgReferenceSegments> {
  const scratch = openDatabase(':memory:');
  try {
    const source = new Database(dataset.file, { readonly: true, fileMustExist: true });
    try {
      const sandbox = source.prepare('SELECT id, name, created_at FROM sandboxes WHERE id = ?').get(dataset.sandboxId);
      scratch.sqlite
        .prepare('INSERT INTO sandboxes (id, name, created_at) VALUES (@id, @name, @created_at)')
        .run(sandbox);
      const insertField = scratch.sqlite.prepare(
        'INSERT INTO schema_fields (sandbox_id, class, path, type, description, created_at) VALUES (@sandbox_id, @class, @path, @type, @description, @created_at)',
      );
      for (const f of source.prepare('SELECT * FROM schema_fields WHERE sandbox_id = ?').all(dataset.sandboxId)) {
        insertField.run(f);
      }
    } finally {
      source.close();
    }
    const segments = await createReferenceSegments(scratch, dataset, definitions);

    // Every run starts from the same state: no definitions, audiences, memberships or jobs.
    await client.query(`TRUNCATE ${[...DEFINITION_TABLES, ...JOB_TABLES].join(', ')}`);
    await client.query('BEGIN');
    try {
      for (const table of DEFINITION_TABLES) await copyRows(scratch.sqlite, client, table);
      for (const table of ['audiences', 'segment_definitions', 'jobs']) await syncIdentity(client, table);
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK');
      throw e;
    }
    await client.query(`ANALYZE ${DEFINITION_TABLES.join(', ')}`);

    const rows = await client.query<{ id: number; audience_id: number; expression_text: string }>(
      'SELECT id, audience_id, expression_text FROM segment_definitions WHERE sandbox_id = $1',
      [dataset.sandboxId],
    );
    const byDefinition = new Map(rows.rows.map((r) => [r.id, r]));
    const names = new Map(segments.created.map((c) => [c.definition.id, c.reference.name]));
    const stored = segments.plan.definitions.map((d) => {
      const row = byDefinition.get(d.definitionId);
      if (!row) throw new Error(`definition ${d.definitionId} was not copied into PostgreSQL`);
      return {
        definitionId: d.definitionId,
        audienceId: row.audience_id,
        name: names.get(d.definitionId)!,
        expressionText: row.expression_text,
      };
    });
    return { ...segments, scratch, stored, close: () => scratch.close() };
  } catch (e) {
    scratch.close();
    throw e;
  }
}

/** A stored definition compiled for PostgreSQL, as a job compiles it: checked, then `compileToSql`. */
export function compileForPostgres(segments: PgReferenceSegments, expressionText: string): SqlStatement {
  const { checked } = checkExpressionSync(segments.scratch, segments.sandboxId, {
    format: 'PQL_TEXT',
    value: expressionText,
  });
  return compileToSql(checked, { now: segments.now, sandboxId: segments.sandboxId, dialect: 'postgres' });
}
