import { createHash } from 'node:crypto';
import type { TransactionRunner } from '../db/transaction-runner';
import type { CallContext } from '../domain/call-context';
import { InvalidArgumentError } from '../domain/errors';
import { type AuditEvent, rpcNameOf } from './audit-event';

/** Which rows to list; every field given must match. */
export interface AuditFilter {
  principal?: string | undefined;
  /** The RPC's name or its gRPC path. */
  method?: string | undefined;
  /** Rows appended at or after this instant. */
  from?: Date | undefined;
  /** Rows appended before this instant. */
  to?: Date | undefined;
  /** Rows that name this swap. */
  swapId?: string | undefined;
}

export interface AuditPage {
  events: AuditEvent[];
  /** Empty when this is the last page. */
  nextPageToken: string;
}

/** A row as `em.execute` returns it: the time as ISO text (the driver leaves timestamps unparsed). */
type AuditRow = Omit<AuditEvent, 'at'> & { at: string };

const SELECT = `
select id::text as "id", to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "at", principal, on_behalf_of as "onBehalfOf", peer, method,
       request_id as "requestId", request_fingerprint as "requestFingerprint", status, reason,
       replayed, swap_ids::text[] as "swapIds", conflict_ids::text[] as "conflictIds",
       trace_id as "traceId", prev_hash as "prevHash", hash
  from audit_event`;

/**
 * ListAuditEvents: the trail, newest first, filtered, in pages. Keyset
 * pagination on the id: a page never shifts as rows are appended, and a
 * token works only with the filter it was issued for.
 */
export class ListAuditEvents {
  constructor(private readonly transactions: TransactionRunner) {}

  async list(
    filter: AuditFilter,
    pageSize: number,
    pageToken: string,
    call: CallContext,
  ): Promise<AuditPage> {
    const fingerprint = fingerprintOf(filter);
    const where: string[] = [];
    const params: unknown[] = [];
    const match = (condition: string, value: unknown) => {
      where.push(condition);
      params.push(value);
    };
    if (filter.principal) match('principal = ?', filter.principal);
    if (filter.method) match('method = ?', rpcNameOf(filter.method));
    if (filter.from) match('at >= ?', filter.from);
    if (filter.to) match('at < ?', filter.to);
    if (filter.swapId) match('swap_ids @> array[?]::uuid[]', filter.swapId);
    if (pageToken) match('id < ?::bigint', decodeCursor(pageToken, fingerprint));
    params.push(pageSize + 1);
    const sql = `${SELECT}${where.length ? ` where ${where.join(' and ')}` : ''} order by audit_event.id desc limit ?`;
    // One statement, so no transaction: it is a snapshot of its own.
    const rows = await this.transactions.outsideTransaction(call.budget, (em) =>
      em.execute<AuditRow[]>(sql, params),
    );
    const events = rows.slice(0, pageSize).map((row) => ({ ...row, at: new Date(row.at) }));
    const last = events[events.length - 1];
    return {
      events,
      nextPageToken: rows.length > pageSize && last ? encodeCursor(last.id, fingerprint) : '',
    };
  }
}

function fingerprintOf(filter: AuditFilter): string {
  const canonical = JSON.stringify([
    filter.principal ?? '',
    filter.method ? rpcNameOf(filter.method) : '',
    filter.from?.toISOString() ?? '',
    filter.to?.toISOString() ?? '',
    filter.swapId ?? '',
  ]);
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 12);
}

function encodeCursor(id: string, fingerprint: string): string {
  return Buffer.from(JSON.stringify({ id, f: fingerprint })).toString('base64url');
}

/** The id the previous page ended at. */
function decodeCursor(token: string, fingerprint: string): string {
  let cursor: unknown;
  try {
    cursor = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    cursor = undefined;
  }
  const { id, f } = (typeof cursor === 'object' && cursor !== null ? cursor : {}) as Record<
    string,
    unknown
  >;
  if (typeof id !== 'string' || !isEventId(id) || typeof f !== 'string') {
    throw new InvalidArgumentError(
      'page_token',
      'is not a token this service issued',
      'INVALID_PAGE_TOKEN',
    );
  }
  if (f !== fingerprint) {
    throw new InvalidArgumentError(
      'page_token',
      'was issued for a different filter; send the same filter with it',
      'INVALID_PAGE_TOKEN',
    );
  }
  return id;
}

const MAX_BIGINT = 2n ** 63n - 1n;

function isEventId(value: string): boolean {
  return /^[1-9][0-9]{0,18}$/.test(value) && BigInt(value) <= MAX_BIGINT;
}
