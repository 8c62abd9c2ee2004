import { type ServerInterceptor, ServerInterceptingCall } from '@grpc/grpc-js';
import { statusNameOf } from './error-boundary';
import type { ServiceTelemetry } from '../observability/service-telemetry';

/** Records every call's duration by method and status (rpc.server.call.duration). */
export function callMetrics(telemetry: ServiceTelemetry): ServerInterceptor {
  return (methodDescriptor, call) => {
    // "/swap.v1.SwapService/ExecuteSwap" → "swap.v1.SwapService/ExecuteSwap"
    const method = methodDescriptor.path.slice(1);
    const started = performance.now();
    return new ServerInterceptingCall(call, {
      sendStatus: (sent, next) => {
        telemetry.rpcDuration.record((performance.now() - started) / 1000, {
          'rpc.system.name': 'grpc',
          'rpc.method': method,
          'rpc.response.status_code': statusNameOf(sent.code),
        });
        next(sent);
      },
    });
  };
}
