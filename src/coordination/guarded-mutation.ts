import type { EntityManager } from '@mikro-orm/postgresql';
import type { TransactionRunner } from '../db/transaction-runner';
import type { CallBudget } from '../domain/call-budget';
import { InvalidArgumentError } from '../domain/errors';
import type { LockGuard } from '../domain/lock-guard';
import { createServiceTelemetry, type ServiceTelemetry } from '../observability/service-telemetry';
import type { IdempotencyStore, StoredResponse } from './idempotency-store';
import type { ScheduleLocks } from './schedule-locks';

/** One mutating call, as the transport hands it over. */
export interface Mutation<T> {
  /** Caller and method scope the key: the same request id from another of either is another key. */
  actor: string;
  method: string;
  requestId: string;
  /** SHA-256 of the canonical request, so a reused key with another body is caught. */
  fingerprint: string;
  /** The lock names the change touches. */
  lockNames: readonly string[];
  budget: CallBudget;
  /** The change itself, inside the transaction, under the locks. */
  work: (em: EntityManager, guard: LockGuard) => Promise<T>;
  encode: (value: T) => Uint8Array;
  decode: (bytes: Uint8Array) => T;
}

export interface MutationResult<T> {
  value: T;
  /** True when a committed earlier call with this key answered, and nothing ran. */
  replayed: boolean;
}

/**
 * Runs every mutating call the same way: replay a committed answer if there is
 * one; otherwise lock the keys, then in one transaction claim the idempotency
 * key, make the change and store the answer, then release. The answer and the
 * change commit together or not at all.
 */
export class GuardedMutations {
  constructor(
    private readonly locks: ScheduleLocks,
    private readonly idempotency: IdempotencyStore,
    private readonly transactions: TransactionRunner,
    private readonly telemetry: ServiceTelemetry = createServiceTelemetry(),
  ) {}

  async run<T>(mutation: Mutation<T>): Promise<MutationResult<T>> {
    const { requestId, fingerprint } = mutation;
    const scope = `${mutation.actor}:${mutation.method}`;
    const earlier = await this.idempotency.lookup(scope, requestId);
    if (earlier) return this.replay(mutation, earlier);

    const outcome = await this.locks.withLocks(mutation.lockNames, mutation.budget, (guard) =>
      this.transactions.run(guard.budget, async (em) => {
        await guard.enter(em);
        const committed = await this.idempotency.claim(em, scope, requestId, fingerprint);
        if (committed) return { kind: 'replay' as const, committed };
        const value = await mutation.work(em, guard);
        const response = Buffer.from(mutation.encode(value));
        // Timed from before the statement is sent, so the round trip counts
        // against the cache's lifetime rather than extending it.
        const measuredAt = performance.now();
        const ttlMs = await this.idempotency.complete(em, scope, requestId, response);
        return { kind: 'fresh' as const, value, response, ttlMs, measuredAt };
      }),
    );
    if (outcome.kind === 'replay') return this.replay(mutation, outcome.committed);
    // The key's time left was measured by the database; what has passed since, by us.
    const ttlMs = outcome.ttlMs - (performance.now() - outcome.measuredAt);
    // Best effort, and never worth a round trip of the caller's time: not awaited.
    void this.idempotency.remember(
      scope,
      requestId,
      { fingerprint, response: outcome.response },
      ttlMs,
    );
    return { value: outcome.value, replayed: false };
  }

  private replay<T>(mutation: Mutation<T>, stored: StoredResponse): MutationResult<T> {
    if (stored.fingerprint !== mutation.fingerprint) {
      throw new InvalidArgumentError(
        'request_id',
        'was already used for a different request; use a new request_id for a new request',
        'IDEMPOTENCY_KEY_REUSED',
      );
    }
    this.telemetry.replays.add(1, { method: mutation.method });
    return { value: mutation.decode(stored.response), replayed: true };
  }
}
