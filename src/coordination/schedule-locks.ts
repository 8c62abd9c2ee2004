import { createHash } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Span } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { preparedStatement, runPrepared } from '../db/prepared-statement';
import { type CallBudget, remainingMs } from '../domain/call-budget';
import {
  BreakerOpenError,
  CallCancelledError,
  DomainError,
  ConcurrencyConflictError,
  DeadlineExceededError,
  LockAcquireTimeoutError,
  LockNotHeldError,
  ServiceUnavailableError,
} from '../domain/errors';
import { recordOutcome } from '../observability/span-status';
import type { ServiceTelemetry } from '../observability/service-telemetry';
import type { CircuitBreaker } from './circuit-breaker';
import type { LockGuard } from './lock-guard';
import type { RedisLease, RedisLock } from './redis-lock';

export interface ScheduleLockSettings {
  /** Longest a call waits for its locks (never past its deadline). */
  waitMs: number;
  /** While Redis is unusable: serialize on advisory locks, or refuse with UNAVAILABLE. */
  fallback: 'advisory' | 'fail';
  /** Retry hint for callers refused while the breaker is open. */
  retryAfterMs: number;
}

/** One lock acquisition, as observability records it. */
export interface LockAcquisition {
  keys: number;
  backend: 'redis' | 'postgres';
  waitedMs: number;
  fencingToken: string | null;
  outcome: 'acquired' | 'timeout' | 'unavailable' | 'fallback';
}

export interface ScheduleLockStats {
  acquired: { redis: number; postgres: number };
  timeouts: number;
  lost: number;
  releaseNotHeld: number;
  fallbacks: number;
  refusedUnavailable: number;
}

// Advisory transaction locks on the same names, in one order; released with the transaction.
const ADVISORY = preparedStatement<object>(
  'advisory_locks',
  `select pg_advisory_xact_lock(hashtextextended(k, 0)) from unnest($1::text[]) as k order by k`,
);

/**
 * How long past its call's deadline a lease keeps extending itself: longer
 * than the transaction runner's grace for a hung connection plus its bounded
 * rollback, so a call that ends on time never loses its lease on the way out.
 */
const LEASE_GRACE_MS = 3_000;

/**
 * Every mutating call runs under locks on the keys it touches. Redis locks
 * (through a circuit breaker) keep replicas from wasting transactions on the
 * same rows; when Redis is absent or failing, PostgreSQL advisory transaction
 * locks on the same keys take over, or the call is refused, as configured.
 * Correctness never depends on either: the row locks and version checks in
 * PostgreSQL hold regardless, and fencing tokens stop a writer whose lease has
 * lapsed from overwriting a newer one.
 */
export class ScheduleLocks {
  private readonly counters: ScheduleLockStats = {
    acquired: { redis: 0, postgres: 0 },
    timeouts: 0,
    lost: 0,
    releaseNotHeld: 0,
    fallbacks: 0,
    refusedUnavailable: 0,
  };
  constructor(
    private readonly redis: { lock: RedisLock; breaker: CircuitBreaker } | undefined,
    private readonly settings: ScheduleLockSettings,
    private readonly log: Logger,
    private readonly telemetry: ServiceTelemetry,
  ) {}

  /**
   * Runs `work` while holding locks on `names`; always releases them. The whole
   * locked stretch is one span, so the transaction attempts nest under it.
   */
  async withLocks<T>(
    names: readonly string[],
    budget: CallBudget,
    wait: 'configured' | 'budget' | undefined,
    work: (guard: LockGuard) => Promise<T>,
  ): Promise<T> {
    return this.telemetry.tracer.startActiveSpan(
      'schedule.lock',
      { attributes: { 'lock.keys': names.length } },
      async (span) => {
        try {
          return await this.holding(names, budget, wait ?? 'configured', span, work);
        } catch (error) {
          recordOutcome(span, error);
          throw error;
        } finally {
          span.end();
        }
      },
    );
  }

  stats(): ScheduleLockStats {
    return structuredClone(this.counters);
  }

  private async holding<T>(
    names: readonly string[],
    budget: CallBudget,
    wait: 'configured' | 'budget',
    span: Span,
    work: (guard: LockGuard) => Promise<T>,
  ): Promise<T> {
    // A write that touches nothing shared (an answer recorded on its own) needs no lock.
    if (names.length === 0) return work(unlockedGuard(budget));
    const lease = this.redis ? await this.acquireRedis(names, budget, wait, span) : undefined;
    if (!lease) return work(this.advisoryGuard(names, budget, span));
    // The work under the lease is bounded by the budget (the transaction runner
    // ends an attempt whose connection hangs); the lease never outlasts it by much.
    lease.stopExtendingAt(budget.deadline + LEASE_GRACE_MS);
    // Losing the lease aborts the work with a retryable LOCK_LOST, which the
    // transaction runner checks before it commits.
    const lost = new AbortController();
    lease.signal.addEventListener(
      'abort',
      () => {
        this.counters.lost++;
        this.telemetry.locksLost.add(1);
        span.addEvent('lock.lost');
        lost.abort(
          new ConcurrencyConflictError(
            'LOCK_LOST',
            'the lock on these faculty weeks was lost before the change could commit; retry',
            0,
            { cause: lease.signal.reason },
          ),
        );
      },
      { once: true },
    );
    const signal = AbortSignal.any([budget.signal, lost.signal]);
    try {
      return await work(this.redisGuard(lease, { deadline: budget.deadline, signal }));
    } finally {
      // Not awaited: the answer never waits a Redis round trip for the release,
      // which only frees the keys sooner than their expiry would. Its command
      // goes out at once (after an extension under way, if any), and Redis runs
      // one connection's commands in order, so this replica's next call on
      // these keys finds them free.
      void this.release(lease);
    }
  }

  private async acquireRedis(
    names: readonly string[],
    budget: CallBudget,
    wait: 'configured' | 'budget',
    span: Span,
  ): Promise<RedisLease | undefined> {
    const emit = (event: LockAcquisition) => this.record(span, event);
    const { lock, breaker } = this.redis!;
    const started = performance.now();
    const waitUntil =
      wait === 'budget'
        ? budget.deadline
        : Math.min(Date.now() + this.settings.waitMs, budget.deadline);
    try {
      const lease = await breaker.protect(() => lock.acquire(names, waitUntil, budget.signal));
      this.counters.acquired.redis++;
      emit({
        keys: names.length,
        backend: 'redis',
        waitedMs: performance.now() - started,
        fencingToken: lease.fencingToken,
        outcome: 'acquired',
      });
      return lease;
    } catch (error) {
      const waitedMs = performance.now() - started;
      if (error instanceof LockAcquireTimeoutError) {
        this.counters.timeouts++;
        emit({
          keys: names.length,
          backend: 'redis',
          waitedMs,
          fencingToken: null,
          outcome: 'timeout',
        });
        // The wait was cut short by the caller's cancel (or deadline): that is
        // what happened, not contention.
        if (budget.signal.aborted)
          throw budget.signal.reason instanceof DomainError
            ? budget.signal.reason
            : new CallCancelledError();
        if (remainingMs(budget) <= 0)
          throw new DeadlineExceededError('the call ran out of time waiting for its locks');
        throw new ConcurrencyConflictError(
          'LOCK_TIMEOUT',
          'another call holds these faculty weeks; retry shortly',
          this.settings.waitMs / 4,
          { cause: error },
        );
      }
      if (!(error instanceof BreakerOpenError)) this.log.warn({ err: error }, 'redis lock failed');
      if (this.settings.fallback === 'fail') {
        this.counters.refusedUnavailable++;
        emit({
          keys: names.length,
          backend: 'redis',
          waitedMs,
          fencingToken: null,
          outcome: 'unavailable',
        });
        throw new ServiceUnavailableError(
          'LOCK_SERVICE_UNAVAILABLE',
          'the lock service is unavailable; retry later',
          this.settings.retryAfterMs,
          { cause: error },
        );
      }
      this.counters.fallbacks++;
      emit({
        keys: names.length,
        backend: 'redis',
        waitedMs,
        fencingToken: null,
        outcome: 'fallback',
      });
      return undefined;
    }
  }

  private async release(lease: RedisLease): Promise<void> {
    try {
      await this.redis!.breaker.protect(() => lease.release());
    } catch (error) {
      // The work is already committed or rolled back; an unreleased key expires on its own.
      if (error instanceof LockNotHeldError) this.counters.releaseNotHeld++;
      this.log.warn({ err: error }, 'could not release a lock');
    }
  }

  private redisGuard(lease: RedisLease, budget: CallBudget): LockGuard {
    const lock = this.redis!.lock;
    return {
      backend: 'redis',
      fencingToken: lease.fencingToken,
      fencingOwner: grantIdOf(lease.owner),
      budget,
      enter: () => Promise.resolve(),
      // Redis handed out an old token (it lost its counter); never again up to these.
      outrankedBy: (tokens) => {
        for (const token of tokens) lock.raiseFencingFloor(token);
      },
    };
  }

  private advisoryGuard(names: readonly string[], budget: CallBudget, span: Span): LockGuard {
    const sorted = [...new Set(names)].sort();
    return {
      backend: 'postgres',
      fencingToken: null,
      fencingOwner: null,
      budget,
      enter: async (em: EntityManager) => {
        const started = performance.now();
        await runPrepared(em, ADVISORY, [sorted]);
        this.counters.acquired.postgres++;
        this.record(span, {
          keys: sorted.length,
          backend: 'postgres',
          waitedMs: performance.now() - started,
          fencingToken: null,
          outcome: 'acquired',
        });
      },
      // Advisory locks are held by the transaction itself; nothing can outlive them.
      outrankedBy: () => undefined,
    };
  }

  /** Records one acquisition on the lock span and in the lock-wait histogram. */
  private record(span: Span, event: LockAcquisition): void {
    span.setAttributes({
      'lock.backend': event.backend,
      'lock.wait_ms': Math.round(event.waitedMs * 1000) / 1000,
      'lock.outcome': event.outcome,
      ...(event.fencingToken !== null && { 'lock.fencing_token': event.fencingToken }),
    });
    this.telemetry.lockWait.record(event.waitedMs / 1000, {
      backend: event.backend,
      outcome: event.outcome,
    });
  }
}

/**
 * What PostgreSQL records to name a grant: a digest of the lease's owner
 * token, never the token itself, which is what lets its holder release or
 * extend the Redis keys; a reader of faculty_week learns nothing it could use.
 */
function grantIdOf(owner: string): string {
  return createHash('sha256').update(owner).digest('base64url').slice(0, 22);
}

/** The guard of a write with no lock names: nothing to take, fence or lose. */
function unlockedGuard(budget: CallBudget): LockGuard {
  return {
    backend: 'postgres',
    fencingToken: null,
    fencingOwner: null,
    budget,
    enter: () => Promise.resolve(),
    outrankedBy: () => undefined,
  };
}
