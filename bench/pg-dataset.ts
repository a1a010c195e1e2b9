/**
 * The standard data set in PostgreSQL, for `batch --backend postgres` (docs/performance.md): the
 * cached SQLite file that `prepareDataset` returns, copied into a PostgreSQL database migrated
 * with the product's own migrations (drizzle/pg), so the floor queries and the job run against
 * the schema and indexes the product has.
 *
 * The database belongs to the bench: `segql_bench` on the local server unless `--pg-url` names
 * another. A one-row table, `segql_bench_dataset`, records which seeding of which data set it
 * holds; a later run with the same data set reuses the database, any other data set drops and
 * re-creates it. The whole load is one transaction that writes the marker last, so an
 * interrupted load leaves no half-filled database that would be taken for a complete one.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { migratePg, openPgDatabase } from '../src/db/pg/index.js';
import type { Dataset } from './lib.js';

/** The bench's database on the server the tests use (postgres://postgres@127.0.0.1:5432/test). */
export const DEFAULT_BENCH_PG_URL = 'postgres://postgres@127.0.0.1:5432/segql_bench';

const MARKER = 'segql_bench_dataset';

export interface PgDataset {
  url: string;
  /** True when this call loaded the data (false: a previous run's copy was reused). */
  loaded: boolean;
  /** Wall time of the load (copy, index builds, VACUUM and ANALYZE), when this call loaded. */
  loadMs?: number;
}

export interface PreparePgOptions {
  url?: string;
  /** Load again even when the database already holds this data set. */
  reload?: boolean;
  log?: (line: string) => void;
}

/** What the marker row records: the data set's parameters and which seeding of them. */
interface Marker {
  profiles: number;
  events_per_profile: number;
  seed: number;
  now: number;
  sandbox_id: number;
  events: number;
  seeded_at: string;
}

function markerOf(dataset: Dataset): Marker {
  return {
    profiles: dataset.profiles,
    events_per_profile: dataset.eventsPerProfile,
    seed: dataset.seed,
    now: dataset.now,
    sandbox_id: dataset.sandboxId,
    events: dataset.events,
    seeded_at: dataset.seededAt,
  };
}

export async function preparePgDataset(dataset: Dataset, options: PreparePgOptions = {}): Promise<PgDataset> {
  const url = options.url ?? DEFAULT_BENCH_PG_URL;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const name = databaseName(url);
  await ensureDatabase(url, name);
  const wanted = markerOf(dataset);
  const state = await databaseState(url);
  if (!options.reload && state.marker && sameMarker(state.marker, wanted)) {
    // A copy loaded by an older tree gets this tree's migrations: the nodes under test do not migrate.
    await migrate(url);
    return { url, loaded: false };
  }
  if (state.marker || options.reload) {
    const why = state.marker && !sameMarker(state.marker, wanted) ? 'holds another data set' : 'is reloaded';
    log(`postgres: ${name} ${why}; dropping and re-creating it`);
    await adminQuery(url, `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    await adminQuery(url, `CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } else if (state.hasProfiles) {
    // Never load into (or drop) a database the bench did not make: it has data and no marker.
    throw new Error(
      `${name} holds profiles but no ${MARKER} row: not the bench's database; name another with --pg-url`,
    );
  }
  const started = performance.now();
  await migrate(url);
  await load(url, dataset, wanted, log);
  const loadMs = performance.now() - started;
  log(
    `postgres: loaded ${dataset.profiles} profiles and ${dataset.events} events into ${name} in ${(loadMs / 1000).toFixed(1)} s`,
  );
  return { url, loaded: true, loadMs };
}

async function migrate(url: string): Promise<void> {
  const conn = openPgDatabase(url, { max: 1 });
  try {
    await migratePg(conn);
  } finally {
    await conn.close();
  }
}

function sameMarker(a: Marker, b: Marker): boolean {
  return (Object.keys(b) as (keyof Marker)[]).every((k) => a[k] === b[k]);
}

function databaseName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  if (name === '') throw new Error(`${url} names no database`);
  return name;
}

/** Runs one statement on the server's maintenance database (CREATE / DROP DATABASE cannot run inside the target). */
async function adminQuery(url: string, text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}

async function ensureDatabase(url: string, name: string): Promise<void> {
  const found = await adminQuery(url, 'SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  if (found.rowCount === 0) await adminQuery(url, `CREATE DATABASE ${pg.escapeIdentifier(name)}`);
}

async function databaseState(url: string): Promise<{ marker?: Marker; hasProfiles: boolean }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = await client.query<{ marker: string | null; profiles: string | null }>(
      "SELECT to_regclass($1) AS marker, to_regclass('profiles') AS profiles",
      [MARKER],
    );
    const { marker, profiles } = tables.rows[0]!;
    const row = marker ? (await client.query<Marker>(`SELECT * FROM ${MARKER}`)).rows[0] : undefined;
    const hasProfiles = profiles
      ? (await client.query<{ any: boolean }>('SELECT EXISTS (SELECT 1 FROM profiles) AS any')).rows[0]!.any
      : false;
    return { marker: row, hasProfiles };
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------
// the load

/** The large tables, copied with COPY; their columns in the order both schemas share. */
const BULK: readonly { table: string; select: string; columns: string }[] = [
  {
    table: 'profiles',
    select: 'SELECT id, sandbox_id, json(attributes), created_at, updated_at FROM profiles ORDER BY id',
    columns: 'id, sandbox_id, attributes, created_at, updated_at',
  },
  {
    table: 'identities',
    select: 'SELECT sandbox_id, namespace, value, profile_id, created_at FROM identities',
    columns: 'sandbox_id, namespace, value, profile_id, created_at',
  },
  {
    table: 'events',
    select:
      'SELECT id, sandbox_id, profile_id, ts, event_type, event_id, json(payload), ingested_at FROM events ORDER BY id',
    columns: 'id, sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at',
  },
];

async function load(url: string, dataset: Dataset, marker: Marker, log: (line: string) => void): Promise<void> {
  const sqlite = new Database(dataset.file, { readonly: true, fileMustExist: true });
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    // COPY … FREEZE writes rows already frozen and all-visible (no hint-bit writes on first read,
    // index-only scans at once), which it allows only for a table truncated in this transaction.
    await client.query(`TRUNCATE ${BULK.map((b) => b.table).join(', ')}`);
    // Secondary indexes are built once after the copy instead of row by row (the GIN index on
    // attributes above all); they are re-created from their own definitions, so the schema
    // ends exactly as the migrations made it.
    const indexes = await client.query<{ name: string; def: string }>(
      `SELECT i.indexname AS name, i.indexdef AS def FROM pg_indexes i
       WHERE i.schemaname = current_schema() AND i.tablename = ANY($1)
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)`,
      [BULK.map((b) => b.table)],
    );
    for (const { name } of indexes.rows) await client.query(`DROP INDEX ${pg.escapeIdentifier(name)}`);
    // sandboxes.profile_count is kept by the profiles trigger: it starts at 0 and counts the copy.
    await copyRows(sqlite, client, 'sandboxes', { profile_count: 0 });
    await copyRows(sqlite, client, 'schema_fields');
    for (const bulk of BULK) {
      const t = performance.now();
      const rows = await copyTable(sqlite, client, bulk);
      log(`postgres: ${bulk.table}: ${rows} rows in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    const t = performance.now();
    await client.query("SET LOCAL maintenance_work_mem = '1GB'");
    for (const { def } of indexes.rows) await client.query(def);
    log(`postgres: ${indexes.rows.length} indexes built in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    for (const table of ['sandboxes', 'profiles', 'events']) await syncIdentity(client, table);
    await client.query(
      `CREATE TABLE ${MARKER} (profiles bigint NOT NULL, events_per_profile bigint NOT NULL, seed bigint NOT NULL,
         now bigint NOT NULL, sandbox_id bigint NOT NULL, events bigint NOT NULL, seeded_at text NOT NULL)`,
    );
    await client.query(`INSERT INTO ${MARKER} SELECT * FROM jsonb_populate_record(NULL::${MARKER}, $1::jsonb)`, [
      JSON.stringify(marker),
    ]);
    await checkCopy(sqlite, client);
    await client.query('COMMIT');
    // As after any bulk load: without a VACUUM every row's visibility is settled on its first
    // read (hint bits written back) and no index-only scan skips the heap until autovacuum comes
    // by, which for a table loaded in one go may be hours; the first runs would measure that.
    await client.query('VACUUM (ANALYZE)');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    await client.end();
    sqlite.close();
  }
}

/** COPY text format: backslash, newline, carriage return and tab are escaped; `\N` is NULL. */
const COPY_ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function copyField(v: unknown): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'string') return v.replace(/[\\\n\r\t]/g, (c) => COPY_ESCAPES[c]!);
  return String(v);
}

/** Streams one table from SQLite into `COPY … FROM STDIN` in ~1 MiB pieces; returns the rows copied. */
async function copyTable(sqlite: Database.Database, client: pg.Client, bulk: (typeof BULK)[number]): Promise<number> {
  const rows = sqlite.prepare(bulk.select).raw(true);
  function* pieces(): Generator<string> {
    let piece = '';
    for (const row of rows.iterate() as Iterable<unknown[]>) {
      piece += `${row.map(copyField).join('\t')}\n`;
      if (piece.length >= 1 << 20) {
        yield piece;
        piece = '';
      }
    }
    if (piece !== '') yield piece;
  }
  const copy = client.query(copyFrom(`COPY ${bulk.table} (${bulk.columns}) FROM STDIN WITH (FREEZE)`));
  await pipeline(Readable.from(pieces()), copy);
  return copy.rowCount;
}

/** The same tables on both sides hold the same rows: counts and sums of a key column against the SQLite file. */
async function checkCopy(sqlite: Database.Database, client: pg.Client): Promise<void> {
  const checks: [table: string, column: string][] = [
    ['profiles', 'id'],
    ['events', 'id'],
    ['identities', 'profile_id'],
    ['schema_fields', 'sandbox_id'],
  ];
  for (const [table, column] of checks) {
    const a = sqlite.prepare(`SELECT count(*) AS n, coalesce(sum(${column}), 0) AS s FROM ${table}`).get() as Print;
    const b = (
      await client.query<Print>(`SELECT count(*) AS n, coalesce(sum(${column}), 0)::float8 AS s FROM ${table}`)
    ).rows[0]!;
    if (a.n !== b.n || a.s !== b.s) {
      throw new Error(`copy of ${table}: SQLite ${a.n} rows (sum ${a.s}), PostgreSQL ${b.n} (sum ${b.s})`);
    }
  }
  const counted = await client.query(
    'SELECT s.id, s.profile_count AS kept, (SELECT count(*) FROM profiles p WHERE p.sandbox_id = s.id) AS n FROM sandboxes s',
  );
  for (const row of counted.rows) {
    if (row.kept !== row.n) throw new Error(`sandbox ${row.id}: profile_count ${row.kept}, ${row.n} profiles`);
  }
}

interface Print {
  n: number;
  s: number;
}

// ---------------------------------------------------------------------------------------------
// small tables, row for row

/**
 * Copies a small table's rows (all, or those `where` selects) from SQLite into the PostgreSQL
 * table of the same name: the columns both have, 0/1 flags as booleans, JSON as jsonb, in one
 * statement. `override` sets a column to a constant. Returns the rows copied.
 */
export async function copyRows(
  sqlite: Database.Database,
  client: pg.ClientBase,
  table: string,
  override: Record<string, unknown> = {},
  where: { sql: string; params: unknown[] } = { sql: '1', params: [] },
): Promise<number> {
  const target = await client.query<{ name: string; type: string }>(
    `SELECT column_name AS name, data_type AS type FROM information_schema.columns
     WHERE table_schema = current_schema() AND table_name = $1 AND is_generated = 'NEVER'`,
    [table],
  );
  const present = new Set(
    (sqlite.prepare('SELECT name FROM pragma_table_info(?)').all(table) as { name: string }[]).map((c) => c.name),
  );
  const columns = target.rows.filter((c) => present.has(c.name));
  const read = columns.map((c) => (c.type === 'jsonb' ? `json(${c.name}) AS ${c.name}` : c.name)).join(', ');
  const rows = (
    sqlite.prepare(`SELECT ${read} FROM ${table} WHERE ${where.sql}`).all(...where.params) as Record<string, unknown>[]
  ).map((row) => {
    const out: Record<string, unknown> = {};
    for (const { name, type } of columns) {
      const v = name in override ? override[name] : row[name];
      out[name] =
        v === null ? null : type === 'boolean' ? v === 1 || v === true : type === 'jsonb' ? JSON.parse(v as string) : v;
    }
    return out;
  });
  if (rows.length === 0) return 0;
  const list = columns.map((c) => pg.escapeIdentifier(c.name)).join(', ');
  const name = pg.escapeIdentifier(table);
  await client.query(
    `INSERT INTO ${name} (${list}) SELECT ${list} FROM jsonb_populate_recordset(NULL::${name}, $1::jsonb)`,
    [JSON.stringify(rows)],
  );
  return rows.length;
}

/** Moves a table's identity sequence past the ids copied in, so the product's own inserts do not collide. */
export async function syncIdentity(client: pg.ClientBase, table: string): Promise<void> {
  const name = pg.escapeIdentifier(table);
  await client.query(
    `SELECT setval(pg_get_serial_sequence($1, 'id'), m) FROM (SELECT max(id) AS m FROM ${name}) AS q WHERE m IS NOT NULL`,
    [table],
  );
}
