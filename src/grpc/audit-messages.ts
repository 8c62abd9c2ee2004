import type { AuditEvent as AuditRow } from '../audit/audit-event';
import type { AuditFilter } from '../audit/list-audit-events';
import type { BrokenLink as Break, ChainVerdict } from '../audit/verify-audit-chain';
import { InvalidArgumentError } from '../domain/errors';
import {
  type AuditEvent,
  ChainBreak,
  type ListAuditEventsRequest,
  type VerifyAuditChainResponse,
} from '../generated/swap/v1/audit';
import {
  optionalInstant,
  optionalText,
  optionalUuid,
  pageSizeOf,
  pageTokenOf,
} from './request-fields';

const BREAKS: Record<Break['kind'], ChainBreak> = {
  PREVIOUS_HASH: ChainBreak.CHAIN_BREAK_PREVIOUS_HASH,
  ROW_HASH: ChainBreak.CHAIN_BREAK_ROW_HASH,
  HEAD: ChainBreak.CHAIN_BREAK_HEAD,
};

export function toAuditFilter(request: ListAuditEventsRequest): {
  filter: AuditFilter;
  pageSize: number;
  pageToken: string;
} {
  const from = optionalInstant('from', request.from);
  const to = optionalInstant('to', request.to);
  if (from && to && from > to)
    throw new InvalidArgumentError('to', 'must not be before from', 'INVALID_RANGE');
  return {
    filter: {
      principal: optionalText('principal', request.principal) || undefined,
      method: optionalText('method', request.method) || undefined,
      from,
      to,
      swapId: optionalUuid('swap_id', request.swapId),
    },
    pageSize: pageSizeOf(request.pageSize),
    pageToken: pageTokenOf(request.pageToken),
  };
}

export function toAuditEventMessage(event: AuditRow): AuditEvent {
  return {
    ...event,
    onBehalfOf: event.onBehalfOf ?? '',
    requestId: event.requestId ?? '',
    requestFingerprint: event.requestFingerprint ?? '',
    reason: event.reason ?? '',
  };
}

export function toVerifyResponse(verdict: ChainVerdict): VerifyAuditChainResponse {
  const broken = verdict.firstBrokenLink;
  return {
    intact: verdict.intact,
    eventsChecked: String(verdict.eventsChecked),
    firstBrokenLink: broken && { ...broken, kind: BREAKS[broken.kind] },
    headEventId: verdict.headEventId,
    headHash: verdict.headHash,
  };
}
