import { isMonday, parseIsoDate } from '../domain/calendar';
import {
  EARLIEST_DATE,
  isAcceptedDate,
  isAcceptedInstant,
  LATEST_DATE,
} from '../domain/date-range';
import { InvalidArgumentError } from '../domain/errors';
import { isUuid } from '../domain/ids';

/** Free text (reasons, notes), in code points: what a person reads as characters, emoji included. */
const MAX_TEXT = 2000;
/** Option ids the planner makes are short (`SWAP_ASSIGNMENTS:<uuid>`); anything longer is not one. */
const MAX_OPTION_ID = 100;
/** Tokens this service issues are a few hundred characters of base64url. */
const MAX_PAGE_TOKEN = 1024;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

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
  if (!isAcceptedDate(value))
    throw new InvalidArgumentError(
      field,
      `must be between ${EARLIEST_DATE} and ${LATEST_DATE}, got ${value}`,
      'INVALID_WEEK',
    );
  return value;
}

export function optionalWeek(field: string, value: string): string | undefined {
  return value ? requireWeek(field, value) : undefined;
}

/**
 * Free text, trimmed. Its length is counted in code points, not UTF-16 units,
 * so an emoji counts once. NUL is refused: PostgreSQL cannot store it in text.
 */
export function optionalText(field: string, value: string): string {
  if (codePointsOf(value) > MAX_TEXT)
    throw new InvalidArgumentError(field, `must be at most ${MAX_TEXT} characters`, 'TOO_LONG');
  if (value.includes('\0'))
    throw new InvalidArgumentError(field, 'must not contain NUL (U+0000)', 'INVALID_TEXT');
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

/** An option id as GetResolutionOptions gives it; bounded, so it is never echoed at length. */
export function requireOptionId(field: string, value: string): string {
  if (codePointsOf(value) > MAX_OPTION_ID)
    throw new InvalidArgumentError(
      field,
      `must be at most ${MAX_OPTION_ID} characters (an option_id from GetResolutionOptions)`,
      'TOO_LONG',
    );
  if (value.includes('\0'))
    throw new InvalidArgumentError(field, 'must not contain NUL (U+0000)', 'INVALID_TEXT');
  return value;
}

/** An instant bounding a time range; absent stays absent, and it must lie in the accepted years. */
export function optionalInstant(field: string, value: Date | undefined): Date | undefined {
  if (value === undefined) return undefined;
  if (!isAcceptedInstant(value))
    throw new InvalidArgumentError(
      field,
      `must be a time between ${EARLIEST_DATE} and ${LATEST_DATE}`,
      'INVALID_RANGE',
    );
  return value;
}

/**
 * A page token's outer shape: what the service issues is base64url of a few
 * hundred characters. What it says is checked by the query that issued it.
 */
export function pageTokenOf(value: string): string {
  if (value.length > MAX_PAGE_TOKEN || !BASE64URL.test(value))
    throw new InvalidArgumentError(
      'page_token',
      'is not a token this service issued; send the next_page_token of the previous page',
      'INVALID_PAGE_TOKEN',
    );
  return value;
}

/** How many code points `value` holds (a lone surrogate counts as one). */
function codePointsOf(value: string): number {
  // Each surrogate pair is two UTF-16 units and one code point.
  let pairs = 0;
  for (let i = 0; i < value.length - 1; i++) {
    const unit = value.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        pairs++;
        i++;
      }
    }
  }
  return value.length - pairs;
}

/** Caller input quoted in a message: at most 60 code points of it. */
function clip(value: string): string {
  const points = Array.from(value);
  return points.length > 60 ? `${points.slice(0, 60).join('')}…` : value;
}

const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 500;

/** The week range and page size that every List call takes. */
export function listWindowOf(request: {
  weekFrom: string;
  weekTo: string;
  pageSize: number;
  pageToken: string;
}): {
  weekFrom: string | undefined;
  weekTo: string | undefined;
  pageSize: number;
  pageToken: string;
} {
  const weekFrom = optionalWeek('week_from', request.weekFrom);
  const weekTo = optionalWeek('week_to', request.weekTo);
  if (weekFrom && weekTo && weekFrom > weekTo) {
    throw new InvalidArgumentError('week_to', 'must not be before week_from', 'INVALID_RANGE');
  }
  return {
    weekFrom,
    weekTo,
    pageSize: pageSizeOf(request.pageSize),
    pageToken: pageTokenOf(request.pageToken),
  };
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
