import type { EntityManager } from '@mikro-orm/postgresql';
import type { CallBudget } from './call-budget';
import type { FacultyWeekKey } from '../schedule/faculty-week-locks';

/**
 * What a writer holds while it runs: the distributed (or advisory) locks on the
 * keys it touches. Use cases call `enter` first in every transaction attempt and
 * `fence` once they have locked the faculty weeks they write.
 */
export interface LockGuard {
  readonly backend: 'redis' | 'postgres' | 'none';
  /** The lock grant's fencing token, recorded with the change; null without Redis. */
  readonly fencingToken: string | null;
  /** The call's budget, whose signal also fires if the lock is lost. */
  readonly budget: CallBudget;
  /** Takes whatever the lock needs inside the transaction (advisory locks). */
  enter(em: EntityManager): Promise<void>;
  /** Refuses the write if a newer lock holder has already written one of these weeks. */
  fence(em: EntityManager, weeks: readonly FacultyWeekKey[]): Promise<void>;
}

/** For work that runs without any lock of ours (tests, tools). */
export function unguarded(budget: CallBudget): LockGuard {
  return {
    backend: 'none',
    fencingToken: null,
    budget,
    enter: () => Promise.resolve(),
    fence: () => Promise.resolve(),
  };
}
