import type { EntityManager } from '@mikro-orm/postgresql';
import type { CallBudget } from '../domain/call-budget';

/**
 * What a writer holds while its transaction runs: the distributed (or advisory)
 * locks on the keys it touches. Only the write path sees it: it calls `enter`
 * at the start of every transaction attempt, and the write context records
 * `fencingToken` and `fencingOwner` on every faculty week it locks for writing.
 */
export interface LockGuard {
  readonly backend: 'redis' | 'postgres';
  /** The lock grant's fencing token; null on advisory locks, which cannot outlive the transaction. */
  readonly fencingToken: string | null;
  /**
   * Names this one grant (a digest of the Redis lease's random owner token), recorded with
   * the fencing token: two grants with the same token (a failover lost the
   * counter) are told apart by it. Null exactly when `fencingToken` is.
   */
  readonly fencingOwner: string | null;
  /** The call's budget, whose signal also fires if the lock is lost. */
  readonly budget: CallBudget;
  /** Takes whatever the lock needs inside the transaction (advisory locks). */
  enter(em: EntityManager): Promise<void>;
  /**
   * The database has recorded `tokens`, newer than ours or equal to it but from
   * another grant: the lock service lost its counter, so it must never grant a
   * token up to them again.
   */
  outrankedBy(tokens: readonly string[]): void;
}
