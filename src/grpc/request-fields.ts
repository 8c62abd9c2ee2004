import { isMonday, parseIsoDate } from '../domain/calendar';
import { InvalidArgumentError } from '../domain/errors';
import { isUuid } from '../domain/ids';

const MAX_TEXT = 2000;

/** Field checks shared by the request parsers; each names the field it rejects. */
export function requireUuid(field: string, value: string): string {
  if (!value) throw new InvalidArgumentError(field, 'is required', 'MISSING_FIELD');
  if (!isUuid(value))
    throw new InvalidArgumentError(field, `must be a UUID, got "${clip(value)}"`, 'INVALID_ID');
  return value.toLowerCase();
}

export function optionalUuid(field: string, value: string): string | undefined {
  return value ? requireUuid(field, value) : undefined;
}

/** A week is named by its Monday, as an ISO date. */
export function requireWeek(field: string, value: string): string {
  if (!value)
    throw new InvalidArgumentError(
      field,
      'is required (the Monday of the week, YYYY-MM-DD)',
      'MISSING_FIELD',
    );
  if (!parseIsoDate(value))
    throw new InvalidArgumentError(
      field,
      `must be an ISO date YYYY-MM-DD, got "${clip(value)}"`,
      'INVALID_WEEK',
    );
  if (!isMonday(value))
    throw new InvalidArgumentError(field, `must be a Monday; ${value} is not`, 'INVALID_WEEK');
  return value;
}

export function optionalWeek(field: string, value: string): string | undefined {
  return value ? requireWeek(field, value) : undefined;
}

export function optionalText(field: string, value: string): string {
  if (value.length > MAX_TEXT)
    throw new InvalidArgumentError(field, `must be at most ${MAX_TEXT} characters`, 'TOO_LONG');
  return value.trim();
}

export function requireText(field: string, value: string): string {
  const text = optionalText(field, value);
  if (!text) throw new InvalidArgumentError(field, 'is required', 'MISSING_FIELD');
  return text;
}

/** Maps a proto enum to a domain value; UNSPECIFIED and unknown numbers are rejected. */
export function requireEnum<T>(
  field: string,
  value: number,
  names: ReadonlyMap<number, T>,
  allowed: string,
): T {
  const mapped = names.get(value);
  if (mapped === undefined) {
    throw new InvalidArgumentError(
      field,
      `must be one of ${allowed}, got ${value}`,
      'INVALID_ENUM',
    );
  }
  return mapped;
}

function clip(value: string): string {
  return value.length > 60 ? `${value.slice(0, 60)}…` : value;
}

const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 500;

/** The week range and page size that every List call takes. */
export function listWindowOf(request: { weekFrom: string; weekTo: string; pageSize: number }): {
  weekFrom: string | undefined;
  weekTo: string | undefined;
  pageSize: number;
} {
  const weekFrom = optionalWeek('week_from', request.weekFrom);
  const weekTo = optionalWeek('week_to', request.weekTo);
  if (weekFrom && weekTo && weekFrom > weekTo) {
    throw new InvalidArgumentError('week_to', 'must not be before week_from', 'INVALID_RANGE');
  }
  return { weekFrom, weekTo, pageSize: pageSizeOf(request.pageSize) };
}

/** A List call's page size: 0 means the default, and more than the maximum is refused. */
export function pageSizeOf(pageSize: number): number {
  if (pageSize < 0 || pageSize > MAX_PAGE_SIZE) {
    throw new InvalidArgumentError(
      'page_size',
      `must be between 0 and ${MAX_PAGE_SIZE}`,
      'INVALID_PAGE_SIZE',
    );
  }
  return pageSize || DEFAULT_PAGE_SIZE;
}
