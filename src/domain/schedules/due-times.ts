import type { CronSchedule } from './cron.js';

/** MISSED due times listed one by one; more in one outage are recorded as one entry with a count. */
const LISTED = 1000;
/** Due times counted at most (an every-second cron down for a day has 86,400). */
const COUNTED = 100_000;

export interface DueTimes {
  /** Passed due times before the latest, each recorded as MISSED. */
  listed: number[];
  /** The passed due times after the listed ones and before the latest, as one MISSED entry. */
  rest: { first: number; last: number; count: number; exact: boolean } | null;
  /** The latest passed due time: the one that runs; null when none has passed. */
  latest: number | null;
}

/** The due times of `cron` from `from` (a due time) up to `now`: one run for the latest, the others missed. */
export function dueTimes(cron: CronSchedule, from: number, now: number): DueTimes {
  const seen: number[] = [];
  let previous: number | null = null;
  let last: number | null = null;
  let count = 0;
  let at: number | null = from;
  while (at != null && at <= now && count < COUNTED) {
    if (seen.length <= LISTED) seen.push(at);
    previous = last;
    last = at;
    count++;
    at = cron.next(at);
  }
  if (last === null) return { listed: [], rest: null, latest: null };
  if (at != null && at <= now) {
    // Counting stopped: the latest is found from `now`; the rest runs up to the due time before it.
    const latest = cron.previous(now)!;
    const restLast = cron.previous(latest - 1)!;
    const listed = seen.slice(0, LISTED);
    return { listed, rest: { first: seen[LISTED]!, last: restLast, count: count - LISTED, exact: false }, latest };
  }
  if (count <= LISTED + 1) return { listed: seen.slice(0, count - 1), rest: null, latest: last };
  return {
    listed: seen.slice(0, LISTED),
    rest: { first: seen[LISTED]!, last: previous!, count: count - 1 - LISTED, exact: true },
    latest: last,
  };
}
