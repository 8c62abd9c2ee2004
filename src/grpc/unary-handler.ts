import { type handleUnaryCall, Metadata, type ServerUnaryCall, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { AuditTrail, RefusalEvent } from '../audit/audit-trail';
import type { CallContext } from '../domain/call-context';
import { DomainError } from '../domain/errors';
import type { CallContexts } from './call-contexts';
import { statusNameOf, toGrpcError } from './error-boundary';

/** Response metadata that tells a client its answer was replayed, not recomputed. */
export const REPLAYED_HEADER = 'idempotent-replayed';

/** What a mutating handler answers: the response, and whether it was a replay. */
export interface Reply<Res> {
  response: Res;
  replayed: boolean;
}

/** What every handler adapter needs. */
export interface HandlerDeps {
  contexts: CallContexts;
  log: Logger;
  /** Where a mutating call's refusal is recorded; it never rejects. */
  audit: Pick<AuditTrail, 'recordRefusal'>;
}

/**
 * Adapts a promise-returning handler to grpc-js. This is the error boundary:
 * a rejection becomes a status here and nowhere else.
 */
export function unary<Req, Res>(
  deps: Pick<HandlerDeps, 'contexts' | 'log'>,
  handler: (request: Req, ctx: CallContext) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  const replying = async (request: Req, ctx: CallContext) => ({
    response: await handler(request, ctx),
    replayed: false,
  });
  return adapt({ ...deps, audit: undefined }, replying);
}

/**
 * Like {@link unary}, for mutating calls: a replayed answer carries
 * {@link REPLAYED_HEADER}, and a refusal (any error status) is recorded in the
 * audit trail before it is answered. Committed and replayed calls are recorded
 * by the write path, which knows what they were about.
 */
export function mutating<Req, Res>(
  deps: HandlerDeps,
  handler: (request: Req, ctx: CallContext) => Promise<Reply<Res>>,
): handleUnaryCall<Req, Res> {
  return adapt(deps, handler);
}

/** Reads answer nothing to the audit trail; mutating calls give it their refusals. */
function adapt<Req, Res>(
  deps: Omit<HandlerDeps, 'audit'> & { audit: HandlerDeps['audit'] | undefined },
  handler: (request: Req, ctx: CallContext) => Promise<Reply<Res>>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => handler(call.request, deps.contexts.of(call.metadata)))
      .then(
        ({ response, replayed }) => {
          if (replayed) call.sendMetadata(replayedMetadata());
          callback(null, response);
        },
        async (error: unknown) => {
          const grpcError = toGrpcError(error, deps.log.child({ method: call.getPath() }));
          // Best effort: whatever becomes of the record, the caller gets this status.
          await deps.audit?.recordRefusal(refusalOf(deps.contexts, call, grpcError.code, error));
          callback(grpcError, null);
        },
      );
  };
}

function refusalOf<Req>(
  contexts: CallContexts,
  call: ServerUnaryCall<Req, unknown>,
  code: status,
  error: unknown,
): RefusalEvent {
  const caller = contexts.find(call.metadata)?.caller;
  const { requestId } = (call.request ?? {}) as { requestId?: unknown };
  return {
    principal: caller?.principal ?? 'unknown',
    onBehalfOf: caller?.onBehalfOf,
    peer: caller?.peer ?? call.getPeer(),
    method: call.getPath(),
    requestId: typeof requestId === 'string' && requestId ? requestId : undefined,
    status: statusNameOf(code),
    // Only a domain error carries a reason; an INTERNAL answer carries none.
    reason: code !== status.INTERNAL && error instanceof DomainError ? error.reason : null,
  };
}

function replayedMetadata(): Metadata {
  const metadata = new Metadata();
  metadata.set(REPLAYED_HEADER, 'true');
  return metadata;
}
