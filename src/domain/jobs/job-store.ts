import type { Connection } from '../../db/index.js';
import type { jobs } from '../../db/schema.js';
import { preparedOn, statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { notFound } from '../errors.js';
import { encodeGlobalId } from '../ids.js';
import { integerBounds, type Page, type PageArgs, pageQuery, toPage } from '../paging.js';
import type { InputOf, JobStatus, JobTrigger, ResultOf, TypedJobKind } from './job-types.js';

/** A persisted job of kind K, with that kind's input and result. */
interface JobFields<K extends TypedJobKind> {
  id: number;
  sandboxId: number;
  kind: K;
  status: JobStatus;
  progressDone: number;
  progressTotal: number | null;
  input: InputOf<K>;
  /** The kind's result once it has ended; a kind may keep a running one while it runs (a preview's estimate). */
  result: ResultOf<K> | null;
  error: string | null;
  trigger: JobTrigger;
  scheduleId: number | null;
  /** The job queued to run first, for this one (an export's segment job); null for most jobs. */
  afterJobId: number | null;
  attempts: number;
  /** The node holding it while PROCESSING on a cluster (docs/scale-out.md); null in one process. */
  leaseOwner: string | null;
  leaseUntil: number | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  updatedAt: number;
}

/** A job of kind K; of several kinds, the union of each, discriminated by `kind`. */
export type JobOf<K extends TypedJobKind> = K extends TypedJobKind ? JobFields<K> : never;
/** A persisted job of any kind. */
export type Job = JobOf<TypedJobKind>;

type JobRow = typeof jobs.$inferSelect;
/** A row as both texts give it: `input` and `result` as JSON text. */
type StoredJobRow = Omit<JobRow, 'input' | 'result'> & { input: string; result: string | null };

/** The one place a row becomes a typed job: the row's kind says which input and result its JSON holds. */
function toJob<K extends TypedJobKind = TypedJobKind>(row: StoredJobRow): JobOf<K> {
  return {
    ...row,
    input: JSON.parse(row.input),
    result: row.result === null ? null : JSON.parse(row.result),
  } as JobOf<K>;
}

/**
 * A job from a row written as JSON with the column names this file reads (the PostgreSQL job
 * update notification, pg migration `job_update_payload`).
 */
export function jobFromRowJson(text: string): Job {
  return toJob(JSON.parse(text) as StoredJobRow);
}

// Every column, as Drizzle's select() gave them; the JSON columns as text on both (SQLite keeps
// them as the text Drizzle wrote, PostgreSQL as jsonb).
const columns = (json: (column: string) => string) => `id, sandbox_id AS "sandboxId", kind, status,
  progress_done AS "progressDone", progress_total AS "progressTotal", ${json('input')} AS input,
  ${json('result')} AS result, error, "trigger", schedule_id AS "scheduleId", after_job_id AS "afterJobId",
  attempts, lease_owner AS "leaseOwner", lease_until AS "leaseUntil", created_at AS "createdAt",
  started_at AS "startedAt", finished_at AS "finishedAt", updated_at AS "updatedAt"`;
const COLUMNS = columns((c) => c);
const COLUMNS_PG = columns((c) => `CAST(${c} AS text)`);

/** The columns an update may set, with their PostgreSQL types; `updatedAt` is always set. */
const SETTABLE = [
  ['sandboxId', 'sandbox_id', 'bigint'],
  ['kind', 'kind', 'text'],
  ['status', 'status', 'text'],
  ['progressDone', 'progress_done', 'bigint'],
  ['progressTotal', 'progress_total', 'bigint'],
  ['input', 'input', 'jsonb'],
  ['result', 'result', 'jsonb'],
  ['error', 'error', 'text'],
  ['trigger', '"trigger"', 'text'],
  ['scheduleId', 'schedule_id', 'bigint'],
  ['afterJobId', 'after_job_id', 'bigint'],
  ['attempts', 'attempts', 'bigint'],
  ['leaseOwner', 'lease_owner', 'text'],
  ['leaseUntil', 'lease_until', 'bigint'],
  ['createdAt', 'created_at', 'bigint'],
  ['startedAt', 'started_at', 'bigint'],
  ['finishedAt', 'finished_at', 'bigint'],
] as const satisfies readonly (readonly [keyof Omit<JobRow, 'id' | 'updatedAt'>, string, string])[];

/**
 * One text for every update: each settable column takes two parameters, 1 and its new value to
 * set it, 0 and anything to keep it; then `updated_at` and the id.
 */
const SET = SETTABLE.map(([, c]) => `${c} = CASE WHEN ? = 1 THEN ? ELSE ${c} END`).join(',\n  ');
const SET_PG = SETTABLE.map(
  ([, c, type], i) =>
    `${c} = CASE WHEN CAST($${2 * i + 1} AS integer) = 1 THEN CAST($${2 * i + 2} AS ${type}) ELSE ${c} END`,
).join(',\n  ');
const N = 2 * SETTABLE.length;

/** The parameters of SET for `set` (JSON columns as their text, as Drizzle wrote them). */
function setParams(set: Partial<Omit<JobRow, 'id'>>): unknown[] {
  const out: unknown[] = [];
  for (const [key] of SETTABLE) {
    const value = set[key];
    if (value === undefined) out.push(0, null);
    else out.push(1, (key === 'input' || key === 'result') && value !== null ? JSON.stringify(value) : value);
  }
  return out;
}

/** Filters of a list, each off when its parameter is null: kinds and statuses as JSON arrays, the schedule. */
const FILTER = `sandbox_id = ? AND (? IS NULL OR kind IN (SELECT value FROM json_each(?)))
  AND (? IS NULL OR status IN (SELECT value FROM json_each(?))) AND (? IS NULL OR schedule_id = ?)`;
const FILTER_PG = `sandbox_id = $1
  AND (CAST($2 AS jsonb) IS NULL OR kind IN (SELECT jsonb_array_elements_text(CAST($3 AS jsonb))))
  AND (CAST($4 AS jsonb) IS NULL OR status IN (SELECT jsonb_array_elements_text(CAST($5 AS jsonb))))
  AND (CAST($6 AS bigint) IS NULL OR schedule_id = CAST($7 AS bigint))`;
/** A page's bounds after the filters: ids below the first, above the second (paging.ts integerBounds). */
const PAGE = `${FILTER} AND id < ? AND id > ?`;
const PAGE_PG = `${FILTER_PG} AND id < $8 AND id > $9`;

const q = statements('jobs', {
  insert: {
    sqlite: `INSERT INTO jobs (sandbox_id, kind, status, input, "trigger", schedule_id, after_job_id, created_at, updated_at)
      VALUES (?, ?, 'QUEUED', ?, ?, ?, ?, ?, ?) RETURNING ${COLUMNS}`,
    postgres: `INSERT INTO jobs (sandbox_id, kind, status, input, "trigger", schedule_id, after_job_id, created_at, updated_at)
      VALUES ($1, $2, 'QUEUED', CAST($3 AS jsonb), $4, $5, $6, $7, $8) RETURNING ${COLUMNS_PG}`,
  },
  byId: {
    sqlite: `SELECT ${COLUMNS} FROM jobs WHERE id = ?`,
    postgres: `SELECT ${COLUMNS_PG} FROM jobs WHERE id = $1`,
  },
  /**
   * The sandbox's jobs among the ids of the JSON array, by id. `+sandbox_id` and `ORDER BY id`:
   * see audiences' byIds (src/domain/audiences.ts).
   */
  byIds: {
    sqlite: `SELECT ${COLUMNS} FROM jobs WHERE +sandbox_id = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id`,
    postgres: `SELECT ${COLUMNS_PG} FROM jobs
      WHERE sandbox_id = $1 AND id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))
      ORDER BY id`,
  },
  /** A page newest first (forward). */
  pageDown: {
    sqlite: `SELECT ${COLUMNS} FROM jobs WHERE ${PAGE} ORDER BY id DESC LIMIT ?`,
    postgres: `SELECT ${COLUMNS_PG} FROM jobs WHERE ${PAGE_PG} ORDER BY id DESC LIMIT $10`,
  },
  /** A page oldest first (backward). */
  pageUp: {
    sqlite: `SELECT ${COLUMNS} FROM jobs WHERE ${PAGE} ORDER BY id LIMIT ?`,
    postgres: `SELECT ${COLUMNS_PG} FROM jobs WHERE ${PAGE_PG} ORDER BY id LIMIT $10`,
  },
  count: {
    sqlite: `SELECT count(*) AS n FROM jobs WHERE ${FILTER}`,
    postgres: `SELECT count(*) AS n FROM jobs WHERE ${FILTER_PG}`,
  },
  update: {
    sqlite: `UPDATE jobs SET ${SET}, updated_at = ? WHERE id = ? RETURNING ${COLUMNS}`,
    postgres: `UPDATE jobs SET ${SET_PG}, updated_at = $${N + 1} WHERE id = $${N + 2} RETURNING ${COLUMNS_PG}`,
  },
  /** As update, while the job's status is among the JSON array's. */
  updateIn: {
    sqlite: `UPDATE jobs SET ${SET}, updated_at = ?
      WHERE id = ? AND status IN (SELECT value FROM json_each(?)) RETURNING ${COLUMNS}`,
    postgres: `UPDATE jobs SET ${SET_PG}, updated_at = $${N + 1}
      WHERE id = $${N + 2} AND status IN (SELECT jsonb_array_elements_text(CAST($${N + 3} AS jsonb))) RETURNING ${COLUMNS_PG}`,
  },
});

/** The job as its kind's type, once its kind has been checked. */
export function asKind<K extends TypedJobKind>(job: Job, kind: K): JobOf<K> {
  if (job.kind !== kind) throw new Error(`job ${job.id} is a ${job.kind} job, not ${kind}`);
  return job as JobOf<K>;
}

export interface NewJobOptions {
  trigger?: JobTrigger;
  scheduleId?: number | null;
  /** A job this one waits for: it is claimed once that job has ended, and fails unless it succeeded. */
  afterJobId?: number | null;
  now?: number;
}

/** Inserts a QUEUED job. Domain code creates jobs through the runner's `enqueue`, which also wakes it. */
export async function insertJob<K extends TypedJobKind>(
  conn: Store,
  sandboxId: number,
  kind: K,
  input: InputOf<K>,
  options: NewJobOptions = {},
): Promise<JobOf<K>> {
  const now = options.now ?? Date.now();
  const row = await conn.get<StoredJobRow>(q.insert, [
    sandboxId,
    kind,
    JSON.stringify(input),
    options.trigger ?? 'MANUAL',
    options.scheduleId ?? null,
    options.afterJobId ?? null,
    now,
    now,
  ]);
  return toJob<K>(row!);
}

export async function jobById(conn: Store, id: number): Promise<Job | undefined> {
  const row = await conn.get<StoredJobRow>(q.byId, [id]);
  return row ? toJob(row) : undefined;
}

export async function jobsByIds<K extends TypedJobKind = TypedJobKind>(
  conn: Store,
  sandboxId: number,
  ids: readonly number[],
  kind?: K,
): Promise<Map<number, JobOf<K>>> {
  const out = new Map<number, JobOf<K>>();
  if (ids.length === 0) return out;
  for (const row of await conn.all<StoredJobRow>(q.byIds, [sandboxId, JSON.stringify(ids)]))
    if (!kind || row.kind === kind) out.set(row.id, toJob<K>(row));
  return out;
}

export async function requireJob<K extends TypedJobKind>(
  conn: Store,
  sandboxId: number,
  id: number,
  kind: K,
  typeName: string,
): Promise<JobOf<K>> {
  const job = (await jobsByIds(conn, sandboxId, [id], kind)).get(id);
  if (!job) {
    const gid = encodeGlobalId(typeName, id);
    throw notFound(`No ${typeName} with id "${gid}" in this sandbox`, gid);
  }
  return job;
}

/** Jobs of a kind, newest first, optionally by status or schedule. */
export async function listJobs<K extends TypedJobKind = TypedJobKind>(
  conn: Store,
  sandboxId: number,
  filter: { kinds?: readonly K[]; statuses?: readonly JobStatus[] | null; scheduleId?: number | null },
  args: PageArgs,
): Promise<Page<JobOf<K>> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const list = (values: readonly string[] | null | undefined) => (values?.length ? JSON.stringify(values) : null);
  const kinds = list(filter.kinds);
  const statuses = list(filter.statuses);
  const scheduleId = filter.scheduleId ?? null;
  const base = [sandboxId, kinds, kinds, statuses, statuses, scheduleId, scheduleId];
  const { above, below } = integerBounds(query);
  const rows = await conn.all<StoredJobRow>(query.direction === 'forward' ? q.pageDown : q.pageUp, [
    ...base,
    below,
    above,
    query.fetch,
  ]);
  const page = toPage(rows, query, (r) => [r.id]);
  return {
    ...page,
    items: page.items.map((row) => toJob<K>(row)),
    totalCount: async () => Number((await conn.get<{ n: number }>(q.count, base))!.n),
  };
}

export async function updateJob(conn: Store, id: number, set: Partial<Omit<JobRow, 'id'>>): Promise<Job> {
  const row = await conn.get<StoredJobRow>(q.update, [...setParams(set), Date.now(), id]);
  // As before: no job of that id answers undefined.
  return (row ? toJob(row) : undefined) as Job;
}

/** Updates a job only while it is in one of `statuses` (so a late progress report cannot touch a finished job). */
export async function updateJobIn(
  conn: Store,
  id: number,
  statuses: readonly JobStatus[],
  set: Partial<Omit<JobRow, 'id'>>,
): Promise<Job | undefined> {
  const row = await conn.get<StoredJobRow>(q.updateIn, [...setParams(set), Date.now(), id, JSON.stringify(statuses)]);
  return row ? toJob(row) : undefined;
}

/**
 * The end of a task's synchronous run, on its own connection inside its final transaction
 * (task.ts): the job's status now, and marking it SUCCEEDED with its result only while it is
 * still PROCESSING (false: a cancel got there first).
 */
export function jobStatusSync(conn: Connection, id: number): JobStatus | undefined {
  return (preparedOn(conn.sqlite, q.byId).get(id) as StoredJobRow | undefined)?.status;
}

export function finishJobSync(conn: Connection, id: number, result: unknown, units: number, now: number): boolean {
  const set = { status: 'SUCCEEDED', result, finishedAt: now, progressDone: units, progressTotal: units } as const;
  const row = preparedOn(conn.sqlite, q.updateIn).get(
    ...setParams(set as Partial<Omit<JobRow, 'id'>>),
    now,
    id,
    JSON.stringify(['PROCESSING']),
  );
  return row !== undefined;
}
