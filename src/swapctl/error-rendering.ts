import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import {
  BadRequest,
  ErrorInfo,
  PreconditionFailure,
  RetryInfo,
} from '../generated/google/rpc/error_details';
import { Status } from '../generated/google/rpc/status';
import { exitCodeOfStatus } from './exit-codes';

/** What a failed call said, decoded from its status and `grpc-status-details-bin`. */
export interface CallFailure {
  /** The status name, e.g. FAILED_PRECONDITION. */
  status: string;
  code: number;
  exitCode: number;
  message: string;
  /** ErrorInfo's reason; empty when the server sent none. */
  reason: string;
  metadata: Record<string, string>;
  /** PreconditionFailure's violations: every rule broken. */
  violations: Array<{ type: string; subject: string; description: string }>;
  /** BadRequest's field violations: what to fix. */
  fieldViolations: Array<{ field: string; description: string }>;
  /** RetryInfo's delay in milliseconds; absent when the server gave none. */
  retryDelayMs: number | undefined;
}

/** Whether `error` is a grpc-js call error (it carries a numeric status code and metadata). */
export function isServiceError(error: unknown): error is ServiceError {
  return (
    error instanceof Error &&
    typeof (error as Partial<ServiceError>).code === 'number' &&
    (error as Partial<ServiceError>).metadata instanceof Metadata
  );
}

/** Decodes a failed call; details that do not parse are left out rather than thrown. */
export function failureOf(error: ServiceError): CallFailure {
  const failure: CallFailure = {
    status: status[error.code] ?? `STATUS_${error.code}`,
    code: error.code,
    exitCode: exitCodeOfStatus(error.code),
    message: error.details,
    reason: '',
    metadata: {},
    violations: [],
    fieldViolations: [],
    retryDelayMs: undefined,
  };
  const raw = error.metadata.get('grpc-status-details-bin')[0];
  if (!Buffer.isBuffer(raw)) return failure;
  try {
    for (const any of Status.decode(raw).details) {
      const type = any.typeUrl.slice(any.typeUrl.lastIndexOf('/') + 1);
      if (type === 'google.rpc.ErrorInfo') {
        const info = ErrorInfo.decode(any.value);
        failure.reason = info.reason;
        failure.metadata = info.metadata;
      } else if (type === 'google.rpc.PreconditionFailure') {
        failure.violations.push(...PreconditionFailure.decode(any.value).violations);
      } else if (type === 'google.rpc.BadRequest') {
        failure.fieldViolations.push(
          ...BadRequest.decode(any.value).fieldViolations.map(({ field, description }) => ({
            field,
            description,
          })),
        );
      } else if (type === 'google.rpc.RetryInfo') {
        const delay = RetryInfo.decode(any.value).retryDelay;
        if (delay) failure.retryDelayMs = Number(delay.seconds) * 1000 + delay.nanos / 1e6;
      }
    }
  } catch {
    // A status that does not decode still has its code and message, which is what matters.
  }
  return failure;
}

/** The failure as lines for a person: status, message, reason, each violation, retry delay. */
export function renderFailure(failure: CallFailure): string {
  const lines = [`error: ${failure.status}: ${failure.message}`];
  if (failure.reason) lines.push(`  reason: ${failure.reason}`);
  for (const [key, value] of Object.entries(failure.metadata)) lines.push(`  ${key}: ${value}`);
  for (const v of failure.violations) {
    lines.push(`  violation ${v.type}${v.subject ? ` (${v.subject})` : ''}: ${v.description}`);
  }
  for (const f of failure.fieldViolations) lines.push(`  field ${f.field}: ${f.description}`);
  if (failure.retryDelayMs !== undefined)
    lines.push(`  retry after: ${Math.round(failure.retryDelayMs)} ms`);
  lines.push(`  exit code: ${failure.exitCode}`);
  return lines.join('\n');
}
