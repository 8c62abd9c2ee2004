import { type Span, SpanStatusCode } from '@opentelemetry/api';
import type { Context } from '@opentelemetry/api';
import type { ReadableSpan, Span as SdkSpan, SpanProcessor } from '@opentelemetry/sdk-trace';
import { ATTR_RPC_STATUS_CODE } from '@opentelemetry/semantic-conventions';
import {
  ConcurrencyConflictError,
  DeadlineExceededError,
  DomainError,
  ServiceUnavailableError,
} from '../domain/errors';

/**
 * gRPC codes that are answers, not failures: the caller asked for something
 * the schedule does not allow, or lost a race it can retry. Only the others
 * (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
 * DATA_LOSS, RESOURCE_EXHAUSTED) mark a span as an error.
 */
const EXPECTED_GRPC_CODES = new Set([
  'CANCELLED',
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNAUTHENTICATED',
]);

/** True when an error should paint its span red. */
export function isFailure(error: unknown): boolean {
  if (!(error instanceof DomainError)) return true;
  return error instanceof DeadlineExceededError || error instanceof ServiceUnavailableError;
}

/** Records how a span's work ended: expected business outcomes stay unset. */
export function recordOutcome(span: Span, error: unknown): void {
  if (error instanceof DomainError) {
    span.setAttribute('app.error.reason', error.reason);
  }
  if (isFailure(error)) {
    span.recordException(error instanceof Error ? error : new Error(String(error)));
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : String(error),
    });
  } else if (error instanceof ConcurrencyConflictError) {
    span.setAttribute('app.retryable', true);
  }
}

/**
 * The gRPC instrumentation marks every non-OK status as an error. This
 * processor, run while a span is ending, clears that for the expected codes,
 * so a rejected swap does not look like an outage in Jaeger.
 */
export class ExpectedGrpcOutcomes implements SpanProcessor {
  onStart(_span: SdkSpan, _context: Context): void {}

  onEnding(span: SdkSpan): void {
    // Named by RpcSpanConventions, which runs before this processor.
    const code = span.attributes[ATTR_RPC_STATUS_CODE];
    if (
      typeof code === 'string' &&
      EXPECTED_GRPC_CODES.has(code) &&
      span.status.code === SpanStatusCode.ERROR
    ) {
      // setStatus() ignores UNSET by design, so the field is reset directly,
      // while the span is still ending and before any exporter sees it.
      (span as unknown as { status: { code: SpanStatusCode } }).status = {
        code: SpanStatusCode.UNSET,
      };
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
