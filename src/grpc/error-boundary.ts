import { Metadata, status, type StatusObject } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  CallCancelledError,
  ConcurrencyConflictError,
  DeadlineExceededError,
  DomainError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  PreconditionFailedError,
  ServiceUnavailableError,
  UnauthenticatedError,
} from '../domain/errors';
import { type Any } from '../generated/google/protobuf/any';
import {
  BadRequest,
  ErrorInfo,
  PreconditionFailure,
  RetryInfo,
} from '../generated/google/rpc/error_details';
import { Status } from '../generated/google/rpc/status';

/** The ErrorInfo domain that scopes our reason codes. */
export const ERROR_DOMAIN = 'swap-service.residency.v1';
const STATUS_DETAILS_KEY = 'grpc-status-details-bin';

export type GrpcError = Pick<StatusObject, 'code' | 'details' | 'metadata'>;

/**
 * The one place where errors become gRPC statuses. Domain errors carry their
 * reason code in google.rpc.ErrorInfo, plus BadRequest, PreconditionFailure or
 * RetryInfo as fits. Anything else is a bug: it is logged in full and leaves as
 * a bare INTERNAL, so no internals reach the caller.
 */
export function toGrpcError(error: unknown, log: Logger): GrpcError {
  if (!(error instanceof DomainError)) {
    log.error({ err: error }, 'unexpected error');
    return build(status.INTERNAL, 'internal error', []);
  }
  const info = pack(
    'google.rpc.ErrorInfo',
    ErrorInfo.encode({
      reason: error.reason,
      domain: ERROR_DOMAIN,
      metadata: error.metadata,
    }).finish(),
  );
  if (error instanceof InvalidArgumentError) {
    const badRequest = BadRequest.encode({
      fieldViolations: [{ field: error.field, description: error.message, reason: error.reason }],
    }).finish();
    return build(status.INVALID_ARGUMENT, error.message, [
      info,
      pack('google.rpc.BadRequest', badRequest),
    ]);
  }
  if (error instanceof NotFoundError) return build(status.NOT_FOUND, error.message, [info]);
  if (error instanceof UnauthenticatedError)
    return build(status.UNAUTHENTICATED, error.message, [info]);
  if (error instanceof PermissionDeniedError)
    return build(status.PERMISSION_DENIED, error.message, [info]);
  if (error instanceof CallCancelledError) return build(status.CANCELLED, error.message, [info]);
  if (error instanceof PreconditionFailedError) {
    const failure = PreconditionFailure.encode({
      violations: error.violations.map((v) => ({
        type: v.reason,
        subject: v.subject,
        description: v.message,
      })),
    }).finish();
    return build(status.FAILED_PRECONDITION, error.message, [
      info,
      pack('google.rpc.PreconditionFailure', failure),
    ]);
  }
  if (error instanceof ConcurrencyConflictError) {
    return build(status.ABORTED, error.message, [info, retryInfo(error.retryAfterMs)]);
  }
  if (error instanceof DeadlineExceededError)
    return build(status.DEADLINE_EXCEEDED, error.message, [info]);
  if (error instanceof ServiceUnavailableError) {
    return build(status.UNAVAILABLE, error.message, [info, retryInfo(error.retryAfterMs)]);
  }
  log.error({ err: error }, 'domain error without a gRPC mapping');
  return build(status.INTERNAL, 'internal error', []);
}

function retryInfo(ms: number): Any {
  const delay = Math.max(0, Math.round(ms));
  const encoded = RetryInfo.encode({
    retryDelay: { seconds: String(Math.floor(delay / 1000)), nanos: (delay % 1000) * 1_000_000 },
  }).finish();
  return pack('google.rpc.RetryInfo', encoded);
}

function pack(typeName: string, value: Uint8Array): Any {
  return { typeUrl: `type.googleapis.com/${typeName}`, value: Buffer.from(value) };
}

function build(code: status, message: string, details: Any[]): GrpcError {
  const metadata = new Metadata();
  metadata.set(STATUS_DETAILS_KEY, Buffer.from(Status.encode({ code, message, details }).finish()));
  return { code, details: message, metadata };
}

/** A status code's name (`FAILED_PRECONDITION`), as logs, metrics and the audit trail record it. */
export function statusNameOf(code: status): string {
  return status[code] ?? String(code);
}
