/**
 * Drizzle table definitions. drizzle-kit reads this file, so it imports nothing from the app
 * but the job vocabulary, a file without imports of its own.
 * Layout follows docs/storage.md: integer ms UTC times, JSONB documents (written with
 * `jsonb(?)`, read with `json(...)`), a `sandbox_id` on every tenant table.
 */

import { blob, index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import {
  JOB_KINDS,
  JOB_STATUSES,
  JOB_TRIGGERS,
  RANGE_STATUSES,
  SCHEDULE_STATES,
  SCHEDULE_TYPES,
  TICK_OUTCOMES,
} from './vocabulary.js';

export const sandboxes = sqliteTable('sandboxes', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  createdAt: integer('created_at').notNull(),
  /**
   * How many profiles the sandbox has, kept by triggers on `profiles` (drizzle/0005): samplers and
   * jobs need the population at once, and count(*) reads the whole (sandbox_id, id) index.
   */
  profileCount: integer('profile_count').notNull().default(0),
});

export const profiles = sqliteTable(
  'profiles',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    sandboxId: integer('sandbox_id')
      .notNull()
      .references(() => sandboxes.id),
    /** JSONB attribute document. */
    attributes: blob('attributes').notNull(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [
    uniqueIndex('profiles_sandbox_id').on(t.sandboxId, t.id),
    index('profiles_sandbox_updated').on(t.sandboxId, t.updatedAt),
  ],
);

/** WITHOUT ROWID (drizzle/0007, which drizzle-kit cannot express): clustered on (sandbox_id, namespace, value). */
export const identities = sqliteTable(
  'identities',
  {
    sandboxId: integer('sandbox_id').notNull(),
    namespace: text('namespace').notNull(),
    value: text('value').notNull(),
    profileId: integer('profile_id').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.sandboxId, t.namespace, t.value] }),
    // Covers the namespace too: counting qualifying profiles per namespace never reads the table.
    index('identities_profile_namespace').on(t.profileId, t.namespace),
  ],
);

export const events = sqliteTable(
  'events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    sandboxId: integer('sandbox_id').notNull(),
    profileId: integer('profile_id').notNull(),
    /** Event time, epoch ms UTC. */
    ts: integer('ts').notNull(),
    eventType: text('event_type').notNull(),
    /** The client's event id: one row per (sandbox, eventId), so retries are idempotent. */
    eventId: text('event_id').notNull(),
    /** JSONB payload: the event document without timestamp and eventType. */
    payload: blob('payload').notNull(),
    ingestedAt: integer('ingested_at').notNull(),
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

/** The field catalogue: one row per typed path of the profile or event document. */
export const schemaFields = sqliteTable(
  'schema_fields',
  {
    sandboxId: integer('sandbox_id').notNull(),
    /** `profile` or `event`. */
    class: text('class').notNull(),
    path: text('path').notNull(),
    /** `string`, `number`, `boolean`, `datetime`, `object`, `array<T>`, `map<T>`. */
    type: text('type').notNull(),
    description: text('description'),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.sandboxId, t.class, t.path] })],
);

/**
 * WITHOUT ROWID (drizzle/0007, which drizzle-kit cannot express): clustered on (audience_id,
 * profile_id). An audience's members by status are read off that key, its rows in profile order
 * (as on PostgreSQL): an index on (audience_id, status) moved two of its pages for every status
 * change, a fifth of the pages a streaming commit writes (docs/storage.md).
 */
export const memberships = sqliteTable(
  'memberships',
  {
    sandboxId: integer('sandbox_id').notNull(),
    audienceId: integer('audience_id').notNull(),
    profileId: integer('profile_id').notNull(),
    /** REALIZED, EXISTING or EXITED. */
    status: text('status').notNull(),
    qualifiedAt: integer('qualified_at'),
    lastEvaluatedAt: integer('last_evaluated_at').notNull(),
    exitedAt: integer('exited_at'),
    /** JSON object: for an external audience, the other fields of the member's row in the list. */
    payload: text('payload'),
  },
  (t) => [primaryKey({ columns: [t.audienceId, t.profileId] }), index('memberships_profile').on(t.profileId)],
);

export const membershipHistory = sqliteTable(
  'membership_history',
  {
    id: integer('id').primaryKey(),
    sandboxId: integer('sandbox_id').notNull(),
    profileId: integer('profile_id').notNull(),
    audienceId: integer('audience_id').notNull(),
    at: integer('at').notNull(),
    fromStatus: text('from_status'),
    toStatus: text('to_status').notNull(),
    /** What caused it: `job:<id>`, `streaming`, `manual`, `expiry`. */
    cause: text('cause').notNull(),
    /** The version of the audience's definition that decided it (null: manual audiences, older rows). */
    definitionVersion: integer('definition_version'),
  },
  (t) => [index('membership_history_profile_at').on(t.profileId, t.at)],
);

/** Every job kind (segment, export, preview, ingestion) on the one runner (docs/domain.md "Jobs"). */
export const jobs = sqliteTable(
  'jobs',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    sandboxId: integer('sandbox_id').notNull(),
    kind: text('kind', { enum: JOB_KINDS }).notNull(),
    status: text('status', { enum: JOB_STATUSES }).notNull(),
    progressDone: integer('progress_done').notNull().default(0),
    progressTotal: integer('progress_total'),
    /** JSON: what the job was asked to do (the kind's input). */
    input: text('input', { mode: 'json' }).$type<object>().notNull(),
    /** JSON: the kind's result; a running estimate while it runs, or metrics once it has ended. */
    result: text('result', { mode: 'json' }).$type<object>(),
    error: text('error'),
    trigger: text('trigger', { enum: JOB_TRIGGERS }).notNull().default('MANUAL'),
    scheduleId: integer('schedule_id'),
    /**
     * A job queued to run first, for this one (an export's segment job): this job is claimed
     * only once that job has ended, and fails unless it succeeded.
     */
    afterJobId: integer('after_job_id'),
    attempts: integer('attempts').notNull().default(0),
    /**
     * The node holding a PROCESSING job and until when (epoch ms): a node that stops renewing
     * loses the job to another (docs/scale-out.md). One process on SQLite holds every job it runs.
     */
    leaseOwner: text('lease_owner'),
    leaseUntil: integer('lease_until'),
    createdAt: integer('created_at').notNull(),
    startedAt: integer('started_at'),
    finishedAt: integer('finished_at'),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [
    index('jobs_sandbox_kind').on(t.sandboxId, t.kind, t.id),
    index('jobs_status').on(t.status, t.id),
    index('jobs_schedule').on(t.scheduleId, t.id),
  ],
);

/**
 * A segment job split by profile id: each range is claimed and evaluated on its own (by any
 * node, under a lease), its verdicts staged in job_range_results until one final transaction
 * turns all of them into memberships (docs/scale-out.md "One job on several nodes").
 */
export const jobRanges = sqliteTable(
  'job_ranges',
  {
    jobId: integer('job_id').notNull(),
    rangeNo: integer('range_no').notNull(),
    sandboxId: integer('sandbox_id').notNull(),
    /** Profile ids lo..hi, both included. */
    lo: integer('lo').notNull(),
    hi: integer('hi').notNull(),
    status: text('status', { enum: RANGE_STATUSES }).notNull(),
    leaseOwner: text('lease_owner'),
    leaseUntil: integer('lease_until'),
    attempts: integer('attempts').notNull().default(0),
    /** Profiles evaluated, once DONE. */
    profiles: integer('profiles'),
    /** JSON: the definitions that could not be evaluated in this range, once DONE. */
    failed: text('failed', { mode: 'json' }).$type<{ definitionId: number; reason: string }[]>(),
    /** How long evaluating it took, once DONE (the job's profileSegmentationTimeMs adds them up). */
    evaluationMs: integer('evaluation_ms'),
    progressDone: integer('progress_done').notNull().default(0),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.rangeNo] }), index('job_ranges_status').on(t.status, t.jobId)],
);

/**
 * The profiles each range found qualifying, per audience, until the job's final write: one row
 * per range and audience holding the sorted profile ids (PostgreSQL keeps them as an array; only
 * PostgreSQL runs ranged jobs, the table is here for the schemas to match).
 */
export const jobRangeResults = sqliteTable(
  'job_range_results',
  {
    jobId: integer('job_id').notNull(),
    rangeNo: integer('range_no').notNull(),
    audienceId: integer('audience_id').notNull(),
    sandboxId: integer('sandbox_id').notNull(),
    profileIds: blob('profile_ids', { mode: 'buffer' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.rangeNo, t.audienceId] })],
);

/** A cron-driven job: a segmentation or an export, run at each due time of its cron in its time zone. */
export const schedules = sqliteTable(
  'schedules',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    sandboxId: integer('sandbox_id').notNull(),
    name: text('name').notNull(),
    /** lower-cased name: unique per sandbox, case-insensitively. */
    nameKey: text('name_key').notNull(),
    type: text('type', { enum: SCHEDULE_TYPES }).notNull(),
    /** JSON: the type's properties as the client gave them. */
    properties: text('properties', { mode: 'json' }).$type<unknown>().notNull(),
    cron: text('cron').notNull(),
    timezone: text('timezone').notNull(),
    state: text('state', { enum: SCHEDULE_STATES }).notNull(),
    /** The next due time not yet accounted for; null while INACTIVE or when the cron has no further time. */
    nextRunAt: integer('next_run_at'),
    /** When a run of it last started (by the cron or runSchedule). */
    lastRunAt: integer('last_run_at'),
    version: integer('version').notNull().default(1),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [
    uniqueIndex('schedules_sandbox_name').on(t.sandboxId, t.nameKey),
    index('schedules_sandbox_id').on(t.sandboxId, t.id),
  ],
);

/**
 * Every due time of a schedule with what became of it. A run of MISSED due times too long to
 * list one by one is one row covering `due_at`..`last_due_at` with its `count`.
 */
export const scheduleTicks = sqliteTable(
  'schedule_ticks',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    sandboxId: integer('sandbox_id').notNull(),
    scheduleId: integer('schedule_id').notNull(),
    dueAt: integer('due_at').notNull(),
    lastDueAt: integer('last_due_at'),
    count: integer('count').notNull().default(1),
    outcome: text('outcome', { enum: TICK_OUTCOMES }).notNull(),
    /** The run it started (STARTED), or the run still active (SKIPPED_OVERLAP). */
    jobId: integer('job_id'),
    reason: text('reason'),
    recordedAt: integer('recorded_at').notNull(),
  },
  (t) => [index('schedule_ticks_schedule').on(t.scheduleId, t.id)],
);

/** The audiences a schedule names (directly, or through the definitions it names): deleting one is a CONFLICT. */
export const scheduleAudiences = sqliteTable(
  'schedule_audiences',
  {
    scheduleId: integer('schedule_id').notNull(),
    audienceId: integer('audience_id').notNull(),
    sandboxId: integer('sandbox_id').notNull(),
  },
  (t) => [primaryKey({ columns: [t.scheduleId, t.audienceId] }), index('schedule_audiences_audience').on(t.audienceId)],
);

export const folders = sqliteTable(
  'folders',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    sandboxId: integer('sandbox_id').notNull(),
    name: text('name').notNull(),
    parentId: integer('parent_id'),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [index('folders_sandbox_parent').on(t.sandboxId, t.parentId)],
);

export const audiences = sqliteTable(
  'audiences',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    sandboxId: integer('sandbox_id').notNull(),
    name: text('name').notNull(),
    /** lower-cased name: uniqueness per (sandbox, namespace) is case-insensitive. */
    nameKey: text('name_key').notNull(),
    namespace: text('namespace').notNull(),
    description: text('description'),
    /** SEGMENTATION_SERVICE, CUSTOM_UPLOAD or MANUAL. */
    origin: text('origin').notNull(),
    /** DRAFT, PUBLISHED, INACTIVE or ARCHIVED. */
    lifecycleState: text('lifecycle_state').notNull(),
    /** JSON array of strings. */
    labels: text('labels').notNull().default('[]'),
    folderId: integer('folder_id'),
    definitionId: integer('definition_id'),
    /** Members now REALIZED or EXISTING, kept in step with every membership write. */
    size: integer('size').notNull().default(0),
    version: integer('version').notNull().default(1),
    lastEvaluatedAt: integer('last_evaluated_at'),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
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

export const segmentDefinitions = sqliteTable(
  'segment_definitions',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    sandboxId: integer('sandbox_id').notNull(),
    audienceId: integer('audience_id').notNull(),
    name: text('name').notNull(),
    nameKey: text('name_key').notNull(),
    description: text('description'),
    /** PQL_TEXT or PQL_JSON: the form the client gave. */
    expressionFormat: text('expression_format').notNull(),
    expressionValue: text('expression_value').notNull(),
    /** Canonical text (the printer's), what the engines compile. */
    expressionText: text('expression_text').notNull(),
    evalBatch: integer('eval_batch', { mode: 'boolean' }).notNull(),
    evalStreaming: integer('eval_streaming', { mode: 'boolean' }).notNull(),
    evalEdge: integer('eval_edge', { mode: 'boolean' }).notNull(),
    eligibleStreaming: integer('eligible_streaming', { mode: 'boolean' }).notNull(),
    eligibleEdge: integer('eligible_edge', { mode: 'boolean' }).notNull(),
    /** JSON array of the checker's reasons. */
    eligibilityReasons: text('eligibility_reasons').notNull().default('[]'),
    /** JSON array: why a requested streaming or edge evaluation runs as batch instead. */
    evaluationWarnings: text('evaluation_warnings').notNull().default('[]'),
    /** JSON array of referenced schema paths. */
    referencedFields: text('referenced_fields').notNull().default('[]'),
    ttlInDays: integer('ttl_in_days'),
    version: integer('version').notNull().default(1),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [
    uniqueIndex('segment_definitions_sandbox_name').on(t.sandboxId, t.nameKey),
    index('segment_definitions_sandbox_updated').on(t.sandboxId, t.updatedAt, t.id),
    index('segment_definitions_sandbox_created').on(t.sandboxId, t.createdAt, t.id),
  ],
);

/**
 * Every expression and evaluation settings a definition has had, the current ones included: one
 * row per change, keyed by the definition's version at that change.
 */
export const definitionVersions = sqliteTable(
  'definition_versions',
  {
    sandboxId: integer('sandbox_id').notNull(),
    definitionId: integer('definition_id').notNull(),
    version: integer('version').notNull(),
    expressionFormat: text('expression_format').notNull(),
    expressionValue: text('expression_value').notNull(),
    /** Canonical text: what the diff compares. */
    expressionText: text('expression_text').notNull(),
    evalBatch: integer('eval_batch', { mode: 'boolean' }).notNull(),
    evalStreaming: integer('eval_streaming', { mode: 'boolean' }).notNull(),
    evalEdge: integer('eval_edge', { mode: 'boolean' }).notNull(),
    changedAt: integer('changed_at').notNull(),
    /** The API key's name, or `open` when the server runs without keys. */
    changedBy: text('changed_by').notNull(),
  },
  (t) => [primaryKey({ columns: [t.definitionId, t.version] })],
);

/** An audience's size after each segment job that evaluated it, written with the job's results. */
export const audienceSizeHistory = sqliteTable(
  'audience_size_history',
  {
    id: integer('id').primaryKey(),
    sandboxId: integer('sandbox_id').notNull(),
    audienceId: integer('audience_id').notNull(),
    jobId: integer('job_id').notNull(),
    at: integer('at').notNull(),
    before: integer('before').notNull(),
    size: integer('size').notNull(),
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
export const segmentJobDefinitions = sqliteTable(
  'segment_job_definitions',
  {
    definitionId: integer('definition_id').notNull(),
    jobId: integer('job_id').notNull(),
  },
  (t) => [primaryKey({ columns: [t.definitionId, t.jobId] })],
);

/** Which audiences a definition names through inSegment (for dependency order, cycles and delete checks). */
export const definitionDependencies = sqliteTable(
  'definition_dependencies',
  {
    sandboxId: integer('sandbox_id').notNull(),
    definitionId: integer('definition_id').notNull(),
    audienceId: integer('audience_id').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.definitionId, t.audienceId] }),
    index('definition_dependencies_audience').on(t.audienceId),
  ],
);

/**
 * Qualifying profiles of a preview's sample: one row per preview holding the sorted profile ids
 * packed as little-endian float64s (a whole-store preview can have hundreds of thousands; one
 * blob writes in a millisecond and pages by binary search). Deleted with the preview.
 */
export const previewResults = sqliteTable('preview_results', {
  jobId: integer('job_id').primaryKey(),
  sandboxId: integer('sandbox_id').notNull(),
  profileIds: blob('profile_ids', { mode: 'buffer' }).notNull(),
  count: integer('count').notNull(),
});

/**
 * API keys (docs/api.md "Auth"): only a SHA-256 of the key is kept (keys are 32 random bytes, so a
 * fast hash is enough); `prefix` is the key's first characters, to tell keys apart in lists.
 */
export const apiKeys = sqliteTable('api_keys', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull(),
  prefix: text('prefix').notNull(),
  keyHash: text('key_hash').notNull().unique(),
  /** JSON array of `read`, `write`, `admin`. */
  scopes: text('scopes').notNull(),
  createdAt: integer('created_at').notNull(),
  revokedAt: integer('revoked_at'),
});

/** The sandboxes a key may act in. */
export const apiKeySandboxes = sqliteTable(
  'api_key_sandboxes',
  {
    keyId: integer('key_id').notNull(),
    sandboxId: integer('sandbox_id').notNull(),
  },
  (t) => [primaryKey({ columns: [t.keyId, t.sandboxId] })],
);

/**
 * What the full-text index holds: one row per audience, definition and schema field, written only
 * by the triggers of drizzle/0011 in the same transaction as the row it describes. The FTS5 table
 * `search_index` (external content) indexes these columns; ids are never reused, so a changed
 * document gets a new id and readers can tell new content from old.
 */
export const searchDocuments = sqliteTable(
  'search_documents',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    sandboxId: integer('sandbox_id').notNull(),
    /** AUDIENCE, DEFINITION or FIELD. */
    kind: text('kind').notNull(),
    /** The audience or definition id, or `<class>:<path>` for a schema field (unique within the sandbox). */
    entityKey: text('entity_key').notNull(),
    name: text('name'),
    description: text('description'),
    /** The global id clients see. */
    gid: text('gid'),
    externalId: text('external_id'),
    labels: text('labels'),
    folder: text('folder'),
    namespace: text('namespace').notNull(),
    expression: text('expression'),
    path: text('path'),
    type: text('type'),
  },
  (t) => [
    uniqueIndex('search_documents_entity').on(t.sandboxId, t.kind, t.entityKey),
    index('search_documents_sandbox_namespace').on(t.sandboxId, t.namespace),
  ],
);

/** Bumped by the search triggers in every transaction that changes a sandbox's documents, so watchers see commits. */
export const searchRevisions = sqliteTable('search_revisions', {
  sandboxId: integer('sandbox_id').primaryKey(),
  revision: integer('revision').notNull().default(0),
});

/**
 * Where export jobs write: a named dataset of one format. `currentJobId` is its last successful
 * export, whose rows `Dataset.records` pages (through `dataset_record_marks`).
 */
export const datasets = sqliteTable(
  'datasets',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    sandboxId: integer('sandbox_id').notNull(),
    name: text('name').notNull(),
    /** NDJSON, CSV or PARQUET. */
    format: text('format').notNull(),
    currentJobId: integer('current_job_id'),
    /** The evaluation instant of the last successful export: where the next CHANGES export starts. */
    lastExportAt: integer('last_export_at'),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [uniqueIndex('datasets_sandbox_name').on(t.sandboxId, t.name)],
);

/** The files of a dataset (every export's, and its manifest), as written and hashed. */
export const datasetFiles = sqliteTable(
  'dataset_files',
  {
    datasetId: integer('dataset_id').notNull(),
    name: text('name').notNull(),
    jobId: integer('job_id').notNull(),
    rows: integer('rows').notNull(),
    bytes: integer('bytes').notNull(),
    sha256: text('sha256').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.datasetId, t.name] })],
);

/**
 * Where an export's rows are in its files, so `Dataset.records` reads a page straight from
 * them: every 1,000th row and the first row of every file, by row number (0-based, across
 * the export's files in order), with the file and the byte offset its line starts at. The
 * lines are the export's NDJSON files, or for CSV and Parquet exports the `records-<job>.ndjson`
 * file written beside them. Written in the transaction that finishes the export.
 */
export const datasetRecordMarks = sqliteTable(
  'dataset_record_marks',
  {
    datasetId: integer('dataset_id').notNull(),
    jobId: integer('job_id').notNull(),
    row: integer('row').notNull(),
    file: text('file').notNull(),
    offset: integer('offset').notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.row] }), index('dataset_record_marks_dataset').on(t.datasetId)],
);

/**
 * An audience filled from uploaded lists (origin CUSTOM_UPLOAD): the typed columns of its files,
 * the one that names each row's identity, how long members last after their last import, and an
 * optional id the caller chose (definitions written elsewhere name audiences by it).
 */
export const externalAudiences = sqliteTable(
  'external_audiences',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    sandboxId: integer('sandbox_id').notNull(),
    audienceId: integer('audience_id').notNull(),
    externalId: text('external_id'),
    /** JSON array of `{ name, type, identityNamespace }`. */
    fields: text('fields').notNull(),
    identityField: text('identity_field').notNull(),
    identityNamespace: text('identity_namespace').notNull(),
    ttlInDays: integer('ttl_in_days').notNull(),
    version: integer('version').notNull().default(1),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [
    uniqueIndex('external_audiences_audience').on(t.audienceId),
    uniqueIndex('external_audiences_sandbox_external_id').on(t.sandboxId, t.externalId),
  ],
);

/**
 * The rows of an external audience's list, matched to a profile or not: a row whose identity no
 * profile has yet is kept, so the profile becomes a member when that identity arrives.
 */
export const externalMembers = sqliteTable(
  'external_members',
  {
    sandboxId: integer('sandbox_id').notNull(),
    audienceId: integer('audience_id').notNull(),
    namespace: text('namespace').notNull(),
    value: text('value').notNull(),
    /** JSON object: the row's other fields. */
    payload: text('payload').notNull(),
    importedAt: integer('imported_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.audienceId, t.value] }),
    index('external_members_identity').on(t.sandboxId, t.namespace, t.value),
    index('external_members_imported').on(t.audienceId, t.importedAt),
  ],
);

/** The bad rows of an ingestion run, by line number of the uploaded file. */
export const ingestionErrors = sqliteTable(
  'ingestion_errors',
  {
    jobId: integer('job_id').notNull(),
    line: integer('line').notNull(),
    message: text('message').notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.line] })],
);
