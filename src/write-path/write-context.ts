import type { EntityManager } from '@mikro-orm/postgresql';
import type { LockGuard } from '../coordination/lock-guard';
import { ConcurrencyConflictError } from '../domain/errors';
import { type FacultyWeekLocks, lockFacultyWeeks } from './faculty-week-rows';
import type { ScheduleChange, ScheduleChangeHook } from './write-hooks';

/**
 * What a change gets to work with, inside one transaction attempt under the
 * call's locks. Its row-lock helper is the only way to lock faculty weeks, and
 * it fences as it locks, so no change can write a week without proving that
 * its lock grant is the newest.
 */
export interface WriteContext {
  /** This attempt's unit of work; the write path flushes and commits it. */
  readonly em: EntityManager;
  /** Who asked for the change; recorded on what it writes. */
  readonly actor: string;
  /** The lock grant's fencing token, to record with the change; null on advisory locks. */
  readonly fencingToken: string | null;
  /**
   * Locks the faculty-week rows FOR UPDATE, in id order (creating the missing
   * ones), then records the call's fencing token and grant on the written
   * ones. Refuses with STALE_FENCING_TOKEN when another lock grant, with a
   * newer token or the same one, has written one of them.
   */
  lockFacultyWeeks(weeks: FacultyWeekLocks): Promise<void>;
  /**
   * Announces that the schedule changed: flushes, so the hooks read the new
   * schedule, then runs every schedule-change hook in this transaction.
   */
  scheduleChanged(change: ScheduleChange): Promise<void>;
}

/** The context of one attempt; built by the write path only. */
export function writeContextOf(
  em: EntityManager,
  actor: string,
  guard: LockGuard,
  hooks: readonly ScheduleChangeHook[],
): WriteContext {
  return {
    em,
    actor,
    fencingToken: guard.fencingToken,
    lockFacultyWeeks: async (weeks) => {
      const grant =
        guard.fencingToken === null || guard.fencingOwner === null
          ? null
          : { token: guard.fencingToken, owner: guard.fencingOwner };
      const newer = await lockFacultyWeeks(em, weeks, grant);
      if (newer.length === 0) return;
      // A tie is refused as well: the retry's grant gets a token above it.
      guard.outrankedBy(newer.map((w) => w.token));
      throw new ConcurrencyConflictError(
        'STALE_FENCING_TOKEN',
        `another lock holder, with a newer or the same fencing token, has written ${newer.map((w) => `${w.personId}/${w.week}`).join(', ')}; retry`,
        0,
      );
    },
    scheduleChanged: async (change) => {
      await em.flush();
      for (const hook of hooks) await hook(em, change);
    },
  };
}
