import { Metadata, status, type StatusObject } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  CallCancelledError,
  ConcurrencyConflictError,
  DeadlineExceededError,
  DomainError,
  InvalidArgumentError,
  NotFoundError,
  OverloadedError,
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

/*
 * Size caps. An error travels in HTTP/2 trailers, and gRPC core, Java and Go
 * clients accept at most 8 KiB of them by default; beyond that the caller gets
 * RESOURCE_EXHAUSTED instead of our answer. The message is sent twice
 * (grpc-message, percent-encoded, up to 3 bytes per byte; and inside the
 * Status) and the details base64-encoded (4 bytes per 3), so: 512 bytes of
 * message (≤ 1.5 KiB on the wire) and 4 KiB of Status (≤ 5.4 KiB) stay under
 * 8 KiB with room for the other headers.
 */
/** The most bytes (UTF-8) of an error message. */
export const MAX_ERROR_MESSAGE_BYTES = 512;
/** The most bytes of the encoded google.rpc.Status in grpc-status-details-bin. */
export const MAX_STATUS_DETAILS_BYTES = 4096;
/** PreconditionFailure lists at most this many violations; ErrorInfo counts them all. */
export const MAX_LISTED_VIOLATIONS = 10;
/** The most bytes of one listed violation's text, or one ErrorInfo metadata value. */
const MAX_DETAIL_TEXT_BYTES = 200;

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
  const listed =
    error instanceof PreconditionFailedError
      ? error.violations.slice(0, MAX_LISTED_VIOLATIONS)
      : [];
  const omitted =
    error instanceof PreconditionFailedError ? error.violations.length - listed.length : 0;
  const info = pack(
    'google.rpc.ErrorInfo',
    ErrorInfo.encode({
      reason: error.reason,
      domain: ERROR_DOMAIN,
      metadata: Object.fromEntries(
        Object.entries({
          ...error.metadata,
          ...(omitted > 0 && {
            violations_total: String(listed.length + omitted),
            violations_listed: String(listed.length),
          }),
        }).map(([key, value]) => [clipBytes(key, 64), clipBytes(value, MAX_DETAIL_TEXT_BYTES)]),
      ),
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
      violations: listed.map((v) => ({
        type: clipBytes(v.reason, MAX_DETAIL_TEXT_BYTES),
        subject: clipBytes(v.subject, MAX_DETAIL_TEXT_BYTES),
        description: clipBytes(v.message, MAX_DETAIL_TEXT_BYTES),
      })),
    }).finish();
    const message =
      omitted > 0
        ? `${listed.length + omitted} rules broken (${omitted} more than PreconditionFailure lists): ${listed.map((v) => v.message).join('; ')}`
        : error.message;
    return build(status.FAILED_PRECONDITION, message, [
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
  if (error instanceof OverloadedError) {
    return build(status.RESOURCE_EXHAUSTED, error.message, [info, retryInfo(error.retryAfterMs)]);
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

/**
 * Every status leaves through here, so here the size caps hold for all of
 * them: the message is clipped, and details that would make the Status too
 * large are dropped from the last (ErrorInfo, always first, stays).
 */
function build(code: status, fullMessage: string, details: Any[]): GrpcError {
  const message = clipBytes(fullMessage, MAX_ERROR_MESSAGE_BYTES);
  let kept = details;
  let encoded = Status.encode({ code, message, details: kept }).finish();
  while (encoded.length > MAX_STATUS_DETAILS_BYTES && kept.length > 0) {
    kept = kept.slice(0, -1);
    encoded = Status.encode({ code, message, details: kept }).finish();
  }
  const metadata = new Metadata();
  metadata.set(STATUS_DETAILS_KEY, Buffer.from(encoded));
  return { code, details: message, metadata };
}

/** `text` cut to at most `maxBytes` of UTF-8, at a code point, marked with an ellipsis. */
function clipBytes(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  const ellipsis = '…';
  let bytes = Buffer.byteLength(ellipsis);
  let clipped = '';
  for (const point of text) {
    bytes += Buffer.byteLength(point);
    if (bytes > maxBytes) break;
    clipped += point;
  }
  return clipped + ellipsis;
}

/** A status code's name (`FAILED_PRECONDITION`), as logs, metrics and the audit trail record it. */
export function statusNameOf(code: status): string {
  return status[code] ?? String(code);
}
