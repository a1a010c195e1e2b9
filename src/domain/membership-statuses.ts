import { CURRENT_MEMBER_STATUSES } from '../pql/index.js';

/**
 * The statuses of a membership row: REALIZED (entered at the last evaluation), EXISTING (a
 * member before it and still), EXITED (left; kept for a while for history). Statements take
 * them from here, never spelled in their text.
 */
export const MEMBERSHIP_STATUSES = ['REALIZED', 'EXISTING', 'EXITED'] as const;
export type MembershipStatus = (typeof MEMBERSHIP_STATUSES)[number];

/** A current member's statuses (an audience's size counts them): the ones PQL's `inSegment` holds for. */
export const CURRENT_STATUSES: readonly MembershipStatus[] = CURRENT_MEMBER_STATUSES;

export function isCurrentStatus(status: MembershipStatus): boolean {
  return CURRENT_STATUSES.includes(status);
}

/** A status as an SQL string literal, for statement text; typed, so a misspelt status does not compile. */
export function statusSql(status: MembershipStatus): string {
  return `'${status}'`;
}

/** `('REALIZED', 'EXISTING')`, for `status IN …` in statement text. */
export const CURRENT_STATUSES_SQL = `(${CURRENT_STATUSES.map(statusSql).join(', ')})`;
