/**
 * Calendar arithmetic on ISO dates (YYYY-MM-DD). Dates are civil dates of the
 * program's schedule, so all arithmetic is done in UTC to keep it free of
 * time-zone and daylight-saving shifts.
 */

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DAY_MS = 86_400_000;

/** Parses an ISO date, or returns undefined when it is not a real calendar date. */
export function parseIsoDate(value: string): Date | undefined {
  const match = ISO_DATE.exec(value);
  if (!match) return undefined;
  const date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
  return toIsoDate(date) === value ? date : undefined;
}

/** The UTC date of an instant. The program's "today" is ProgramClock.today(), in its time zone. */
export function toIsoDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}

export function addDays(isoDate: string, days: number): string {
  return toIsoDate(new Date(Date.parse(isoDate) + days * DAY_MS));
}

/** Whole days from `from` to `to`; negative when `to` is earlier. */
export function daysBetween(from: string, to: string): number {
  return Math.round((Date.parse(to) - Date.parse(from)) / DAY_MS);
}

export function daysBetweenInclusive(from: string, to: string): number {
  return daysBetween(from, to) + 1;
}

export function isMonday(isoDate: string): boolean {
  return new Date(Date.parse(isoDate)).getUTCDay() === 1;
}

/** The Monday that starts the week holding `isoDate`. */
export function mondayOf(isoDate: string): string {
  const weekday = new Date(Date.parse(isoDate)).getUTCDay();
  return addDays(isoDate, -((weekday + 6) % 7));
}
