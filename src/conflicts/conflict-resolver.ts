import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Clock } from '../domain/clock';
import { InvalidArgumentError, NotFoundError, PreconditionFailedError } from '../domain/errors';
import type { LockGuard } from '../domain/lock-guard';
import { CallAssignment } from '../schedule/call-assignment.entity';
import { lockFacultyWeeks, lockNameOf } from '../schedule/faculty-week-locks';
import { Person } from '../schedule/person.entity';
import type { SwapCommand } from '../swaps/swap-command';
import type { SwapExecutor } from '../swaps/swap-executor';
import type { SwapRecord } from '../swaps/swap-record.entity';
import { ConflictAlert, OPEN_STATUSES, type ResolutionStrategyName } from './conflict-alert.entity';
import type { ResolutionOption } from './resolution-planner';

/** What ResolveConflict applied. */
export interface Resolution {
  alert: ConflictAlert;
  swap: SwapRecord | undefined;
}

/** The lock name of an alert; every write to it holds this. */
export function conflictLockName(conflictId: string): string {
  return `conflict:${conflictId}`;
}

/**
 * Applies a resolution option, exactly once: the alert row is locked first and
 * its status read again, so of several concurrent resolvers only the first
 * finds it open. The schedule change and the alert's new status commit in the
 * same transaction, or neither does.
 */
export class ConflictResolver {
  constructor(
    private readonly executor: SwapExecutor,
    private readonly clock: Clock,
  ) {}

  /** Lock names for applying `option` to `alert`: the alert and every faculty week it changes. */
  lockNamesOf(alert: ConflictAlert, option: ResolutionOption): string[] {
    const names = [conflictLockName(alert.id)];
    if (option.swap) names.push(...this.executor.lockNamesOf(option.swap));
    if (option.strategy === 'REASSIGN_JUNIOR')
      names.push(lockNameOf({ personId: alert.facultyId, week: alert.weekStart }));
    return names;
  }

  async resolveIn(
    em: EntityManager,
    conflictId: string,
    option: ResolutionOption,
    notes: string,
    actor: string,
    guard: LockGuard,
  ): Promise<Resolution> {
    // Lock order: conflict_alert comes before every table a resolution changes.
    const alert = await lockOpenAlert(em, conflictId);
    if (option.requiresHuman) {
      throw new PreconditionFailedError([
        {
          reason: 'NEEDS_HUMAN_DECISION',
          message: `${option.strategy} cannot be carried out by the service; act on it, then acknowledge or ignore the conflict`,
          subject: `conflict/${conflictId}`,
        },
      ]);
    }
    let swap: SwapRecord | undefined;
    if (option.strategy === 'SWAP_ASSIGNMENTS') {
      swap = await this.executor.executeIn(em, requireSwap(option), actor, guard);
    } else if (option.strategy === 'REASSIGN_JUNIOR') {
      await this.moveCalls(em, alert, option.callIds ?? [], guard);
    }
    this.markResolved(alert, option.strategy, notes, actor, swap?.id ?? null);
    return { alert, swap };
  }

  private async moveCalls(
    em: EntityManager,
    alert: ConflictAlert,
    callIds: string[],
    guard: LockGuard,
  ): Promise<void> {
    const week = { personId: alert.facultyId, week: alert.weekStart };
    await lockFacultyWeeks(em, [week]);
    await guard.fence(em, [week]);
    const calls = await em.find(
      CallAssignment,
      { id: { $in: callIds } },
      { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: 'asc' } },
    );
    const stillMisplaced = calls.filter((c) => c.person.id !== alert.facultyId);
    if (callIds.length === 0 || stillMisplaced.length !== callIds.length) {
      throw new PreconditionFailedError([
        {
          reason: 'SCHEDULE_CHANGED',
          message:
            'the calls to move have changed since the options were computed; ask for options again',
          subject: `conflict/${alert.id}`,
        },
      ]);
    }
    // Checked again under the lock: the option's checks were computed before it.
    const days = [...new Set(stillMisplaced.map((c) => c.date))].sort();
    const [away] = await em.execute<{ n: number }[]>(
      `select count(*)::int as n from absence where person_id = ? and blocking and start_date <= ? and end_date >= ?`,
      [alert.facultyId, days[days.length - 1], days[0]],
    );
    if ((away?.n ?? 0) > 0) {
      throw new PreconditionFailedError([
        {
          reason: 'FACULTY_ABSENT',
          message: `faculty ${alert.facultyId} has a blocking absence on a call day of week ${alert.weekStart}`,
          subject: `faculty/${alert.facultyId}/week/${alert.weekStart}`,
        },
      ]);
    }
    for (const call of stillMisplaced) {
      call.person = em.getReference(Person, alert.facultyId, { wrapped: true });
    }
  }

  private markResolved(
    alert: ConflictAlert,
    strategy: ResolutionStrategyName,
    notes: string,
    actor: string,
    swapId: string | null,
  ): void {
    alert.status = 'RESOLVED';
    alert.resolution = strategy;
    alert.resolvedBy = actor;
    alert.resolvedAt = this.clock.now();
    alert.notes = notes || alert.notes;
    alert.resolutionSwapId = swapId;
  }
}

/** Locks an alert FOR UPDATE and fails unless it still asks for action. */
export async function lockOpenAlert(em: EntityManager, conflictId: string): Promise<ConflictAlert> {
  const alert = await em.findOne(ConflictAlert, conflictId, {
    lockMode: LockMode.PESSIMISTIC_WRITE,
  });
  if (!alert)
    throw new NotFoundError('CONFLICT_NOT_FOUND', `no conflict with id ${conflictId}`, {
      conflict_id: conflictId,
    });
  if (!OPEN_STATUSES.includes(alert.status)) {
    throw new PreconditionFailedError([
      {
        reason: 'ALREADY_RESOLVED',
        message: `conflict ${conflictId} is already ${alert.status}`,
        subject: `conflict/${conflictId}`,
      },
    ]);
  }
  return alert;
}

function requireSwap(option: ResolutionOption): SwapCommand {
  if (!option.swap)
    throw new InvalidArgumentError(
      'option_id',
      `${option.optionId} carries no swap`,
      'INVALID_OPTION',
    );
  return option.swap;
}
