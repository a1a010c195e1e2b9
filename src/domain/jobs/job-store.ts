import { and, desc, eq, inArray, lt, type SQL, sql } from 'drizzle-orm';
import type { Connection } from '../../db/index.js';
import { rowsByIds } from '../../db/rows-by-ids.js';
import { jobs } from '../../db/schema.js';
import { notFound } from '../errors.js';
import { encodeGlobalId } from '../ids.js';
import { countRows, type Page, type PageArgs, pageQuery, toPage } from '../paging.js';
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

/** The one place a row becomes a typed job: the row's kind says which input and result its JSON holds. */
function toJob<K extends TypedJobKind = TypedJobKind>(row: JobRow): JobOf<K> {
  return row as JobOf<K>;
}

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
  conn: Connection,
  sandboxId: number,
  kind: K,
  input: InputOf<K>,
  options: NewJobOptions = {},
): Promise<JobOf<K>> {
  const now = options.now ?? Date.now();
  const row = conn.db
    .insert(jobs)
    .values({
      sandboxId,
      kind,
      status: 'QUEUED',
      input,
      trigger: options.trigger ?? 'MANUAL',
      scheduleId: options.scheduleId ?? null,
      afterJobId: options.afterJobId ?? null,
      createdAt: now,
      updatedAt: now,
    })
    .returning()
    .get();
  return toJob<K>(row);
}

export async function jobById(conn: Connection, id: number): Promise<Job | undefined> {
  const row = conn.db.select().from(jobs).where(eq(jobs.id, id)).get();
  return row ? toJob(row) : undefined;
}

export async function jobsByIds<K extends TypedJobKind = TypedJobKind>(
  conn: Connection,
  sandboxId: number,
  ids: readonly number[],
  kind?: K,
): Promise<Map<number, JobOf<K>>> {
  const out = new Map<number, JobOf<K>>();
  for (const row of rowsByIds(conn, jobs, sandboxId, ids))
    if (!kind || row.kind === kind) out.set(row.id, toJob<K>(row));
  return out;
}

export async function requireJob<K extends TypedJobKind>(
  conn: Connection,
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
  conn: Connection,
  sandboxId: number,
  filter: { kinds?: readonly K[]; statuses?: readonly JobStatus[] | null; scheduleId?: number | null },
  args: PageArgs,
): Promise<Page<JobOf<K>> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const conditions: SQL[] = [eq(jobs.sandboxId, sandboxId)];
  if (filter.kinds?.length) conditions.push(inArray(jobs.kind, [...filter.kinds]));
  if (filter.statuses?.length) conditions.push(inArray(jobs.status, [...filter.statuses]));
  if (filter.scheduleId != null) conditions.push(eq(jobs.scheduleId, filter.scheduleId));
  const base = [...conditions];
  if (query.after) conditions.push(lt(jobs.id, Number(query.after[0])));
  if (query.before) conditions.push(sql`${jobs.id} > ${Number(query.before[0])}`);
  const rows = conn.db
    .select()
    .from(jobs)
    .where(and(...conditions))
    .orderBy(query.direction === 'forward' ? desc(jobs.id) : jobs.id)
    .limit(query.fetch)
    .all();
  const page = toPage(rows, query, (r) => [r.id]);
  return {
    ...page,
    items: page.items.map((row) => toJob<K>(row)),
    totalCount: () => countRows(conn, jobs, and(...base)),
  };
}

export async function updateJob(conn: Connection, id: number, set: Partial<Omit<JobRow, 'id'>>): Promise<Job> {
  const row = conn.db
    .update(jobs)
    .set({ ...set, updatedAt: Date.now() })
    .where(eq(jobs.id, id))
    .returning()
    .get();
  return toJob(row);
}

/** Updates a job only while it is in one of `statuses` (so a late progress report cannot touch a finished job). */
export async function updateJobIn(
  conn: Connection,
  id: number,
  statuses: readonly JobStatus[],
  set: Partial<Omit<JobRow, 'id'>>,
): Promise<Job | undefined> {
  const row = conn.db
    .update(jobs)
    .set({ ...set, updatedAt: Date.now() })
    .where(and(eq(jobs.id, id), inArray(jobs.status, [...statuses])))
    .returning()
    .get();
  return row ? toJob(row) : undefined;
}
