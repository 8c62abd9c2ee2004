import { type handleUnaryCall, type ServerUnaryCall, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { type CallContext, callContextOf } from './call-context';
import { toGrpcError } from './error-mapper';

export interface UnaryDeps {
  log: Logger;
  defaultDeadlineMs: number;
}

/**
 * Adapts a promise-returning handler to grpc-js: builds the call context, turns
 * a rejection into a mapped status, and logs one line per call.
 */
export function unary<Req, Res>(
  method: string,
  deps: UnaryDeps,
  handler: (request: Req, ctx: CallContext, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const started = performance.now();
    const ctx = callContextOf(call, deps.defaultDeadlineMs);
    const requestId = (call.request as { requestId?: unknown }).requestId;
    const done = (code: string) =>
      deps.log.info(
        {
          method,
          status: code,
          duration_ms: Math.round((performance.now() - started) * 100) / 100,
          request_id: requestId || undefined,
          actor: ctx.actor,
        },
        'call',
      );
    handler(call.request, ctx, call).then(
      (response) => {
        done('OK');
        callback(null, response);
      },
      (error: unknown) => {
        const mapped = toGrpcError(error, deps.log.child({ method }));
        done(status[mapped.code] ?? String(mapped.code));
        callback(mapped, null);
      },
    );
  };
}
