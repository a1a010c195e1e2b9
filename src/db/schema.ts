/**
 * Drizzle table definitions. drizzle-kit reads this file, so it imports nothing from the app.
 * Layout follows spec/storage.md: integer ms UTC times, JSONB documents (written with
 * `jsonb(?)`, read with `json(...)`), a `sandbox_id` on every tenant table.
 */

import { blob, index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

export const sandboxes = sqliteTable('sandboxes', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  createdAt: integer('created_at').notNull(),
});

export const profiles = sqliteTable(
  'profiles',
  {
    id: integer('id').primaryKey(),
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

export const identities = sqliteTable(
  'identities',
  {
    sandboxId: integer('sandbox_id').notNull(),
    namespace: text('namespace').notNull(),
    value: text('value').notNull(),
    profileId: integer('profile_id').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.sandboxId, t.namespace, t.value] }), index('identities_profile').on(t.profileId)],
);

export const events = sqliteTable(
  'events',
  {
    id: integer('id').primaryKey(),
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
    index('events_profile_type_ts').on(t.profileId, t.eventType, t.ts),
    index('events_sandbox_type_ts').on(t.sandboxId, t.eventType, t.ts),
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
  },
  (t) => [
    primaryKey({ columns: [t.audienceId, t.profileId] }),
    index('memberships_profile').on(t.profileId),
    index('memberships_audience_status').on(t.audienceId, t.status),
  ],
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
  },
  (t) => [index('membership_history_profile_at').on(t.profileId, t.at)],
);

/** Every job kind (segment, export, preview, ingestion) on the one runner (domain.md "Jobs"). */
export const jobs = sqliteTable(
  'jobs',
  {
    id: integer('id').primaryKey(),
    sandboxId: integer('sandbox_id').notNull(),
    /** SEGMENT, EXPORT, PREVIEW or INGESTION. */
    kind: text('kind').notNull(),
    /** QUEUED, PROCESSING, SUCCEEDED, FAILED, CANCELLING, CANCELLED. */
    status: text('status').notNull(),
    progressDone: integer('progress_done').notNull().default(0),
    progressTotal: integer('progress_total'),
    /** JSON: what the job was asked to do. */
    input: text('input').notNull(),
    /** JSON: metrics and results summary, written when it ends. */
    result: text('result'),
    error: text('error'),
    trigger: text('trigger').notNull().default('MANUAL'),
    scheduleId: integer('schedule_id'),
    attempts: integer('attempts').notNull().default(0),
    createdAt: integer('created_at').notNull(),
    startedAt: integer('started_at'),
    finishedAt: integer('finished_at'),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [index('jobs_sandbox_kind').on(t.sandboxId, t.kind, t.id), index('jobs_status').on(t.status, t.id)],
);
