import { type ServerInterceptor, ServerInterceptingCall } from '@grpc/grpc-js';
import { statusSeenByClient } from './abandoned-call';
import { statusNameOf } from './error-boundary';
import type { ServiceTelemetry } from '../observability/service-telemetry';

/** Records every call's duration by method and status as the client saw it (rpc.server.call.duration). */
export function callMetrics(telemetry: ServiceTelemetry): ServerInterceptor {
  return (methodDescriptor, call) => {
    // "/swap.v1.SwapService/ExecuteSwap" → "swap.v1.SwapService/ExecuteSwap"
    const method = methodDescriptor.path.slice(1);
    const started = performance.now();
    let cancelledAt: number | undefined;
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onCancel: () => {
            cancelledAt = Date.now();
          },
        }),
      sendStatus: (sent, next) => {
        telemetry.rpcDuration.record((performance.now() - started) / 1000, {
          'rpc.system.name': 'grpc',
          'rpc.method': method,
          'rpc.response.status_code': statusNameOf(
            statusSeenByClient(sent.code, cancelledAt, call.getDeadline()),
          ),
        });
        next(sent);
      },
    });
  };
}
