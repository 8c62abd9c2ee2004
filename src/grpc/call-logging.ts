import { type Metadata, type ServerInterceptor, ServerInterceptingCall } from '@grpc/grpc-js';
import { statusSeenByClient } from './abandoned-call';
import { statusNameOf } from './error-boundary';
import type { Logger } from 'pino';
import type { CallContexts } from './call-contexts';

/** Probed constantly by load balancers and tools: logged at debug only. */
const QUIET_SERVICES = ['/grpc.health.v1.Health/', '/grpc.reflection.'];

/**
 * Logs one line per call when it ends: method, status (as the client saw it:
 * CANCELLED once it cancelled), duration, the request id (when the request
 * has one) and the caller.
 */
export function callLogging(log: Logger, contexts: CallContexts): ServerInterceptor {
  return (methodDescriptor, call) => {
    const path = methodDescriptor.path;
    const method = path.slice(path.lastIndexOf('/') + 1);
    const level = QUIET_SERVICES.some((prefix) => path.startsWith(prefix)) ? 'debug' : 'info';
    const started = performance.now();
    let metadata: Metadata | undefined;
    let requestId: unknown;
    let cancelledAt: number | undefined;
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (received, nextMetadata) => {
            metadata = received;
            nextMetadata(received);
          },
          onReceiveMessage: (message: unknown, nextMessage) => {
            requestId = (message as { requestId?: unknown } | null)?.requestId;
            nextMessage(message);
          },
          onCancel: () => {
            cancelledAt = Date.now();
          },
        }),
      sendStatus: (sent, nextStatus) => {
        log[level](
          {
            method,
            status: statusNameOf(statusSeenByClient(sent.code, cancelledAt, call.getDeadline())),
            duration_ms: Math.round((performance.now() - started) * 100) / 100,
            request_id: requestId || undefined,
            principal: metadata && contexts.find(metadata)?.caller.principal,
          },
          'call',
        );
        nextStatus(sent);
      },
    });
  };
}
