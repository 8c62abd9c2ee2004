import { randomUUID } from 'node:crypto';
import { isMonday, parseIsoDate } from '../domain/calendar';
import { isUuid } from '../domain/ids';
import { UsageError } from './usage-error';

/** A UUID flag or argument, checked before any call so the mistake is named at once. */
export function uuidFlag(flag: string, value: string): string {
  if (!isUuid(value)) throw new UsageError(`${flag} must be a UUID, got "${value}"`);
  return value;
}

/** A week, named by its Monday (YYYY-MM-DD). */
export function weekFlag(flag: string, value: string): string {
  if (!parseIsoDate(value))
    throw new UsageError(`${flag} must be a date YYYY-MM-DD, got "${value}"`);
  if (!isMonday(value)) throw new UsageError(`${flag} must be a Monday; ${value} is not`);
  return value;
}

export function optionalWeekFlag(flag: string, value: string | undefined): string {
  return value === undefined ? '' : weekFlag(flag, value);
}

/** A whole number within [min, max]. */
export function integerFlag(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, got "${value}"`);
  return n;
}

/**
 * A proto enum value from its short name, any case, `-` or `_`: `one-to-one`
 * for SWAP_TYPE_ONE_TO_ONE given the prefix `SWAP_TYPE_`.
 */
export function enumFlag<E extends Record<string, string | number>>(
  flag: string,
  value: string,
  values: E,
  prefix: string,
): E[keyof E] {
  const name = `${prefix}${value.toUpperCase().replaceAll('-', '_')}`;
  const found = values[name];
  const choices = Object.keys(values)
    .filter((k) => k.startsWith(prefix) && !k.endsWith('UNSPECIFIED') && k !== 'UNRECOGNIZED')
    .map((k) => k.slice(prefix.length).toLowerCase().replaceAll('_', '-'));
  if (typeof found !== 'number' || name.endsWith('UNSPECIFIED'))
    throw new UsageError(`${flag} must be one of ${choices.join(', ')}; got "${value}"`);
  return found as E[keyof E];
}

/** The request_id of a mutating call: the one given to retry, or a fresh one. */
export function requestIdOf(given: string | undefined): { requestId: string; fresh: boolean } {
  if (given !== undefined) return { requestId: uuidFlag('--request-id', given), fresh: false };
  return { requestId: randomUUID(), fresh: true };
}
