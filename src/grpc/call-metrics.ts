import { type ServerInterceptor, ServerInterceptingCall } from '@grpc/grpc-js';
import {
  ATTR_RPC_METHOD,
  ATTR_RPC_STATUS_CODE,
  ATTR_RPC_SYSTEM_NAME,
  RPC_SYSTEM_NAME_VALUE_GRPC,
} from '@opentelemetry/semantic-conventions';
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
          [ATTR_RPC_SYSTEM_NAME]: RPC_SYSTEM_NAME_VALUE_GRPC,
          [ATTR_RPC_METHOD]: method,
          [ATTR_RPC_STATUS_CODE]: statusNameOf(
            statusSeenByClient(sent.code, cancelledAt, call.getDeadline()),
          ),
        });
        next(sent);
      },
    });
  };
}
