/**
 * The dates the service accepts from callers. A residency schedule lives in
 * the present century; anything far outside it is a mistake, and at the edges
 * of what JavaScript and PostgreSQL can represent (year 10000 and beyond) date
 * arithmetic stops working, so the edge refuses it before anything computes
 * with it. The range leaves room for a week's neighbours on either side.
 */

/** The first civil date accepted. */
export const EARLIEST_DATE = '2000-01-01';
/** The last civil date accepted. */
export const LATEST_DATE = '2200-12-31';

const EARLIEST_MS = Date.parse(`${EARLIEST_DATE}T00:00:00Z`);
const LATEST_END_MS = Date.parse(`${LATEST_DATE}T00:00:00Z`) + 86_400_000;

/** Whether an ISO date (YYYY-MM-DD, already known to be a real date) lies in the accepted range. */
export function isAcceptedDate(isoDate: string): boolean {
  return isoDate >= EARLIEST_DATE && isoDate <= LATEST_DATE;
}

/** Whether an instant is a real time within the accepted range. */
export function isAcceptedInstant(instant: Date): boolean {
  const ms = instant.getTime();
  return !Number.isNaN(ms) && ms >= EARLIEST_MS && ms < LATEST_END_MS;
}
