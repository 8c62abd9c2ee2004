/**
 * Every error the service raises on purpose, in one place. Each has a stable
 * reason code that callers can branch on; `grpc/error-boundary.ts` is the one
 * place that turns them into gRPC statuses, by family (the classes directly
 * below DomainError). Anything thrown that is not a DomainError is a bug and
 * leaves as INTERNAL.
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

// ── The request itself ─────────────────────────────────────────────────────

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

/** The caller gave up on the call (it cancelled it). Maps to CANCELLED. */
export class CallCancelledError extends DomainError {
  readonly reason = 'CANCELLED';
  constructor() {
    super('the caller cancelled the call');
  }
}

// ── Who is calling ─────────────────────────────────────────────────────────

/**
 * Why a call's credentials did not prove who is calling. Each says what to fix
 * without echoing the credential itself.
 */
export type UnauthenticatedReason =
  | 'MISSING_CREDENTIALS'
  | 'INVALID_TOKEN'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_NOT_YET_VALID'
  | 'WRONG_AUDIENCE'
  | 'WRONG_ISSUER'
  | 'UNSUPPORTED_ALGORITHM'
  | 'UNKNOWN_KEY'
  | 'UNTRUSTED_CERTIFICATE';

/**
 * Authentication is on and the call carried no credential that proves a
 * principal. Maps to UNAUTHENTICATED.
 */
export class UnauthenticatedError extends DomainError {
  constructor(
    readonly reason: UnauthenticatedReason,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, {}, options);
  }
}

/** The principal is known but its roles do not allow what it asked. Maps to PERMISSION_DENIED. */
export abstract class PermissionDeniedError extends DomainError {
  constructor(
    readonly method: string,
    message: string,
  ) {
    super(message, { method });
  }
}

/** No role of the principal grants the method. */
export class MethodNotAllowedError extends PermissionDeniedError {
  readonly reason = 'METHOD_NOT_ALLOWED';
  constructor(principal: string, method: string) {
    super(method, `${principal} may not call ${method}`);
  }
}

/** The call names a person it acts for (`x-on-behalf-of`), and no role of the principal grants `delegate`. */
export class DelegationNotAllowedError extends PermissionDeniedError {
  readonly reason = 'DELEGATION_NOT_ALLOWED';
  constructor(principal: string, method: string) {
    super(method, `${principal} may not act on behalf of another person`);
  }
}

// ── The schedule ───────────────────────────────────────────────────────────

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

// ── Concurrency: retrying the whole call is likely to succeed ─────────────

export type ConcurrencyReason =
  'CONCURRENCY_CONFLICT' | 'LOCK_LOST' | 'LOCK_TIMEOUT' | 'STALE_FENCING_TOKEN';

/**
 * A concurrent writer won and retrying the whole call is likely to succeed.
 * Maps to ABORTED with a retry delay.
 */
export class ConcurrencyConflictError extends DomainError {
  constructor(
    readonly reason: ConcurrencyReason,
    message: string,
    readonly retryAfterMs: number,
    options?: ErrorOptions,
  ) {
    super(message, {}, options);
  }
}

/** The distributed lock could not be had within the wait budget: others hold it. */
export class LockAcquireTimeoutError extends ConcurrencyConflictError {
  constructor(
    readonly keys: readonly string[],
    readonly attempts: number,
    readonly waitedMs: number,
  ) {
    super(
      'LOCK_TIMEOUT',
      `could not lock ${keys.join(', ')} after ${attempts} attempts in ${Math.round(waitedMs)} ms`,
      0,
    );
  }
}

/** A lease stopped being ours while work ran under it (expired, or an extension failed). */
export class LockLostError extends ConcurrencyConflictError {
  constructor(
    readonly keys: readonly string[],
    readonly why: string,
    options?: ErrorOptions,
  ) {
    super('LOCK_LOST', `lost the lock on ${keys.join(', ')}: ${why}`, 0, options);
  }
}

/** Release or extension of a lock that this owner does not hold (any more). */
export class LockNotHeldError extends ConcurrencyConflictError {
  constructor(
    readonly keys: readonly string[],
    readonly heldCount: number,
  ) {
    super(
      'LOCK_LOST',
      `released a lock it no longer held: ${heldCount} of ${keys.length} keys were still ours`,
      0,
    );
  }
}

// ── Time and availability ──────────────────────────────────────────────────

/** The call's time budget ran out before the work could commit. Maps to DEADLINE_EXCEEDED. */
export class DeadlineExceededError extends DomainError {
  readonly reason = 'DEADLINE_EXCEEDED';
}

/** A dependency is down and the call should be retried later. Maps to UNAVAILABLE. */
export class ServiceUnavailableError extends DomainError {
  constructor(
    readonly reason:
      | 'LOCK_SERVICE_UNAVAILABLE'
      | 'DATABASE_UNAVAILABLE'
      | 'IDENTITY_PROVIDER_UNAVAILABLE'
      | 'COMMIT_OUTCOME_UNKNOWN',
    message: string,
    readonly retryAfterMs: number,
    options?: ErrorOptions,
  ) {
    super(message, {}, options);
  }
}

/**
 * The process already runs as many calls as it may; this one was shed before
 * it did any work. Maps to RESOURCE_EXHAUSTED with a retry delay.
 */
export class OverloadedError extends DomainError {
  readonly reason = 'OVERLOADED';
  constructor(
    limit: number,
    readonly retryAfterMs: number,
  ) {
    super(`the server is running its limit of ${limit} calls; retry after the delay`);
  }
}

/** A circuit breaker is open: the dependency behind it is not even tried. */
export class BreakerOpenError extends ServiceUnavailableError {
  constructor(breaker: string, retryAfterMs: number, options?: ErrorOptions) {
    super('LOCK_SERVICE_UNAVAILABLE', `${breaker} circuit breaker is open`, retryAfterMs, options);
  }
}

/**
 * The connection failed while COMMIT was under way, so whether the change
 * committed is unknown. Retrying with the same request id tells: it replays
 * the answer if the change committed, and runs it if it did not.
 */
export class CommitOutcomeUnknownError extends ServiceUnavailableError {
  constructor(retryAfterMs: number, options?: ErrorOptions) {
    super(
      'COMMIT_OUTCOME_UNKNOWN',
      'the database connection failed during COMMIT, so the change may or may not have committed; retry with the same request_id: it replays the answer if it did, and runs the change if it did not',
      retryAfterMs,
      options,
    );
  }
}
