import { type Audience, EVALUATION_METHODS } from '../../domain/audiences.js';
import type { SegmentDefinition } from '../../domain/definitions.js';
import type { Dataset } from '../../domain/exports/datasets.js';
import type { ExportJob } from '../../domain/exports/export-job.js';
import { PQL_FORMATS } from '../../domain/expressions.js';
import type { Folder } from '../../domain/folders.js';
import { LIFECYCLE_STATES } from '../../domain/lifecycle.js';
import { MEMBERSHIP_STATUSES } from '../../domain/membership-statuses.js';
import type { Membership } from '../../domain/memberships.js';
import { ORDER_DIRECTIONS } from '../../domain/paging.js';
import type { Schedule } from '../../domain/schedules/schedule-store.js';
import { builder, type SchemaTypes } from '../builder.js';
import { enumFromDomain } from '../enums.js';

/** Refs shared by several type files (each type is implemented in the file named after it). */
export const AudienceRef = builder.objectRef<Audience>('Audience');
export const SegmentDefinitionRef = builder.objectRef<SegmentDefinition>('SegmentDefinition');
export const FolderRef = builder.objectRef<Folder>('Folder');
export const ScheduleRef = builder.objectRef<Schedule>('Schedule');
export const DatasetRef = builder.objectRef<Dataset>('Dataset');
export const ExportJobRef = builder.objectRef<ExportJob>('ExportJob');

export const LifecycleStateEnum = enumFromDomain(
  'LifecycleState',
  'Where an audience (and its definition) is in its life: DRAFT and PUBLISHED are evaluated, INACTIVE and ARCHIVED are not, and ARCHIVED is final.',
  LIFECYCLE_STATES,
  {
    DRAFT: 'Being worked on; evaluated like a published audience, not yet meant for activation.',
    PUBLISHED: 'Live: evaluated by segment jobs (and streaming, when enabled); cannot go back to DRAFT.',
    INACTIVE: 'Paused: kept with its members but not evaluated; may be published again.',
    ARCHIVED: 'Retired for good: not evaluated and no further lifecycle change.',
  },
);

export const PqlFormatEnum = enumFromDomain('PqlFormat', 'The form a PQL expression is written in.', PQL_FORMATS, {
  PQL_TEXT: 'PQL text, e.g. homeAddress.countryCode = "SE".',
  PQL_JSON: 'The pql/json tree, as a JSON string.',
});

export const EvaluationMethodEnum = enumFromDomain(
  'EvaluationMethod',
  'How a definition is evaluated into its audience.',
  EVALUATION_METHODS,
  {
    BATCH: 'By segment jobs over the whole store.',
    STREAMING: 'As ingests change a profile, in the ingest transaction.',
    EDGE: 'On demand for one profile, by evaluateProfile.',
  },
);

export const OrderDirectionEnum = enumFromDomain('OrderDirection', 'Sort direction of a list.', ORDER_DIRECTIONS, {
  ASC: 'Smallest (or earliest, or A) first.',
  DESC: 'Largest (or latest, or Z) first.',
});

export const MembershipStatusEnum = enumFromDomain(
  'MembershipStatus',
  "A profile's standing in an audience after the last evaluation.",
  MEMBERSHIP_STATUSES,
  {
    REALIZED: 'Entered the audience in the last evaluation.',
    EXISTING: 'Was a member before the last evaluation and still is.',
    EXITED: 'Was a member and no longer qualifies.',
  },
);

/**
 * The state of one membership, as both sides show it (an audience's member, a profile's
 * membership): `who` says whose entering and leaving the times describe.
 */
export function membershipStateFields(t: PothosSchemaTypes.ObjectFieldBuilder<SchemaTypes, Membership>, who: string) {
  return {
    status: t.field({
      type: MembershipStatusEnum,
      description: 'Its standing after the last evaluation.',
      resolve: (m) => m.status,
    }),
    qualifiedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: `When ${who} last entered the audience.`,
      resolve: (m) => m.qualifiedAt,
    }),
    lastEvaluatedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the membership was last evaluated.',
      resolve: (m) => m.lastEvaluatedAt,
    }),
    exitedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: `When ${who} left the audience (EXITED only).`,
      resolve: (m) => m.exitedAt,
    }),
  };
}
