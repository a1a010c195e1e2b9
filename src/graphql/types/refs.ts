import type { Audience } from '../../domain/audiences.js';
import type { SegmentDefinition } from '../../domain/definitions.js';
import type { Folder } from '../../domain/folders.js';
import { builder } from '../builder.js';

/** Refs shared by several type files (each type is implemented in the file named after it). */
export const AudienceRef = builder.objectRef<Audience>('Audience');
export const SegmentDefinitionRef = builder.objectRef<SegmentDefinition>('SegmentDefinition');
export const FolderRef = builder.objectRef<Folder>('Folder');

export const LifecycleStateEnum = builder.enumType('LifecycleState', {
  description: 'DRAFT and PUBLISHED audiences are evaluated; INACTIVE and ARCHIVED are not; ARCHIVED is final.',
  values: ['DRAFT', 'PUBLISHED', 'INACTIVE', 'ARCHIVED'] as const,
});

export const PqlFormatEnum = builder.enumType('PqlFormat', {
  values: {
    PQL_TEXT: { description: 'PQL text' },
    PQL_JSON: { description: 'The pql/json tree, as a JSON string' },
  } as const,
});

export const EvaluationMethodEnum = builder.enumType('EvaluationMethod', {
  values: ['BATCH', 'STREAMING', 'EDGE'] as const,
});

export const OrderDirectionEnum = builder.enumType('OrderDirection', { values: ['ASC', 'DESC'] as const });

export const MembershipStatusEnum = builder.enumType('MembershipStatus', {
  description: 'REALIZED: entered in the last evaluation; EXISTING: was in and still is; EXITED: was in, no longer.',
  values: ['REALIZED', 'EXISTING', 'EXITED'] as const,
});
