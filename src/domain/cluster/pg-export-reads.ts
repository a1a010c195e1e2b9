/**
 * What a cluster export reads from PostgreSQL: the facts its request and plan are checked
 * against (the same rules as in one process: export-job.ts `resolveExportRequest`,
 * `exportPlanOf`), and its rows, in the order and shape the single-process SQLite reader hands
 * them to the shared writer (exports/export-writer.ts).
 *
 * Two things PostgreSQL does its own way, and how the rows are made to match:
 * - identities are ordered by namespace and value in bytes (`COLLATE "C"`), the order of
 *   SQLite's `identities_profile_namespace` index, read for a whole page at once and rendered by
 *   JSON.stringify, which escapes as SQLite's json_object does;
 * - attributes come back from `jsonb` and are rendered by JSON.stringify too, so numbers and
 *   strings are written as ingestion wrote them. `jsonb` does not keep the order of an object's
 *   keys (it keeps its own: shortest first), so a whole attribute document lists the same
 *   members as SQLite's in that order (docs/scale-out.md); selected fields and columns are
 *   written in schema order by both, byte for byte.
 */
import type pg from 'pg';
import type { Dataset, ExportFormat } from '../exports/datasets.js';
import { columnsOfSchema } from '../exports/export-columns.js';
import type { ExportFacts } from '../exports/export-job.js';
import type { ExportPlan } from '../exports/export-plan.js';
import type { SourceRow } from '../exports/export-writer.js';
import type { LifecycleState } from '../lifecycle.js';
import { MEMBERSHIP_STATUSES } from '../membership-statuses.js';
import { type SchemaField, sandboxCatalog } from '../profile-schema.js';
import { profileChangedSince } from '../profiles.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

const DATASET_COLUMNS = `id, sandbox_id AS "sandboxId", name, format, current_job_id AS "currentJobId",
  last_export_at AS "lastExportAt", created_at AS "createdAt"`;

/** The rows an export's request or plan may need, read at once (a cluster node's reads are asynchronous, the rules are not). */
export async function readExportFactsPg(
  db: Queryable,
  sandboxId: number,
  wanted: { audienceIds: readonly number[]; datasetId?: number | null; datasetName?: string | null },
): Promise<ExportFacts> {
  const audiences = (
    await db.query<{ id: number; name: string; definitionId: number | null; lifecycleState: LifecycleState }>(
      `SELECT id, name, definition_id AS "definitionId", lifecycle_state AS "lifecycleState"
       FROM audiences WHERE sandbox_id = $1 AND id = ANY($2::bigint[])`,
      [sandboxId, [...wanted.audienceIds]],
    )
  ).rows;
  const stored = (
    await db.query<SchemaField>('SELECT class, path, type, description FROM schema_fields WHERE sandbox_id = $1', [
      sandboxId,
    ])
  ).rows;
  const schema = sandboxCatalog(stored).fields;
  const datasets = (
    await db.query<Dataset & { format: ExportFormat }>(
      `SELECT ${DATASET_COLUMNS} FROM datasets WHERE sandbox_id = $1 AND (id = $2 OR name = $3)`,
      [sandboxId, wanted.datasetId ?? null, wanted.datasetName?.trim() ?? null],
    )
  ).rows;
  return {
    audiences: (ids) => new Map(audiences.filter((a) => ids.includes(a.id)).map((a) => [a.id, a])),
    columns: (fields) => columnsOfSchema(schema, fields),
    datasetById: (id) => datasets.find((d) => d.id === id),
    datasetByName: (name) => datasets.find((d) => d.name === name),
  };
}

/** Creates a dataset (an export naming one that does not exist yet), in the caller's transaction. */
export async function insertDatasetPg(
  db: Queryable,
  sandboxId: number,
  name: string,
  format: ExportFormat,
  now = Date.now(),
): Promise<Dataset> {
  const { rows } = await db.query<Dataset>(
    `INSERT INTO datasets (sandbox_id, name, format, created_at) VALUES ($1, $2, $3, $4) RETURNING ${DATASET_COLUMNS}`,
    [sandboxId, name, format, now],
  );
  return rows[0]!;
}

/**
 * A page's identities, in one statement for the whole page: a subquery aggregating them per row
 * (what SQLite's reader does) made PostgreSQL run a sort and an aggregate for every row, which
 * was most of a page's time on the server.
 */
const PAGE_IDENTITIES = `SELECT profile_id, namespace, value FROM identities WHERE profile_id = ANY($1::bigint[])
  ORDER BY profile_id, namespace COLLATE "C", value COLLATE "C"`;

type Audience = ExportPlan['audiences'][number];

/** One audience's rows as one statement reads them: a page after `after` (the keyset), or their count. */
function rowQuery(plan: ExportPlan, audience: Audience, count: boolean, after: number, limit: number) {
  const params: unknown[] = [audience.audienceId];
  const p = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  let fresh = '';
  if (plan.fromIngestTimestamp != null) {
    const since = p(plan.fromIngestTimestamp);
    fresh = ` AND ${profileChangedSince('p', '>=', since, p(plan.sandboxId))}`;
  }
  if (plan.mode === 'CHANGES') {
    const [realized, , exited] = MEMBERSHIP_STATUSES;
    const where = `h.audience_id = $1 AND h.to_status IN (${p(realized)}, ${p(exited)}) AND h.at > ${p(plan.since ?? 0)} AND h.at <= ${p(plan.now)}${fresh}`;
    if (count) {
      return {
        text: `SELECT count(*)::int AS n FROM membership_history h LEFT JOIN profiles p ON p.id = h.profile_id WHERE ${where}`,
        params,
      };
    }
    // Every move in or out in the window, oldest first: what a downstream copy applies in order.
    return {
      text: `SELECT h.id AS key, h.profile_id AS pid, h.to_status AS status,
          CASE WHEN h.to_status = ${p(realized)} THEN h.at END AS q, CASE WHEN h.to_status = ${p(exited)} THEN h.at END AS x,
          h.at AS c, p.attributes AS doc, p.id AS present
        FROM membership_history h LEFT JOIN profiles p ON p.id = h.profile_id
        WHERE ${where} AND h.id > ${p(after)} ORDER BY h.id LIMIT ${p(limit)}`,
      params,
    };
  }
  const where = `m.audience_id = $1 AND m.status = ANY(${p(audience.statuses)}::text[])`;
  if (count) {
    return {
      text: `SELECT count(*)::int AS n FROM memberships m JOIN profiles p ON p.id = m.profile_id WHERE ${where}${fresh}`,
      params,
    };
  }
  return {
    text: `SELECT m.profile_id AS key, m.profile_id AS pid, m.status, m.qualified_at AS q, m.exited_at AS x, NULL::bigint AS c,
        p.attributes AS doc, p.id AS present
      FROM memberships m JOIN profiles p ON p.id = m.profile_id
      WHERE ${where}${fresh} AND m.profile_id > ${p(after)} ORDER BY m.profile_id LIMIT ${p(limit)}`,
    params,
  };
}

/** Rows the plan will write, over all its audiences (the job's progress total). */
export async function countExportRowsPg(db: Queryable, plan: ExportPlan): Promise<number> {
  let total = 0;
  for (const audience of plan.audiences) {
    const { text, params } = rowQuery(plan, audience, true, 0, 0);
    total += (await db.query<{ n: number }>(text, params)).rows[0]!.n;
  }
  return total;
}

interface PgSourceRow {
  key: number;
  pid: number;
  status: string;
  q: number | null;
  x: number | null;
  c: number | null;
  doc: Record<string, unknown> | null;
  /** The profile's id when it is still there (a CHANGES row may outlive its profile). */
  present: number | null;
}

/**
 * One audience's rows, a page of `pageRows` at a time, by keyset (profile id, or history id for
 * CHANGES). Every page must run in the caller's one REPEATABLE READ transaction, so the export
 * reads a single snapshot as a SQLite read transaction does.
 */
export async function* exportRowsPg(
  db: Queryable,
  plan: ExportPlan,
  audience: Audience,
  pageRows = 2_000,
): AsyncGenerator<SourceRow[]> {
  let after = 0;
  for (;;) {
    const { text, params } = rowQuery(plan, audience, false, after, pageRows);
    const { rows } = await db.query<PgSourceRow>(text, params);
    if (rows.length === 0) return;
    after = rows[rows.length - 1]!.key;
    const ids = await pageIdentities(db, rows);
    yield rows.map((r) => ({
      pid: r.pid,
      status: r.status,
      q: r.q,
      x: r.x,
      c: r.c,
      // The text only where a line holds the whole document; chosen fields are read from the
      // object the driver parsed, not from that text parsed once more (export-writer.ts toRow).
      doc: r.doc == null || !plan.allFields ? null : JSON.stringify(r.doc),
      parsed: r.doc,
      ids: r.present == null ? '[]' : `[${ids.get(r.present) ?? ''}]`,
    }));
    if (rows.length < pageRows) return;
  }
}

/**
 * The identities of a page's profiles, each profile's as the members of its JSON array
 * (`{"namespace":…,"id":…}`, as JSON.stringify writes them), ordered by namespace and value in
 * bytes as SQLite's index orders them.
 */
async function pageIdentities(db: Queryable, rows: PgSourceRow[]): Promise<Map<number, string>> {
  const pids = [...new Set(rows.flatMap((r) => (r.present == null ? [] : [r.present])))];
  const out = new Map<number, string>();
  if (pids.length === 0) return out;
  const { rows: found } = await db.query<[number, string, string]>({
    text: PAGE_IDENTITIES,
    // One array literal: the driver would otherwise escape each of a page's ids on its own.
    values: [`{${pids.join(',')}}`],
    rowMode: 'array',
  });
  for (const [pid, namespace, id] of found) {
    const one = `{"namespace":${JSON.stringify(namespace)},"id":${JSON.stringify(id)}}`;
    const before = out.get(pid);
    out.set(pid, before === undefined ? one : `${before},${one}`);
  }
  return out;
}
