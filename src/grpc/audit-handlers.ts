import type { ListAuditEvents } from '../audit/list-audit-events';
import type { VerifyAuditChain } from '../audit/verify-audit-chain';
import type { AuditServiceServer } from '../generated/swap/v1/audit';
import { toAuditEventMessage, toAuditFilter, toVerifyResponse } from './audit-messages';
import { type HandlerDeps, unary } from './unary-handler';

/** The use cases behind AuditService. */
export interface AuditUseCases {
  listAuditEvents: ListAuditEvents;
  verifyAuditChain: VerifyAuditChain;
}

/** The AuditService RPCs: each parses its request, calls one use case and maps the answer. */
export function auditHandlers(useCases: AuditUseCases, deps: HandlerDeps): AuditServiceServer {
  const { listAuditEvents, verifyAuditChain } = useCases;
  return {
    listAuditEvents: unary(deps, async (request, ctx) => {
      const { filter, pageSize, pageToken } = toAuditFilter(request);
      const page = await listAuditEvents.list(filter, pageSize, pageToken, ctx);
      return { events: page.events.map(toAuditEventMessage), nextPageToken: page.nextPageToken };
    }),
    verifyAuditChain: unary(deps, async (_request, ctx) =>
      toVerifyResponse(await verifyAuditChain.verify(ctx)),
    ),
  };
}
