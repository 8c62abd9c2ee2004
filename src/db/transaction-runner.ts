import { setTimeout as sleep } from 'node:timers/promises';
import { IsolationLevel, OptimisticLockError } from '@mikro-orm/core';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Client } from 'pg';
import { type CallBudget, remainingMs } from '../domain/call-budget';
import {
  CallCancelledError,
  CommitOutcomeUnknownError,
  ConcurrencyConflictError,
  DeadlineExceededError,
  DomainError,
  ServiceUnavailableError,
} from '../domain/errors';
import { isFailure, recordOutcome } from '../observability/span-status';
import type { ServiceTelemetry } from '../observability/service-telemetry';
import { AttemptLimit } from './attempt-limit';
import { preparedStatement, runPrepared } from './prepared-statement';
import { isConnectionFailure, isPoolTimeout } from './connection-failure';
import { connectionOf, destroyConnection } from './hung-connection';
import { emptyTransactionStats, type TransactionStats } from './transaction-stats';

/** Retry and timeout settings; see the TX_* variables in `config.ts`. */
export interface TransactionSettings {
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Ceiling on lock_timeout and statement_timeout, whatever the budget. */
  timeoutCeilingMs: number;
  /**
   * What every pooled connection's session already sets both timeouts to
   * (`sessionTimeoutMs` of the ORM): an attempt whose own would be the same
   * (it has at least the ceiling left, and the ceiling is this) sends no
   * settings of its own, and saves the round trip.
   */
  sessionTimeoutMs?: number;
}

export interface UnitOfWorkOptions {
  /** Defaults to READ COMMITTED: writers serialize on explicit row locks instead. */
  isolationLevel?: IsolationLevel;
  readOnly?: boolean;
}

/** Work run inside one transaction attempt, on an EntityManager of its own. */
export type UnitOfWork<T> = (em: EntityManager, attempt: number) => Promise<T>;

/**
 * Why an attempt failed in a way that a fresh attempt can fix, or undefined.
 * Keys are the labels used in stats and metrics.
 */
export function retryReasonOf(error: unknown): string | undefined {
  if (error instanceof OptimisticLockError) return 'optimistic_lock';
  switch ((error as { code?: unknown } | null)?.code) {
    case '40001':
      return 'serialization_failure';
    case '40P01':
      return 'deadlock_detected';
    case '55P03':
      return 'lock_not_available';
    default:
      return undefined;
  }
}

// Both timeouts for this transaction only (set_config's `true`: SET LOCAL).
const SET_TIMEOUTS = preparedStatement<object>(
  'transaction_timeouts',
  `select set_config('lock_timeout', $1, true), set_config('statement_timeout', $1, true)`,
);

const QUERY_CANCELED = '57014';
/**
 * How long past its budget an attempt waits for a reply before it counts its
 * connection as hung: PostgreSQL's own timeouts end every statement by the
 * budget, so their error reply is all that may still be on its way.
 */
export const HUNG_REPLY_GRACE_MS = 1000;
/** How soon a caller may try again after the database connection failed. */
const RECONNECT_RETRY_MS = 1000;

/** The COMMIT of an attempt failed on its connection: whether it committed is unknown. */
class CommitInterrupted extends Error {}

/**
 * Runs units of work: each attempt on a fresh EntityManager fork, in its own
 * transaction, with SQL timeouts derived from the caller's budget. Retryable
 * failures (serialization, deadlock, lock timeout, stale version) are retried
 * with exponential backoff and full jitter while attempts and budget remain.
 * Every attempt either commits or rolls back before the next begins, so no
 * transaction or pooled connection outlives a call.
 */
export class TransactionRunner {
  private readonly counters = emptyTransactionStats();

  constructor(
    private readonly orm: MikroORM,
    private readonly settings: TransactionSettings,
    private readonly telemetry: ServiceTelemetry,
    private readonly random: () => number = Math.random,
  ) {}

  /** Runs `work` in a transaction until it commits, fails for good, or the budget is spent. */
  async transactionally<T>(
    budget: CallBudget,
    work: UnitOfWork<T>,
    options: UnitOfWorkOptions = {},
  ): Promise<T> {
    const startedAt = performance.now();
    this.counters.started++;
    let outcome = 'failed';
    try {
      for (let attempt = 1; ; attempt++) {
        this.assertTimeLeft(budget);
        try {
          const result = await this.tracedAttempt(budget, work, attempt, options);
          this.counters.committed++;
          outcome = 'committed';
          return result;
        } catch (error) {
          this.counters.rolledBack++;
          const reason = retryReasonOf(error);
          if (reason === undefined) {
            const final = this.translate(error, budget);
            if (final instanceof DeadlineExceededError) outcome = 'deadline_exceeded';
            else if (!isFailure(final)) outcome = 'rejected';
            throw final;
          }
          const delay = this.backoff(attempt);
          if (attempt >= this.settings.maxAttempts) {
            this.counters.exhausted++;
            outcome = 'exhausted';
            throw new ConcurrencyConflictError(
              'CONCURRENCY_CONFLICT',
              `gave up after ${attempt} attempts that each lost to a concurrent writer (${reason}); retry the call`,
              delay,
              { cause: error },
            );
          }
          if (remainingMs(budget) <= delay) {
            outcome = 'deadline_exceeded';
            throw this.outOfTime(
              `the call ran out of time after ${attempt} attempt(s) (${reason})`,
              error,
            );
          }
          this.counters.retries[reason] = (this.counters.retries[reason] ?? 0) + 1;
          this.telemetry.retries.add(1, { reason });
          await sleep(delay, undefined, { signal: budget.signal }).catch(() => {
            throw this.abortedError(budget);
          });
        }
      }
    } finally {
      const elapsed = performance.now() - startedAt;
      const d = this.counters.durationMs;
      d.count++;
      d.total += elapsed;
      d.max = Math.max(d.max, elapsed);
      this.telemetry.transactions.add(1, { outcome });
      this.telemetry.transactionDuration.record(elapsed / 1000, { outcome });
    }
  }

  /**
   * Runs `work` (one read statement, such as a key lookup or a page) once,
   * outside any transaction, with the same bounds and the same translation of
   * database failures as {@link transactionally}: a lost or hung connection is
   * UNAVAILABLE, not a bug, a statement past the budget DEADLINE_EXCEEDED, and
   * nothing outlives the budget. A single statement is one snapshot of its own,
   * so BEGIN READ ONLY and COMMIT would only add two round trips (and two pg
   * spans) to it. `work` gets an EntityManager pinned to one pooled
   * connection, which is what lets a hung read's connection be found and
   * destroyed; it must send a single statement, since two would see two
   * snapshots.
   *
   * Only when the call has less time left than the ceiling (the session's own
   * timeouts would outlast it) is the read wrapped in a read-only transaction
   * after all: that is the one place its shorter timeouts can be set.
   */
  async outsideTransaction<T>(
    budget: CallBudget,
    work: (em: EntityManager) => Promise<T>,
  ): Promise<T> {
    this.assertTimeLeft(budget);
    try {
      if (this.statementTimeoutFor(budget) !== this.settings.sessionTimeoutMs)
        return await this.attempt(budget, (em) => work(em), 1, { readOnly: true });
      return await this.singleStatement(budget, work);
    } catch (error) {
      throw this.translate(error, budget);
    }
  }

  /**
   * Runs `work` on a savepoint of the transaction that `em` is in. If it fails,
   * only its own changes are undone and the error is rethrown for the caller to
   * handle; the outer transaction can still commit. `work` gets an
   * EntityManager with an identity map of its own: it must load, through it,
   * whatever it changes.
   */
  async savepoint<T>(em: EntityManager, work: (em: EntityManager) => Promise<T>): Promise<T> {
    if (!em.isInTransaction()) throw new Error('savepoint() needs an open transaction');
    // The savepoint's fork shares `em`'s identity map, so its flush would also
    // write the caller's pending changes inside the savepoint; rolling it back
    // would then undo them while `em` believes them written, and they would be
    // silently lost. Flushing first keeps them in the outer transaction.
    await em.flush();
    // A fresh identity map for the nested work: it loads its own instances, so
    // a change it abandons, or a flush its savepoint undoes, never lingers in
    // the caller's entities (a stale version there would fail every retry).
    return em.transactional(work, { clear: true });
  }

  /** A snapshot of the counters. */
  stats(): TransactionStats {
    return structuredClone(this.counters);
  }

  /** One attempt, as its own span: attempt number, isolation, outcome, and why it was retried. */
  private tracedAttempt<T>(
    budget: CallBudget,
    work: UnitOfWork<T>,
    attempt: number,
    options: UnitOfWorkOptions,
  ): Promise<T> {
    const isolation = options.isolationLevel ?? IsolationLevel.READ_COMMITTED;
    return this.telemetry.tracer.startActiveSpan(
      'db.transaction',
      {
        attributes: {
          'db.system.name': 'postgresql',
          'swap.tx.attempt': attempt,
          'swap.tx.isolation_level': isolation,
          'swap.tx.read_only': options.readOnly ?? false,
        },
      },
      async (span) => {
        try {
          const result = await this.attempt(budget, work, attempt, options);
          span.setAttribute('swap.tx.outcome', 'committed');
          return result;
        } catch (error) {
          const reason = retryReasonOf(error);
          const sqlState = (error as { code?: unknown } | null)?.code;
          if (typeof sqlState === 'string') span.setAttribute('db.response.status_code', sqlState);
          if (reason) {
            // A retry is the toolkit working as designed; it does not make the span an error.
            span.setAttribute('swap.tx.outcome', 'retry');
            span.addEvent('transaction.retry', {
              'swap.tx.retry_reason': reason,
              ...(typeof sqlState === 'string' && { 'db.response.status_code': sqlState }),
            });
          } else {
            span.setAttribute('swap.tx.outcome', 'rolled_back');
            recordOutcome(span, this.translate(error, budget, false));
          }
          throw error;
        } finally {
          span.end();
        }
      },
    );
  }

  private async attempt<T>(
    budget: CallBudget,
    work: UnitOfWork<T>,
    attempt: number,
    options: UnitOfWorkOptions,
  ): Promise<T> {
    // However its connection behaves, the attempt is over by its budget (and
    // never later than the ceiling on its statements) plus a grace for the
    // reply PostgreSQL sends when its own timeouts fire. No reply by then
    // means the connection is hung (a partition swallows it; statement_timeout
    // is server-side and cannot help): it is destroyed rather than awaited.
    const limit = new AttemptLimit(
      Math.min(budget.deadline, Date.now() + this.settings.timeoutCeilingMs) + HUNG_REPLY_GRACE_MS,
    );
    const em = this.orm.em.fork({ clear: true, useContext: false });
    try {
      const begun = em.begin({
        isolationLevel: options.isolationLevel ?? IsolationLevel.READ_COMMITTED,
        readOnly: options.readOnly ?? false,
      });
      try {
        await limit.within(begun);
      } catch (error) {
        if (!limit.expired) throw error;
        // Still waiting for a pooled connection (or for BEGIN): whatever comes
        // late is rolled back and released, and the caller hears now.
        begun.then(
          () => void this.closeAbandoned(em),
          () => undefined,
        );
        throw this.hung(budget, 'no database connection came free in time; retry shortly', 250);
      }
      // The transaction is idle here, so the lookup does not wait on a statement.
      const connection = await connectionOf(em).catch(() => undefined);
      limit.onExpiry(() => destroyConnection(connection));
      const phase = { committing: false };
      const body = this.run(em, connection, budget, work, attempt, options, phase);
      // The body settles on its own once its connection is destroyed; nobody awaits it then.
      body.catch(() => undefined);
      try {
        return await limit.within(body);
      } catch (error) {
        if (!limit.expired) throw error;
        if (phase.committing && !options.readOnly)
          throw new CommitInterrupted('COMMIT got no reply in time', { cause: error });
        throw this.hung(
          budget,
          'the database did not answer in time and nothing was committed; retry shortly',
          RECONNECT_RETRY_MS,
        );
      }
    } finally {
      limit.clear();
    }
  }

  /** The attempt's transaction, once begun: timeouts, work, flush, COMMIT, or ROLLBACK. */
  private async run<T>(
    em: EntityManager,
    connection: Client | undefined,
    budget: CallBudget,
    work: UnitOfWork<T>,
    attempt: number,
    options: UnitOfWorkOptions,
    phase: { committing: boolean },
  ): Promise<T> {
    let open = true;
    try {
      const timeout = this.statementTimeoutFor(budget);
      if (timeout !== this.settings.sessionTimeoutMs)
        await runPrepared(em, SET_TIMEOUTS, [`${timeout}ms`]);
      const result = await work(em, attempt);
      await em.flush();
      // The last moment to refuse: after this, the caller may be told of a
      // failure that nonetheless committed, or a lost lock may no longer protect us.
      if (budget.signal.aborted) throw this.abortedError(budget);
      if (remainingMs(budget) <= 0) throw this.outOfTime('the call ran out of time before commit');
      phase.committing = true;
      try {
        await em.commit();
      } catch (error) {
        // A refused COMMIT (serialization, deferred constraint) rolled back for
        // sure; a connection lost during it may have committed. A read-only
        // attempt changed nothing either way.
        if (!options.readOnly && isConnectionFailure(error))
          throw new CommitInterrupted('COMMIT failed on its connection', { cause: error });
        throw error;
      }
      // Only now: a COMMIT that fails still holds its pooled connection (kysely
      // releases it only on a commit or rollback that succeeds), so the
      // rollback below is what returns it.
      open = false;
      return result;
    } finally {
      if (open) await this.closeAbandoned(em, connection);
    }
  }

  /**
   * `work` on one pooled connection, without a transaction, bounded as an
   * attempt is: given up (and the connection destroyed) by the budget, never
   * later than the ceiling, plus the grace for PostgreSQL's timeout reply.
   */
  private async singleStatement<T>(
    budget: CallBudget,
    work: (em: EntityManager) => Promise<T>,
  ): Promise<T> {
    const limit = new AttemptLimit(
      Math.min(budget.deadline, Date.now() + this.settings.timeoutCeilingMs) + HUNG_REPLY_GRACE_MS,
    );
    const pinned = { acquired: false, late: false };
    const outcome: { done?: { value: T }; failed?: { error: unknown } } = {};
    try {
      const database = this.orm.em.getConnection();
      const body = database
        // MikroORM connects lazily, checking the connection with a query of its
        // own on a second pooled connection: done first, while none is pinned
        // (in a pool of one, the check would otherwise wait on the read).
        .ensureConnection()
        // kysely hands the callback one connection and releases it as the callback settles.
        .then(() =>
          database
            .getClient()
            .connection()
            .execute(async (db) => {
              // Came free after the caller was told: released unused.
              if (pinned.late) return undefined;
              pinned.acquired = true;
              const em = this.orm.em.fork({ clear: true, useContext: false });
              // MikroORM runs an EntityManager's statements on its transaction
              // context; a connection-bound Kysely serves as one, minus BEGIN.
              em.setTransactionContext(db);
              const connection = await connectionOf(em).catch(() => undefined);
              limit.onExpiry(() => destroyConnection(connection));
              try {
                return (outcome.done = { value: await work(em) });
              } catch (error) {
                outcome.failed = { error };
                throw error;
              }
            }),
        )
        // A connection that failed under the read was already handed back to be
        // discarded (`releaseBrokenConnections`), so kysely's own release of it
        // throws; what the read itself came to is the answer.
        .catch((error: unknown) => {
          if (outcome.done) return outcome.done;
          throw outcome.failed ? outcome.failed.error : error;
        });
      // The body settles on its own once its connection is destroyed; nobody awaits it then.
      body.catch(() => undefined);
      try {
        const result = await limit.within(body);
        if (!result) throw new Error('a pinned read ran without its connection');
        return result.value;
      } catch (error) {
        if (!limit.expired) throw error;
        pinned.late = true;
        if (!pinned.acquired)
          throw this.hung(budget, 'no database connection came free in time; retry shortly', 250);
        throw this.hung(
          budget,
          'the database did not answer the read in time; retry shortly',
          RECONNECT_RETRY_MS,
        );
      }
    } finally {
      limit.clear();
    }
  }

  /** The lock_timeout and statement_timeout an attempt begun now runs under. */
  private statementTimeoutFor(budget: CallBudget): number {
    return Math.max(1, Math.min(remainingMs(budget), this.settings.timeoutCeilingMs));
  }

  /**
   * Rolls back `em`'s transaction, waiting at most a grace for the reply: a
   * connection that does not answer ROLLBACK is destroyed, so it is never
   * handed out again and PostgreSQL ends the session (rolling it back).
   */
  private async closeAbandoned(em: EntityManager, known?: Client): Promise<void> {
    const limit = new AttemptLimit(Date.now() + HUNG_REPLY_GRACE_MS);
    // Looked up only when not known: the lookup waits for a statement in flight.
    const connection = known ?? (await limit.within(connectionOf(em)).catch(() => undefined));
    limit.onExpiry(() => destroyConnection(connection));
    const rollback = em.rollback();
    await limit
      .within(rollback)
      .catch(() => {
        // The connection is broken (or now destroyed); the pool discards it
        // and PostgreSQL rolls the transaction back when the session ends.
      })
      .finally(() => limit.clear());
    // After a destroy, ROLLBACK fails at once; kysely keeps a connection whose
    // ROLLBACK failed, so `releaseBrokenConnections` hands it back to be discarded.
    rollback.catch(() => undefined);
  }

  /** An attempt whose connection did not answer in time: out of time if the call is, else UNAVAILABLE. */
  private hung(budget: CallBudget, message: string, retryAfterMs: number): DomainError {
    if (remainingMs(budget) <= 0) return this.outOfTime(message);
    return new ServiceUnavailableError('DATABASE_UNAVAILABLE', message, retryAfterMs);
  }

  private assertTimeLeft(budget: CallBudget): void {
    if (budget.signal.aborted) throw this.abortedError(budget);
    if (remainingMs(budget) <= 0) throw this.outOfTime('the call ran out of time');
  }

  private translate(error: unknown, budget: CallBudget, count = true): unknown {
    if (error instanceof DomainError) return error;
    // Before the caller's cancel: the caller must learn to retry with the same request id.
    if (error instanceof CommitInterrupted)
      return new CommitOutcomeUnknownError(RECONNECT_RETRY_MS, { cause: error.cause });
    const code = (error as { code?: unknown } | null)?.code;
    if (code === QUERY_CANCELED) {
      const message = 'a statement ran past the call budget';
      return count ? this.outOfTime(message, error) : new DeadlineExceededError(message);
    }
    if (isPoolTimeout(error)) {
      return new ServiceUnavailableError(
        'DATABASE_UNAVAILABLE',
        'no database connection came free in time; retry shortly',
        250,
        { cause: error },
      );
    }
    if (isConnectionFailure(error)) {
      return new ServiceUnavailableError(
        'DATABASE_UNAVAILABLE',
        'the database connection failed and nothing was committed; retry shortly',
        RECONNECT_RETRY_MS,
        { cause: error },
      );
    }
    if (budget.signal.aborted) return this.abortedError(budget);
    return error;
  }

  private outOfTime(message: string, cause?: unknown): DeadlineExceededError {
    this.counters.deadlineExceeded++;
    return new DeadlineExceededError(message, {}, { cause });
  }

  /**
   * Why the budget's signal fired: the transport aborts it with CallCancelledError
   * when the caller cancels, the lock layer with LOCK_LOST when its lease is lost.
   */
  private abortedError(budget: CallBudget): DomainError {
    const reason: unknown = budget.signal.reason;
    return reason instanceof DomainError ? reason : new CallCancelledError();
  }

  /** Exponential backoff with full jitter: uniform in [0, min(max, base·2^(attempt-1))]. */
  private backoff(attempt: number): number {
    const cap = Math.min(
      this.settings.backoffMaxMs,
      this.settings.backoffBaseMs * 2 ** (attempt - 1),
    );
    return Math.round(this.random() * cap);
  }
}
