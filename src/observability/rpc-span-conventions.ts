import type { Context } from '@opentelemetry/api';
import type { ReadableSpan, Span as SdkSpan, SpanProcessor } from '@opentelemetry/sdk-trace';
import {
  ATTR_ERROR_TYPE,
  ATTR_RPC_METHOD,
  ATTR_RPC_STATUS_CODE,
  ATTR_RPC_SYSTEM_NAME,
  RPC_SYSTEM_NAME_VALUE_GRPC,
} from '@opentelemetry/semantic-conventions';
import { status } from '@grpc/grpc-js';

/** What @opentelemetry/instrumentation-grpc (still in 0.300) writes: the RPC conventions before 1.38. */
const DEPRECATED = {
  system: 'rpc.system',
  service: 'rpc.service',
  method: 'rpc.method',
  statusCode: 'rpc.grpc.status_code',
} as const;

const GRPC_SCOPE = '@opentelemetry/instrumentation-grpc';

/** The codes the gRPC conventions make errors on a server span (`error.type`); the rest are answers. */
const SERVER_ERROR_CODES = new Set<number>([
  status.UNKNOWN,
  status.DEADLINE_EXCEEDED,
  status.UNIMPLEMENTED,
  status.INTERNAL,
  status.UNAVAILABLE,
  status.DATA_LOSS,
]);

/**
 * Rewrites the gRPC instrumentation's span attributes to the current (stable)
 * RPC semantic conventions while the span is ending, before any exporter
 * sees it: `rpc.system` → `rpc.system.name`, `rpc.service` + `rpc.method` →
 * the fully qualified `rpc.method` (`swap.v1.SwapService/ExecuteSwap`), the
 * numeric `rpc.grpc.status_code` → `rpc.status_code` by name (`OK`,
 * `FAILED_PRECONDITION`), the span name to `rpc.method`, and `error.type` for the codes a server counts as
 * errors. The deprecated attributes are removed, so dashboards and queries
 * have one name to use. The instrumentation offers no opt-in for the new
 * names (no OTEL_SEMCONV_STABILITY_OPT_IN=rpc support in this version).
 */
export class RpcSpanConventions implements SpanProcessor {
  onStart(_span: SdkSpan, _context: Context): void {}

  onEnding(span: SdkSpan): void {
    if (span.instrumentationScope.name !== GRPC_SCOPE) return;
    const attributes = span.attributes as Record<string, unknown>;
    const service = attributes[DEPRECATED.service];
    const method = attributes[DEPRECATED.method];
    const code = attributes[DEPRECATED.statusCode];
    delete attributes[DEPRECATED.system];
    delete attributes[DEPRECATED.service];
    delete attributes[DEPRECATED.statusCode];
    span.setAttribute(ATTR_RPC_SYSTEM_NAME, RPC_SYSTEM_NAME_VALUE_GRPC);
    if (typeof service === 'string' && typeof method === 'string') {
      // The span is named after rpc.method, without the instrumentation's `grpc.` prefix.
      span.setAttribute(ATTR_RPC_METHOD, `${service}/${method}`);
      span.updateName(`${service}/${method}`);
    }
    if (typeof code === 'number') {
      const name = (status as Record<number, string>)[code] ?? String(code);
      span.setAttribute(ATTR_RPC_STATUS_CODE, name);
      if (SERVER_ERROR_CODES.has(code)) span.setAttribute(ATTR_ERROR_TYPE, name);
    }
  }

  onEnd(_span: ReadableSpan): void {}

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
