import { Cron } from 'croner';
import { badInput } from '../errors.js';

/**
 * A cron expression in a time zone, as the scheduler reads it:
 *
 * - 5 fields (`minute hour day-of-month month day-of-week`): standard cron, Sunday = 0 or 7;
 *   when both day fields are restricted, either may match (as Vixie cron does).
 * - 6 or 7 fields (`second minute hour day-of-month month day-of-week [year]`): Quartz, with
 *   `?`, `L`, `W` and `#`, and Quartz's day-of-week numbers (1 = SUN … 7 = SAT).
 *
 * Times are read in the IANA zone. A time a spring-forward skips runs once, at the first valid
 * instant after the gap; a time a fall-back repeats runs once, at its first occurrence (croner's
 * fixed-time rule for a single second, minute and hour; patterns with a wildcard or step in
 * those fields follow the wall clock instead).
 */
export interface CronSchedule {
  /** The first due time strictly after `after` (ms), or null when there is none. */
  next(after: number): number | null;
  /** The last due time at or before `at` (ms), or null when there is none. */
  previous(at: number): number | null;
  /** The first `count` due times strictly after `after`. */
  upcoming(count: number, after: number): number[];
}

/** Fields of a cron expression as it is written (nicknames such as `@daily` count as 5). */
function fieldCount(cron: string): number {
  const trimmed = cron.trim();
  return trimmed.startsWith('@') ? 5 : trimmed.split(/\s+/).length;
}

/** Checks an IANA zone name (an offset such as `+01:00` is not one). BAD_USER_INPUT names the problem. */
export function validTimezone(timezone: string, field = 'input.timezone'): string {
  const name = timezone.trim();
  let valid = name.length > 0 && !/^[+-]/.test(name);
  if (valid) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: name });
    } catch {
      valid = false;
    }
  }
  if (!valid) {
    throw badInput(`"${timezone}" is not an IANA time zone; give one such as "UTC" or "Europe/Stockholm"`, field);
  }
  return name;
}

/**
 * Parses a cron expression for a time zone; an invalid one is BAD_USER_INPUT saying what is
 * wrong with it (croner's reason, without its class-name prefix).
 */
export function parseCron(cron: string, timezone: string, field = 'input.cron'): CronSchedule {
  const zone = validTimezone(timezone);
  const fields = fieldCount(cron);
  if (fields < 5 || fields > 7) {
    throw badInput(
      `"${cron}" has ${fields} field${fields === 1 ? '' : 's'}; a cron expression has 5 (minute hour day month weekday) or 6–7 (Quartz: second minute hour day month weekday [year])`,
      field,
    );
  }
  let job: Cron;
  try {
    job = new Cron(cron.trim(), {
      paused: true,
      timezone: zone,
      mode: fields === 5 ? (cron.trim().startsWith('@') ? 'auto' : '5-part') : '6-or-7-parts',
      alternativeWeekdays: fields > 5,
    });
  } catch (err) {
    const reason = (err instanceof Error ? err.message : String(err)).replace(/^CronPattern:\s*/, '');
    throw badInput(`"${cron}" is not a valid cron expression: ${reason}`, field);
  }
  // The zone was checked above; nextRun only fails for dates croner cannot represent.
  const nextAfter = (after: number) => job.nextRun(new Date(after))?.getTime() ?? null;
  return {
    next: nextAfter,
    previous(at) {
      const [found] = job.previousRuns(1, new Date(at + 1));
      return found ? found.getTime() : null;
    },
    upcoming(count, after) {
      return job.nextRuns(count, new Date(after)).map((d) => d.getTime());
    },
  };
}
