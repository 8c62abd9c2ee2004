/**
 * The service's domain errors. Each has a stable reason code that callers can
 * branch on; `grpc/error-mapper.ts` is the one place that turns them into gRPC
 * statuses. Anything thrown that is not one of these is a bug and leaves as INTERNAL.
 */

/** One broken rule, as reported by validation and by FAILED_PRECONDITION errors. */
export interface RuleViolation {
  /** Stable code such as DOUBLE_BOOKING. */
  reason: string;
  message: string;
  /** What the rule was about, e.g. `faculty/<id>/week/2027-01-04`. */
  subject: string;
}

export abstract class DomainError extends Error {
  abstract readonly reason: string;
  /** Extra facts for the caller, sent as ErrorInfo metadata. */
  readonly metadata: Record<string, string>;
  constructor(message: string, metadata: Record<string, string> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.metadata = metadata;
  }
}

/** A request field is missing or malformed. Maps to INVALID_ARGUMENT. */
export class InvalidArgumentError extends DomainError {
  readonly reason: string;
  constructor(
    readonly field: string,
    message: string,
    reason = 'INVALID_ARGUMENT',
  ) {
    super(`${field}: ${message}`, { field });
    this.reason = reason;
  }
}

/** The thing a request names does not exist. Maps to NOT_FOUND. */
export class NotFoundError extends DomainError {
  constructor(
    readonly reason: 'SWAP_NOT_FOUND' | 'FACULTY_NOT_FOUND' | 'CONFLICT_NOT_FOUND',
    message: string,
    metadata: Record<string, string> = {},
  ) {
    super(message, metadata);
  }
}

/**
 * The request is well-formed but the schedule does not allow it. Carries every
 * rule broken, not just the first; `reason` is the first one's code.
 * Maps to FAILED_PRECONDITION.
 */
export class PreconditionFailedError extends DomainError {
  readonly reason: string;
  constructor(readonly violations: readonly RuleViolation[]) {
    const first = violations[0];
    if (!first) throw new TypeError('PreconditionFailedError needs at least one violation');
    super(
      violations.length === 1
        ? first.message
        : `${violations.length} rules broken: ${violations.map((v) => v.message).join('; ')}`,
    );
    this.reason = first.reason;
  }
}

/**
 * A concurrent writer won and retrying the whole call is likely to succeed.
 * Maps to ABORTED with a retry delay.
 */
export class ConcurrencyConflictError extends DomainError {
  constructor(
    readonly reason: 'CONCURRENCY_CONFLICT' | 'LOCK_LOST' | 'LOCK_TIMEOUT' | 'STALE_FENCING_TOKEN',
    message: string,
    readonly retryAfterMs: number,
    options?: ErrorOptions,
  ) {
    super(message, {}, options);
  }
}

/** The call's time budget ran out before the work could commit. Maps to DEADLINE_EXCEEDED. */
export class DeadlineExceededError extends DomainError {
  readonly reason = 'DEADLINE_EXCEEDED';
}

/** A dependency is down and the call should be retried later. Maps to UNAVAILABLE. */
export class ServiceUnavailableError extends DomainError {
  constructor(
    readonly reason: 'LOCK_SERVICE_UNAVAILABLE' | 'DATABASE_UNAVAILABLE',
    message: string,
    readonly retryAfterMs: number,
    options?: ErrorOptions,
  ) {
    super(message, {}, options);
  }
}
