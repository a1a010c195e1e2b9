/**
 * The PostgreSQL tables: the same tables and column names as src/db/schema.ts, so one domain can
 * target either dialect (src/db/pg/schema-drift.ts compares the two, and a test fails when they
 * part). drizzle-kit reads this file for `drizzle.pg.config.ts`, so it imports nothing from the
 * app but the job and schedule vocabularies (files without imports of their own).
 *
 * What differs from SQLite, and why:
 * - every SQLite `integer` is a `bigint` read as a JS number: times are epoch milliseconds, past
 *   int4, and one integer type keeps the compiler's comparisons free of casts;
 * - ids are identity columns (never reused: a sequence does not go back after a delete, as
 *   SQLite's AUTOINCREMENT);
 * - documents (profile attributes, event and membership payloads, job input and result,
 *   schedule properties) are `jsonb`;
 * - full-text search is a generated `tsvector` column with a GIN index in place of the FTS5 table.
 */

import { sql } from 'drizzle-orm';
import { bigint, boolean, customType, index, jsonb, pgTable, primaryKey, text, uniqueIndex } from 'drizzle-orm/pg-core';
import {
  JOB_KINDS,
  JOB_STATUSES,
  JOB_TRIGGERS,
  RANGE_STATUSES,
  SCHEDULE_STATES,
  SCHEDULE_TYPES,
  TICK_OUTCOMES,
} from '../vocabulary.js';

/** Epoch milliseconds, counts and ids: int8, read as a JS number (all stay below 2^53). */
const int = (name: string) => bigint(name, { mode: 'number' });
/** An id the database assigns; explicit values are still accepted (imports, copies). */
const id = (name = 'id') => int(name).primaryKey().generatedByDefaultAsIdentity();

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });
const tsvector = customType<{ data: string }>({ dataType: () => 'tsvector' });

export const sandboxes = pgTable('sandboxes', {
  id: id(),
  name: text('name').notNull().unique(),
  createdAt: int('created_at').notNull(),
  /** Kept by the triggers of the pg migration `profile_count_triggers`, as in SQLite. */
  profileCount: int('profile_count').notNull().default(0),
});

export const profiles = pgTable(
  'profiles',
  {
    id: id(),
    sandboxId: int('sandbox_id')
      .notNull()
      .references(() => sandboxes.id),
    attributes: jsonb('attributes').notNull(),
    createdAt: int('created_at').notNull(),
    updatedAt: int('updated_at').notNull(),
  },
  (t) => [
    uniqueIndex('profiles_sandbox_id').on(t.sandboxId, t.id),
    index('profiles_sandbox_updated').on(t.sandboxId, t.updatedAt),
    // Containment and JSON-path predicates (`@>`, `@?`, `@@`) on attributes: jsonb_path_ops is
    // a third the size of the default GIN operator class and serves exactly those operators.
    index('profiles_attributes_gin').using('gin', sql`${t.attributes} jsonb_path_ops`),
  ],
);

export const identities = pgTable(
  'identities',
  {
    sandboxId: int('sandbox_id').notNull(),
    namespace: text('namespace').notNull(),
    value: text('value').notNull(),
    profileId: int('profile_id').notNull(),
    createdAt: int('created_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.sandboxId, t.namespace, t.value] }),
    index('identities_profile_namespace').on(t.profileId, t.namespace),
  ],
);

export const events = pgTable(
  'events',
  {
    id: id(),
    sandboxId: int('sandbox_id').notNull(),
    profileId: int('profile_id').notNull(),
    ts: int('ts').notNull(),
    eventType: text('event_type').notNull(),
    eventId: text('event_id').notNull(),
    payload: jsonb('payload').notNull(),
    ingestedAt: int('ingested_at').notNull(),
  },
  (t) => [
    // ingested_at last: a profile's latest ingest (Profile.updatedAt) is read off the index alone.
    index('events_profile_type_ts').on(t.profileId, t.eventType, t.ts, t.ingestedAt),
    index('events_sandbox_type_ts').on(t.sandboxId, t.eventType, t.ts),
    // Appended to in time order: which profiles gained events since an instant (updatedAfter).
    index('events_sandbox_ingested').on(t.sandboxId, t.ingestedAt, t.profileId),
    uniqueIndex('events_sandbox_event_id').on(t.sandboxId, t.eventId),
  ],
);

export const schemaFields = pgTable(
  'schema_fields',
  {
    sandboxId: int('sandbox_id').notNull(),
    class: text('class').notNull(),
    path: text('path').notNull(),
    type: text('type').notNull(),
    description: text('description'),
    createdAt: int('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.sandboxId, t.class, t.path] })],
);

export const memberships = pgTable(
  'memberships',
  {
    sandboxId: int('sandbox_id').notNull(),
    audienceId: int('audience_id').notNull(),
    profileId: int('profile_id').notNull(),
    status: text('status').notNull(),
    qualifiedAt: int('qualified_at'),
    lastEvaluatedAt: int('last_evaluated_at').notNull(),
    exitedAt: int('exited_at'),
    payload: jsonb('payload'),
  },
  (t) => [
    primaryKey({ columns: [t.audienceId, t.profileId] }),
    index('memberships_profile').on(t.profileId),
    // No (audience_id, status) index (nor on SQLite since drizzle/0025): the primary key serves
    // an audience's members; the purge of long-exited members, which it served, reads only
    // exited rows here. Its predicate names exited_at, not status (every writer sets one with
    // the other): no index then covers status, so a REALIZED member becoming EXISTING is a HOT
    // update, written beside the old version on its page (fillfactor 50, drizzle/pg/0018) with
    // no index entry to add.
    index('memberships_exited').on(t.audienceId, t.exitedAt).where(sql`${t.exitedAt} IS NOT NULL`),
  ],
);

export const membershipHistory = pgTable(
  'membership_history',
  {
    id: id(),
    sandboxId: int('sandbox_id').notNull(),
    profileId: int('profile_id').notNull(),
    audienceId: int('audience_id').notNull(),
    at: int('at').notNull(),
    fromStatus: text('from_status'),
    toStatus: text('to_status').notNull(),
    cause: text('cause').notNull(),
    definitionVersion: int('definition_version'),
  },
  (t) => [index('membership_history_profile_at').on(t.profileId, t.at)],
);

export const jobs = pgTable(
  'jobs',
  {
    id: id(),
    sandboxId: int('sandbox_id').notNull(),
    kind: text('kind', { enum: JOB_KINDS }).notNull(),
    status: text('status', { enum: JOB_STATUSES }).notNull(),
    progressDone: int('progress_done').notNull().default(0),
    progressTotal: int('progress_total'),
    input: jsonb('input').$type<object>().notNull(),
    result: jsonb('result').$type<object>(),
    error: text('error'),
    trigger: text('trigger', { enum: JOB_TRIGGERS }).notNull().default('MANUAL'),
    scheduleId: int('schedule_id'),
    /** A job that must end before this one is claimed (an export's evaluateFirst segment job). */
    afterJobId: int('after_job_id'),
    attempts: int('attempts').notNull().default(0),
    /** The node holding a PROCESSING job and until when (epoch ms); see src/domain/jobs/cluster-queue.ts. */
    leaseOwner: text('lease_owner'),
    leaseUntil: int('lease_until'),
    createdAt: int('created_at').notNull(),
    startedAt: int('started_at'),
    finishedAt: int('finished_at'),
    updatedAt: int('updated_at').notNull(),
  },
  (t) => [
    index('jobs_sandbox_kind').on(t.sandboxId, t.kind, t.id),
    index('jobs_status').on(t.status, t.id),
    index('jobs_schedule').on(t.scheduleId, t.id),
    // The queue: claiming the oldest QUEUED job reads only queued rows, however long the history.
    index('jobs_queued').on(t.id).where(sql`${t.status} = 'QUEUED'`),
    // The lookups of a kind's jobs by what they were asked (latest preview of a definition, the
    // runs of an export dataset or an external audience) read one JSON member of `input`.
    index('jobs_preview_definition')
      .on(t.sandboxId, sql`((${t.input} ->> 'definitionId')::bigint)`, t.id)
      .where(sql`${t.kind} = 'PREVIEW'`),
    index('jobs_export_dataset').on(sql`((${t.input} ->> 'datasetId')::bigint)`, t.id).where(sql`${t.kind} = 'EXPORT'`),
    index('jobs_ingestion_external_audience')
      .on(t.sandboxId, sql`((${t.input} ->> 'externalAudienceId')::bigint)`, t.id)
      .where(sql`${t.kind} = 'INGESTION'`),
  ],
);

export const jobRanges = pgTable(
  'job_ranges',
  {
    jobId: int('job_id').notNull(),
    rangeNo: int('range_no').notNull(),
    sandboxId: int('sandbox_id').notNull(),
    lo: int('lo').notNull(),
    hi: int('hi').notNull(),
    status: text('status', { enum: RANGE_STATUSES }).notNull(),
    leaseOwner: text('lease_owner'),
    leaseUntil: int('lease_until'),
    attempts: int('attempts').notNull().default(0),
    profiles: int('profiles'),
    failed: jsonb('failed').$type<{ definitionId: number; reason: string }[]>(),
    evaluationMs: int('evaluation_ms'),
    progressDone: int('progress_done').notNull().default(0),
    updatedAt: int('updated_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.jobId, t.rangeNo] }),
    index('job_ranges_status').on(t.status, t.jobId),
    // Claiming a range reads only the waiting ones, however many jobs have run.
    index('job_ranges_queued').on(t.jobId, t.rangeNo).where(sql`${t.status} = 'QUEUED'`),
  ],
);

// One row per range and audience, its verdicts as one sorted array: a row per verdict cost an
// index entry to stage and a delete to drop, 2.6 M of each for a job over 1 M profiles.
export const jobRangeResults = pgTable(
  'job_range_results',
  {
    jobId: int('job_id').notNull(),
    rangeNo: int('range_no').notNull(),
    audienceId: int('audience_id').notNull(),
    sandboxId: int('sandbox_id').notNull(),
    profileIds: int('profile_ids').array().notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.rangeNo, t.audienceId] })],
);

export const schedules = pgTable(
  'schedules',
  {
    id: id(),
    sandboxId: int('sandbox_id').notNull(),
    name: text('name').notNull(),
    nameKey: text('name_key').notNull(),
    type: text('type', { enum: SCHEDULE_TYPES }).notNull(),
    properties: jsonb('properties').$type<unknown>().notNull(),
    cron: text('cron').notNull(),
    timezone: text('timezone').notNull(),
    state: text('state', { enum: SCHEDULE_STATES }).notNull(),
    nextRunAt: int('next_run_at'),
    lastRunAt: int('last_run_at'),
    version: int('version').notNull().default(1),
    createdAt: int('created_at').notNull(),
    updatedAt: int('updated_at').notNull(),
  },
  (t) => [
    uniqueIndex('schedules_sandbox_name').on(t.sandboxId, t.nameKey),
    index('schedules_sandbox_id').on(t.sandboxId, t.id),
    // The scheduler's "what is due" scan: only schedules that have a next time.
    index('schedules_due').on(t.nextRunAt).where(sql`${t.nextRunAt} IS NOT NULL`),
  ],
);

export const scheduleTicks = pgTable(
  'schedule_ticks',
  {
    id: id(),
    sandboxId: int('sandbox_id').notNull(),
    scheduleId: int('schedule_id').notNull(),
    dueAt: int('due_at').notNull(),
    lastDueAt: int('last_due_at'),
    count: int('count').notNull().default(1),
    outcome: text('outcome', { enum: TICK_OUTCOMES }).notNull(),
    jobId: int('job_id'),
    reason: text('reason'),
    recordedAt: int('recorded_at').notNull(),
  },
  (t) => [index('schedule_ticks_schedule').on(t.scheduleId, t.id)],
);

export const scheduleAudiences = pgTable(
  'schedule_audiences',
  {
    scheduleId: int('schedule_id').notNull(),
    audienceId: int('audience_id').notNull(),
    sandboxId: int('sandbox_id').notNull(),
  },
  (t) => [primaryKey({ columns: [t.scheduleId, t.audienceId] }), index('schedule_audiences_audience').on(t.audienceId)],
);

export const folders = pgTable(
  'folders',
  {
    id: id(),
    sandboxId: int('sandbox_id').notNull(),
    name: text('name').notNull(),
    parentId: int('parent_id'),
    createdAt: int('created_at').notNull(),
  },
  (t) => [index('folders_sandbox_parent').on(t.sandboxId, t.parentId)],
);

export const audiences = pgTable(
  'audiences',
  {
    id: id(),
    sandboxId: int('sandbox_id').notNull(),
    name: text('name').notNull(),
    nameKey: text('name_key').notNull(),
    namespace: text('namespace').notNull(),
    description: text('description'),
    origin: text('origin').notNull(),
    lifecycleState: text('lifecycle_state').notNull(),
    labels: text('labels').notNull().default('[]'),
    folderId: int('folder_id'),
    definitionId: int('definition_id'),
    size: int('size').notNull().default(0),
    version: int('version').notNull().default(1),
    lastEvaluatedAt: int('last_evaluated_at'),
    createdAt: int('created_at').notNull(),
    updatedAt: int('updated_at').notNull(),
  },
  (t) => [
    uniqueIndex('audiences_sandbox_namespace_name').on(t.sandboxId, t.namespace, t.nameKey),
    index('audiences_sandbox_updated').on(t.sandboxId, t.updatedAt, t.id),
    index('audiences_sandbox_created').on(t.sandboxId, t.createdAt, t.id),
    index('audiences_sandbox_name').on(t.sandboxId, t.nameKey, t.id),
    index('audiences_sandbox_size').on(t.sandboxId, t.size, t.id),
    index('audiences_definition').on(t.definitionId),
  ],
);

export const segmentDefinitions = pgTable(
  'segment_definitions',
  {
    id: id(),
    sandboxId: int('sandbox_id').notNull(),
    audienceId: int('audience_id').notNull(),
    name: text('name').notNull(),
    nameKey: text('name_key').notNull(),
    description: text('description'),
    expressionFormat: text('expression_format').notNull(),
    expressionValue: text('expression_value').notNull(),
    expressionText: text('expression_text').notNull(),
    evalBatch: boolean('eval_batch').notNull(),
    evalStreaming: boolean('eval_streaming').notNull(),
    evalEdge: boolean('eval_edge').notNull(),
    eligibleStreaming: boolean('eligible_streaming').notNull(),
    eligibleEdge: boolean('eligible_edge').notNull(),
    eligibilityReasons: text('eligibility_reasons').notNull().default('[]'),
    evaluationWarnings: text('evaluation_warnings').notNull().default('[]'),
    referencedFields: text('referenced_fields').notNull().default('[]'),
    ttlInDays: int('ttl_in_days'),
    version: int('version').notNull().default(1),
    createdAt: int('created_at').notNull(),
    updatedAt: int('updated_at').notNull(),
  },
  (t) => [
    uniqueIndex('segment_definitions_sandbox_name').on(t.sandboxId, t.nameKey),
    index('segment_definitions_sandbox_updated').on(t.sandboxId, t.updatedAt, t.id),
    index('segment_definitions_sandbox_created').on(t.sandboxId, t.createdAt, t.id),
  ],
);

export const definitionVersions = pgTable(
  'definition_versions',
  {
    sandboxId: int('sandbox_id').notNull(),
    definitionId: int('definition_id').notNull(),
    version: int('version').notNull(),
    expressionFormat: text('expression_format').notNull(),
    expressionValue: text('expression_value').notNull(),
    expressionText: text('expression_text').notNull(),
    evalBatch: boolean('eval_batch').notNull(),
    evalStreaming: boolean('eval_streaming').notNull(),
    evalEdge: boolean('eval_edge').notNull(),
    changedAt: int('changed_at').notNull(),
    changedBy: text('changed_by').notNull(),
  },
  (t) => [primaryKey({ columns: [t.definitionId, t.version] })],
);

export const audienceSizeHistory = pgTable(
  'audience_size_history',
  {
    id: id(),
    sandboxId: int('sandbox_id').notNull(),
    audienceId: int('audience_id').notNull(),
    jobId: int('job_id').notNull(),
    at: int('at').notNull(),
    before: int('before').notNull(),
    size: int('size').notNull(),
  },
  (t) => [
    index('audience_size_history_audience').on(t.audienceId, t.id),
    index('audience_size_history_job').on(t.jobId),
  ],
);

/**
 * The segment jobs asked to evaluate each definition, one row per (definition, job): the jobs
 * that named it, and the `all: true` jobs queued while it was batch-enabled. Written only by
 * triggers on `jobs` and `segment_definitions` (drizzle/0023, drizzle/pg/0016), so every path that
 * queues a segment job fills it in the job's own transaction. A definition's latest job is then
 * one seek on the key, however many jobs the sandbox has run (latest-jobs.ts); WITHOUT ROWID on
 * SQLite, so the key is the table.
 */
export const segmentJobDefinitions = pgTable(
  'segment_job_definitions',
  {
    definitionId: int('definition_id').notNull(),
    jobId: int('job_id').notNull(),
  },
  (t) => [primaryKey({ columns: [t.definitionId, t.jobId] })],
);

export const definitionDependencies = pgTable(
  'definition_dependencies',
  {
    sandboxId: int('sandbox_id').notNull(),
    definitionId: int('definition_id').notNull(),
    audienceId: int('audience_id').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.definitionId, t.audienceId] }),
    index('definition_dependencies_audience').on(t.audienceId),
  ],
);

export const previewResults = pgTable('preview_results', {
  jobId: int('job_id').primaryKey(),
  sandboxId: int('sandbox_id').notNull(),
  profileIds: bytea('profile_ids').notNull(),
  count: int('count').notNull(),
});

export const apiKeys = pgTable('api_keys', {
  id: id(),
  name: text('name').notNull(),
  prefix: text('prefix').notNull(),
  keyHash: text('key_hash').notNull().unique(),
  scopes: text('scopes').notNull(),
  createdAt: int('created_at').notNull(),
  revokedAt: int('revoked_at'),
});

export const apiKeySandboxes = pgTable(
  'api_key_sandboxes',
  {
    keyId: int('key_id').notNull(),
    sandboxId: int('sandbox_id').notNull(),
  },
  (t) => [primaryKey({ columns: [t.keyId, t.sandboxId] })],
);

/**
 * The searchable text of a document, weighted as FTS5's bm25 weights the columns (name 10; gid,
 * external_id, path 5; description, labels 3; the rest 2 or 1), in PostgreSQL's four weights.
 * Words are cut and folded as FTS5 does (segql_search_words and the `segql_search`
 * configuration of the pg migration `search_words`).
 */
const SEARCH_WEIGHTS: [column: string, weight: 'A' | 'B' | 'C' | 'D'][] = [
  ['name', 'A'],
  ['description', 'C'],
  ['gid', 'B'],
  ['external_id', 'B'],
  ['labels', 'C'],
  ['folder', 'D'],
  ['namespace', 'D'],
  ['expression', 'D'],
  ['path', 'B'],
  ['type', 'D'],
];
const searchText = sql.raw(
  SEARCH_WEIGHTS.map(
    ([column, weight]) => `setweight(to_tsvector('segql_search', segql_search_words(${column})), '${weight}')`,
  ).join(' || '),
);

/**
 * What the full-text index holds, written by the triggers of the pg migration `search_triggers`
 * as in SQLite. `search_vector` (PostgreSQL only) replaces the FTS5 table: generated from the
 * row, so it can never disagree with it, and GIN-indexed. The `simple` configuration (no
 * stemming, no stop words) matches FTS5's unicode61 tokenizer, which does neither.
 */
export const searchDocuments = pgTable(
  'search_documents',
  {
    id: id(),
    sandboxId: int('sandbox_id').notNull(),
    kind: text('kind').notNull(),
    entityKey: text('entity_key').notNull(),
    name: text('name'),
    description: text('description'),
    gid: text('gid'),
    externalId: text('external_id'),
    labels: text('labels'),
    folder: text('folder'),
    namespace: text('namespace').notNull(),
    expression: text('expression'),
    path: text('path'),
    type: text('type'),
    searchVector: tsvector('search_vector').generatedAlwaysAs(searchText),
  },
  (t) => [
    uniqueIndex('search_documents_entity').on(t.sandboxId, t.kind, t.entityKey),
    index('search_documents_sandbox_namespace').on(t.sandboxId, t.namespace),
    index('search_documents_vector').using('gin', t.searchVector),
  ],
);

export const searchRevisions = pgTable('search_revisions', {
  sandboxId: int('sandbox_id').primaryKey(),
  revision: int('revision').notNull().default(0),
});

export const datasets = pgTable(
  'datasets',
  {
    id: id(),
    sandboxId: int('sandbox_id').notNull(),
    name: text('name').notNull(),
    format: text('format').notNull(),
    currentJobId: int('current_job_id'),
    lastExportAt: int('last_export_at'),
    createdAt: int('created_at').notNull(),
  },
  (t) => [uniqueIndex('datasets_sandbox_name').on(t.sandboxId, t.name)],
);

export const datasetFiles = pgTable(
  'dataset_files',
  {
    datasetId: int('dataset_id').notNull(),
    name: text('name').notNull(),
    jobId: int('job_id').notNull(),
    rows: int('rows').notNull(),
    bytes: int('bytes').notNull(),
    sha256: text('sha256').notNull(),
    createdAt: int('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.datasetId, t.name] })],
);

/** Where an export's rows are in its files, so `Dataset.records` reads pages from them (as in SQLite). */
export const datasetRecordMarks = pgTable(
  'dataset_record_marks',
  {
    datasetId: int('dataset_id').notNull(),
    jobId: int('job_id').notNull(),
    row: int('row').notNull(),
    file: text('file').notNull(),
    offset: int('offset').notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.row] }), index('dataset_record_marks_dataset').on(t.datasetId)],
);

export const externalAudiences = pgTable(
  'external_audiences',
  {
    id: id(),
    sandboxId: int('sandbox_id').notNull(),
    audienceId: int('audience_id').notNull(),
    externalId: text('external_id'),
    fields: text('fields').notNull(),
    identityField: text('identity_field').notNull(),
    identityNamespace: text('identity_namespace').notNull(),
    ttlInDays: int('ttl_in_days').notNull(),
    version: int('version').notNull().default(1),
    createdAt: int('created_at').notNull(),
    updatedAt: int('updated_at').notNull(),
  },
  (t) => [
    uniqueIndex('external_audiences_audience').on(t.audienceId),
    uniqueIndex('external_audiences_sandbox_external_id').on(t.sandboxId, t.externalId),
  ],
);

export const externalMembers = pgTable(
  'external_members',
  {
    sandboxId: int('sandbox_id').notNull(),
    audienceId: int('audience_id').notNull(),
    namespace: text('namespace').notNull(),
    value: text('value').notNull(),
    payload: jsonb('payload').notNull(),
    importedAt: int('imported_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.audienceId, t.value] }),
    index('external_members_identity').on(t.sandboxId, t.namespace, t.value),
    index('external_members_imported').on(t.audienceId, t.importedAt),
  ],
);

export const ingestionErrors = pgTable(
  'ingestion_errors',
  {
    jobId: int('job_id').notNull(),
    line: int('line').notNull(),
    message: text('message').notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.line] })],
);
