import { type handleUnaryCall, Metadata } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { CallContext } from '../domain/call-context';
import type { CallContexts } from './call-contexts';
import { toGrpcError } from './error-boundary';

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
}

/**
 * Adapts a promise-returning handler to grpc-js. This is the error boundary:
 * a rejection becomes a status here and nowhere else.
 */
export function unary<Req, Res>(
  deps: HandlerDeps,
  handler: (request: Req, ctx: CallContext) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return mutating(deps, async (request: Req, ctx) => ({
    response: await handler(request, ctx),
    replayed: false,
  }));
}

/** Like {@link unary}, for mutating calls: a replayed answer carries {@link REPLAYED_HEADER}. */
export function mutating<Req, Res>(
  deps: HandlerDeps,
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
        (error: unknown) =>
          callback(toGrpcError(error, deps.log.child({ method: call.getPath() })), null),
      );
  };
}

function replayedMetadata(): Metadata {
  const metadata = new Metadata();
  metadata.set(REPLAYED_HEADER, 'true');
  return metadata;
}
