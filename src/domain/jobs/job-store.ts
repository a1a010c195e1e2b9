import { and, desc, eq, inArray, lt, type SQL, sql } from 'drizzle-orm';
import type { Connection } from '../../db/index.js';
import { rowsByIds } from '../../db/rows-by-ids.js';
import { jobs } from '../../db/schema.js';
import { notFound } from '../errors.js';
import { encodeGlobalId } from '../ids.js';
import { countRows, type Page, type PageArgs, pageQuery, toPage } from '../paging.js';

export const JOB_KINDS = ['SEGMENT', 'EXPORT', 'PREVIEW', 'INGESTION'] as const;
export type JobKind = (typeof JOB_KINDS)[number];
export const JOB_STATUSES = ['QUEUED', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'CANCELLING', 'CANCELLED'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const JOB_TRIGGERS = ['MANUAL', 'SCHEDULE'] as const;
export type JobTrigger = (typeof JOB_TRIGGERS)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];
export const isTerminal = (status: JobStatus) => TERMINAL_STATUSES.includes(status);

/** A persisted job of any kind; `input` and `result` are the kind's own JSON. */
export interface Job {
  id: number;
  sandboxId: number;
  kind: JobKind;
  status: JobStatus;
  progressDone: number;
  progressTotal: number | null;
  input: Record<string, unknown>;
  result: Record<string, unknown> | null;
  error: string | null;
  trigger: JobTrigger;
  scheduleId: number | null;
  attempts: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  updatedAt: number;
}

type JobRow = typeof jobs.$inferSelect;

export function toJob(row: JobRow): Job {
  return {
    ...row,
    kind: row.kind as JobKind,
    status: row.status as JobStatus,
    trigger: row.trigger as Job['trigger'],
    input: JSON.parse(row.input) as Record<string, unknown>,
    result: row.result == null ? null : (JSON.parse(row.result) as Record<string, unknown>),
  };
}

export function insertJob(
  conn: Connection,
  sandboxId: number,
  kind: JobKind,
  input: Record<string, unknown>,
  options: { trigger?: Job['trigger']; scheduleId?: number | null; now?: number } = {},
): Job {
  const now = options.now ?? Date.now();
  const row = conn.db
    .insert(jobs)
    .values({
      sandboxId,
      kind,
      status: 'QUEUED',
      input: JSON.stringify(input),
      trigger: options.trigger ?? 'MANUAL',
      scheduleId: options.scheduleId ?? null,
      createdAt: now,
      updatedAt: now,
    })
    .returning()
    .get();
  return toJob(row);
}

export function jobById(conn: Connection, id: number): Job | undefined {
  const row = conn.db.select().from(jobs).where(eq(jobs.id, id)).get();
  return row ? toJob(row) : undefined;
}

export function jobsByIds(
  conn: Connection,
  sandboxId: number,
  ids: readonly number[],
  kind?: JobKind,
): Map<number, Job> {
  const out = new Map<number, Job>();
  for (const row of rowsByIds(conn, jobs, sandboxId, ids)) if (!kind || row.kind === kind) out.set(row.id, toJob(row));
  return out;
}

export function requireJob(conn: Connection, sandboxId: number, id: number, kind: JobKind, typeName: string): Job {
  const job = jobsByIds(conn, sandboxId, [id], kind).get(id);
  if (!job) {
    const gid = encodeGlobalId(typeName, id);
    throw notFound(`No ${typeName} with id "${gid}" in this sandbox`, gid);
  }
  return job;
}

/** Jobs of a kind, newest first, optionally by status or schedule. */
export function listJobs(
  conn: Connection,
  sandboxId: number,
  filter: { kinds?: readonly JobKind[]; statuses?: readonly JobStatus[] | null; scheduleId?: number | null },
  args: PageArgs,
): Page<Job> & { totalCount: () => number } {
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
    items: page.items.map(toJob),
    totalCount: () => countRows(conn, jobs, and(...base)),
  };
}

export function updateJob(conn: Connection, id: number, set: Partial<Omit<JobRow, 'id'>>): Job {
  const row = conn.db
    .update(jobs)
    .set({ ...set, updatedAt: Date.now() })
    .where(eq(jobs.id, id))
    .returning()
    .get();
  return toJob(row);
}

/** Updates a job only while it is in one of `statuses` (so a late progress report cannot touch a finished job). */
export function updateJobIn(
  conn: Connection,
  id: number,
  statuses: readonly JobStatus[],
  set: Partial<Omit<JobRow, 'id'>>,
): Job | undefined {
  const row = conn.db
    .update(jobs)
    .set({ ...set, updatedAt: Date.now() })
    .where(and(eq(jobs.id, id), inArray(jobs.status, [...statuses])))
    .returning()
    .get();
  return row ? toJob(row) : undefined;
}
