import { conflict } from './errors.js';

export const LIFECYCLE_STATES = ['DRAFT', 'PUBLISHED', 'INACTIVE', 'ARCHIVED'] as const;
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];

/**
 * Allowed lifecycle moves: a draft may go anywhere; a published audience cannot go back to
 * draft; an inactive one may be published again; ARCHIVED is final.
 */
const ALLOWED: Record<LifecycleState, readonly LifecycleState[]> = {
  DRAFT: ['DRAFT', 'PUBLISHED', 'INACTIVE', 'ARCHIVED'],
  PUBLISHED: ['PUBLISHED', 'INACTIVE', 'ARCHIVED'],
  INACTIVE: ['INACTIVE', 'PUBLISHED', 'ARCHIVED'],
  ARCHIVED: ['ARCHIVED'],
};

export function assertLifecycleChange(from: LifecycleState, to: LifecycleState): void {
  if (!ALLOWED[from].includes(to)) {
    throw conflict(`An audience cannot go from ${from} to ${to}${from === 'ARCHIVED' ? ' (ARCHIVED is final)' : ''}`, {
      from,
      to,
    });
  }
}

/** INACTIVE and ARCHIVED audiences are not evaluated. */
export const isEvaluated = (state: LifecycleState) => state === 'DRAFT' || state === 'PUBLISHED';
