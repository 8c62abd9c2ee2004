import { daysBetweenInclusive } from '../domain/calendar';

export const ABSENCE_TYPES = [
  'deployment',
  'tdy',
  'family_emergency',
  'bereavement',
  'convalescent',
  'parental',
  'medical',
  'sick',
  'vacation',
  'conference',
] as const;
export type AbsenceType = (typeof ABSENCE_TYPES)[number];

const ALWAYS_BLOCKING: ReadonlySet<AbsenceType> = new Set([
  'deployment',
  'tdy',
  'family_emergency',
  'bereavement',
  'convalescent',
  'parental',
]);

/** Leave that blocks only once it is longer than this many days. */
const BLOCKING_AFTER_DAYS: Partial<Record<AbsenceType, number>> = { medical: 7, sick: 3 };

/**
 * Whether an absence makes its holder unavailable for scheduled work.
 * Short medical and sick leave is covered informally, so it does not block;
 * vacation and conference are planned around and never block.
 */
export function isBlockingAbsence(type: AbsenceType, startDate: string, endDate: string): boolean {
  if (ALWAYS_BLOCKING.has(type)) return true;
  const threshold = BLOCKING_AFTER_DAYS[type];
  return threshold !== undefined && daysBetweenInclusive(startDate, endDate) > threshold;
}
