import { Temporal } from 'temporal-polyfill';

/** The source of "now" for business rules (past weeks, rollback windows). Injected so tests can move it. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/**
 * A clock that knows the program's time zone: "today" is the civil date at
 * the program's location (PROGRAM_TIME_ZONE), so a week begins, and stops
 * being swappable, at the program's midnight rather than at 00:00 UTC.
 * Dates are computed with Temporal (the polyfill until Node ships it) from
 * the IANA time zone database, never from fixed offsets, so daylight-saving
 * changes are handled.
 */
export interface ProgramClock extends Clock {
  /** IANA name, e.g. America/New_York. */
  readonly timeZone: string;
  /** The program's civil date now, as an ISO date (YYYY-MM-DD). */
  today(): string;
  /** An instant as the program reads it: `2027-01-04T18:30-05:00[America/New_York]`. */
  display(instant: Date): string;
}

/** `clock`, read in `timeZone` (an IANA name; config.ts has validated it). */
export function programClock(clock: Clock, timeZone: string): ProgramClock {
  const zoned = (instant: Date) =>
    Temporal.Instant.fromEpochMilliseconds(instant.getTime()).toZonedDateTimeISO(timeZone);
  return {
    timeZone,
    now: () => clock.now(),
    today: () => zoned(clock.now()).toPlainDate().toString(),
    display: (instant) => zoned(instant).toString({ smallestUnit: 'minute' }),
  };
}
