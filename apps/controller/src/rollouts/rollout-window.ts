import { CronExpressionParser } from 'cron-parser';
import type { WindowState } from './rollout-engine.js';

/** Why a cron expression or time zone cannot be used, per field, or an empty list. */
export function cronProblems(cron: string, timeZone: string): { field: 'cron' | 'timeZone'; message: string }[] {
  try {
    new Intl.DateTimeFormat('en', { timeZone });
  } catch {
    return [{ field: 'timeZone', message: `"${timeZone}" is not an IANA time zone (such as Europe/Berlin or UTC)` }];
  }
  try {
    CronExpressionParser.parse(cron, { tz: timeZone, strict: false });
  } catch (err) {
    return [{ field: 'cron', message: `"${cron}" is not a cron expression (minute hour day-of-month month day-of-week, such as "0 2 * * 0"): ${(err as Error).message}` }];
  }
  return [];
}

/** The first occurrence strictly after `after`. */
export function nextOccurrence(cron: string, timeZone: string, after: Date): Date | null {
  const it = CronExpressionParser.parse(cron, { tz: timeZone, currentDate: after });
  return it.hasNext() ? it.next().toDate() : null;
}

/**
 * A maintenance window opens at every occurrence of `cron` (in `timeZone`) and stays open
 * `durationMinutes`. Deterministic in `now`, so a test clock moves it.
 */
export function windowState(cron: string, timeZone: string, durationMinutes: number, now: Date): WindowState {
  const length = durationMinutes * 60_000;
  // An occurrence exactly at `now` opens the window: look back from just after now.
  const back = CronExpressionParser.parse(cron, { tz: timeZone, currentDate: new Date(now.getTime() + 1) });
  const lastOpen = back.hasPrev() ? back.prev().toDate() : null;
  const closesAt = lastOpen ? new Date(lastOpen.getTime() + length) : null;
  const open = closesAt !== null && now < closesAt;
  return { open, nextOpen: nextOccurrence(cron, timeZone, now), closesAt: open ? closesAt : null };
}
