import { type FilterQuery, raw } from '@mikro-orm/core';
import { parseIsoDate } from '../domain/calendar';
import type { CallContext } from '../domain/call-context';
import { isAcceptedDate } from '../domain/date-range';
import { InvalidArgumentError, NotFoundError } from '../domain/errors';
import { isUuid } from '../domain/ids';
import type { TransactionRunner } from '../db/transaction-runner';
import {
  ConflictAlert,
  type ConflictSeverityName,
  type ConflictStatusName,
  type ConflictTypeName,
} from './conflict-alert.entity';

export interface ConflictFilter {
  facultyId?: string | undefined;
  status?: ConflictStatusName | undefined;
  type?: ConflictTypeName | undefined;
  severity?: ConflictSeverityName | undefined;
  weekFrom?: string | undefined;
  weekTo?: string | undefined;
}

/** Reads alerts: one by id, or a filtered page ordered by week then id. */
export class ConflictQueries {
  constructor(private readonly transactions: TransactionRunner) {}

  async get(conflictId: string, call: CallContext): Promise<ConflictAlert> {
    const alert = await this.transactions.outsideTransaction(call.budget, (em) =>
      em.findOne(ConflictAlert, conflictId),
    );
    if (!alert)
      throw new NotFoundError('CONFLICT_NOT_FOUND', `no conflict with id ${conflictId}`, {
        conflict_id: conflictId,
      });
    return alert;
  }

  async list(
    filter: ConflictFilter,
    pageSize: number,
    pageToken: string,
    call: CallContext,
  ): Promise<{ conflicts: ConflictAlert[]; nextPageToken: string }> {
    const where: FilterQuery<ConflictAlert>[] = [];
    if (filter.facultyId) where.push({ facultyId: filter.facultyId });
    if (filter.status) where.push({ status: filter.status });
    if (filter.type) where.push({ type: filter.type });
    if (filter.severity) where.push({ severity: filter.severity });
    if (filter.weekFrom) where.push({ weekStart: { $gte: filter.weekFrom } });
    if (filter.weekTo) where.push({ weekStart: { $lte: filter.weekTo } });
    const fingerprint = JSON.stringify(filter);
    if (pageToken) {
      const cursor = decodeCursor(pageToken, fingerprint);
      // A row value, so the index on (week_start, id) bounds the scan: an OR of
      // the two comparisons is only a filter over everything before the cursor.
      where.push({
        [raw('(week_start, id) > (?::date, ?::uuid)', [cursor.week, cursor.id])]: [],
      });
    }
    // One statement, so no transaction: it is a snapshot of its own.
    const rows = await this.transactions.outsideTransaction(call.budget, (em) =>
      em.find(ConflictAlert, where.length ? { $and: where } : {}, {
        orderBy: [{ weekStart: 'asc' }, { id: 'asc' }],
        limit: pageSize + 1,
      }),
    );
    const conflicts = rows.slice(0, pageSize);
    const last = conflicts[conflicts.length - 1];
    return {
      conflicts,
      nextPageToken:
        rows.length > pageSize && last
          ? Buffer.from(
              JSON.stringify({ week: last.weekStart, id: last.id, f: fingerprint }),
            ).toString('base64url')
          : '',
    };
  }
}

function decodeCursor(token: string, fingerprint: string): { week: string; id: string } {
  try {
    const cursor = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    if (
      typeof cursor.week === 'string' &&
      // A real date in the accepted range: a tampered week must not reach the database.
      parseIsoDate(cursor.week) !== undefined &&
      isAcceptedDate(cursor.week) &&
      typeof cursor.id === 'string' &&
      isUuid(cursor.id)
    ) {
      if (cursor.f !== fingerprint) {
        throw new InvalidArgumentError(
          'page_token',
          'was issued for a different filter; send the same filter with it',
          'INVALID_PAGE_TOKEN',
        );
      }
      return { week: cursor.week, id: cursor.id };
    }
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw error;
  }
  throw new InvalidArgumentError(
    'page_token',
    'is not a token this service issued',
    'INVALID_PAGE_TOKEN',
  );
}
