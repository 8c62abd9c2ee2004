import { createHash } from 'node:crypto';
import { raw } from '@mikro-orm/core';
import type { QBFilterQuery } from '@mikro-orm/postgresql';
import type { CallContext } from '../domain/call-context';
import { isAcceptedInstant } from '../domain/date-range';
import { InvalidArgumentError, NotFoundError } from '../domain/errors';
import { isUuid } from '../domain/ids';
import type { TransactionRunner } from '../db/transaction-runner';
import { SwapRecord, type SwapStatusName } from './swap-record.entity';

export interface SwapFilter {
  facultyId?: string | undefined;
  weekFrom?: string | undefined;
  weekTo?: string | undefined;
  status?: SwapStatusName | undefined;
}

/** How much of each swap a page carries: everything, or all but its moves. */
export type SwapListView = 'full' | 'basic';

/** A swap as a page lists it: without its moves in the basic view. */
export type ListedSwap = Omit<SwapRecord, 'moves'> & { moves?: SwapRecord['moves'] };

/** Every column but the moves, which are most of a record's bytes (some 30 rows each). */
const BASIC_FIELDS = [
  'id',
  'sourceFacultyId',
  'sourceWeek',
  'targetFacultyId',
  'targetWeek',
  'swapType',
  'status',
  'reason',
  'requestedAt',
  'requestedBy',
  'executedAt',
  'executedBy',
  'rolledBackAt',
  'rolledBackBy',
  'rollbackReason',
  'warnings',
  'fencingToken',
  'version',
] as const satisfies readonly Exclude<keyof SwapRecord, 'moves'>[];
// Fails to compile when SwapRecord gains a field the basic view would drop unnoticed.
const BASIC_VIEW_IS_COMPLETE: Exclude<
  Exclude<keyof SwapRecord, 'moves'>,
  (typeof BASIC_FIELDS)[number]
> extends never
  ? true
  : never = true;
void BASIC_VIEW_IS_COMPLETE;

export interface SwapPage {
  swaps: ListedSwap[];
  /** Empty when this is the last page. */
  nextPageToken: string;
}

interface Cursor {
  /** requestedAt of the last swap returned, ISO. */
  at: string;
  id: string;
  /** Fingerprint of the filter the token was issued for. */
  f: string;
}

/** Reads swap records: one by id, or a filtered page, newest first. */
export class SwapQueries {
  constructor(private readonly transactions: TransactionRunner) {}

  async get(swapId: string, call: CallContext): Promise<SwapRecord> {
    const record = await this.transactions.outsideTransaction(call.budget, (em) =>
      em.findOne(SwapRecord, swapId),
    );
    if (!record)
      throw new NotFoundError('SWAP_NOT_FOUND', `no swap with id ${swapId}`, { swap_id: swapId });
    return record;
  }

  /**
   * Keyset pagination on (requestedAt, id) descending: pages stay stable while
   * new swaps arrive, and a token only works with the filter it was made for.
   */
  async list(
    filter: SwapFilter,
    pageSize: number,
    pageToken: string,
    call: CallContext,
    view: SwapListView = 'full',
  ): Promise<SwapPage> {
    const fingerprint = filterFingerprint(filter);
    const cursor = pageToken ? decodeCursor(pageToken, fingerprint) : undefined;
    const where: QBFilterQuery<SwapRecord>[] = [];
    if (filter.facultyId) {
      where.push({
        $or: [{ sourceFacultyId: filter.facultyId }, { targetFacultyId: filter.facultyId }],
      });
    }
    if (filter.weekFrom || filter.weekTo) {
      const range = {
        ...(filter.weekFrom && { $gte: filter.weekFrom }),
        ...(filter.weekTo && { $lte: filter.weekTo }),
      };
      where.push({ $or: [{ sourceWeek: range }, { targetWeek: range }] });
    }
    if (filter.status) where.push({ status: filter.status });
    if (cursor) {
      // A row value, so the index on (requested_at desc, id desc) bounds the
      // scan: an OR of the two comparisons is only a filter over every newer row.
      where.push({
        [raw('(requested_at, id) < (?::timestamptz, ?::uuid)', [cursor.at, cursor.id])]: [],
      });
    }
    // Plain rows through the query builder, not managed entities: a page is
    // only read, and 51 managed records cost ~12 ms of Node per page to
    // hydrate and then to diff against their snapshots (moves and all) when
    // a read-only transaction flushed at commit; the SQL takes 0.1 ms.
    // One statement, so no transaction: it is a snapshot of its own.
    const rows = await this.transactions.outsideTransaction(call.budget, (em) => {
      const qb = em.createQueryBuilder(SwapRecord);
      if (view === 'full') qb.select('*');
      else qb.select([...BASIC_FIELDS]);
      return qb
        .where(where.length ? { $and: where } : {})
        .orderBy([{ requestedAt: 'desc' }, { id: 'desc' }])
        .limit(pageSize + 1)
        .execute<ListedSwap[]>('all', true);
    });
    const swaps = rows.slice(0, pageSize);
    const last = swaps[swaps.length - 1];
    const nextPageToken =
      rows.length > pageSize && last ? swapPageToken(filter, last.requestedAt, last.id) : '';
    return { swaps, nextPageToken };
  }
}

/**
 * The page token whose page starts after the swap (`requestedAt`, `id`) in
 * `filter`'s order: what a page ending on that swap hands out.
 */
export function swapPageToken(filter: SwapFilter, requestedAt: Date, id: string): string {
  return encodeCursor({ at: requestedAt.toISOString(), id, f: filterFingerprint(filter) });
}

function filterFingerprint(filter: SwapFilter): string {
  const canonical = JSON.stringify([
    filter.facultyId ?? '',
    filter.weekFrom ?? '',
    filter.weekTo ?? '',
    filter.status ?? '',
  ]);
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 12);
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeCursor(token: string, fingerprint: string): Cursor {
  let cursor: unknown;
  try {
    cursor = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw foreignToken();
  }
  if (!isCursor(cursor)) throw foreignToken();
  if (cursor.f !== fingerprint) {
    throw new InvalidArgumentError(
      'page_token',
      'was issued for a different filter; send the same filter with it',
      'INVALID_PAGE_TOKEN',
    );
  }
  return cursor;
}

function isCursor(value: unknown): value is Cursor {
  if (typeof value !== 'object' || value === null) return false;
  const { at, id, f } = value as Record<string, unknown>;
  return (
    typeof at === 'string' &&
    isIssuedInstant(at) &&
    typeof id === 'string' &&
    isUuid(id) &&
    typeof f === 'string'
  );
}

/**
 * Whether `at` is a time as {@link encodeCursor} writes it (toISOString) and in
 * the accepted range: a tampered token must not reach the database with a time
 * it cannot represent.
 */
function isIssuedInstant(at: string): boolean {
  const instant = new Date(at);
  return isAcceptedInstant(instant) && instant.toISOString() === at;
}

function foreignToken(): InvalidArgumentError {
  return new InvalidArgumentError(
    'page_token',
    'is not a token this service issued',
    'INVALID_PAGE_TOKEN',
  );
}
