import { LockMode } from '@mikro-orm/core';
import type { TransactionRunner } from '../db/transaction-runner';
import type { CallContext } from '../domain/call-context';
import type { Clock } from '../domain/clock';
import { InvalidArgumentError, NotFoundError, PreconditionFailedError } from '../domain/errors';
import { inBusinessSpan } from '../observability/business-span';
import type { ServiceTelemetry } from '../observability/service-telemetry';
import { CallAssignment } from '../schedule/call-assignment.entity';
import { lockNameOf } from '../schedule/faculty-week-key';
import { Person } from '../schedule/person.entity';
import { type ExecuteSwap, lockNamesOf as swapLockNamesOf } from '../swaps/execute-swap';
import type { SwapRecord } from '../swaps/swap-record.entity';
import type { WriteContext } from '../write-path/write-context';
import type { Committed, WritePath } from '../write-path/write-path';
import { ConflictAlert, type ResolutionStrategyName } from './conflict-alert.entity';
import { conflictLockName, lockOpenAlert } from './open-alert';
import type { ResolutionOption, ResolutionPlanner } from './resolution-planner';

/**
 * What a resolution applied: the alert, now RESOLVED, the option it carried
 * out, and the swap it executed, if any. Stored as the call's answer, so a
 * replay reports the option even after the options have changed.
 */
export interface Resolution {
  alert: ConflictAlert;
  optionId: string;
  /** The option's description. */
  description: string;
  swap: SwapRecord | undefined;
}

/** How the caller picks the resolution: a named option, or the best option of a strategy. */
export type ResolutionChoice = { optionId: string } | { strategy: ResolutionStrategyName };

/** One resolution to commit, as ResolveConflict and AutoResolve hand it over. */
export interface ResolutionRequest {
  conflictId: string;
  /** Only this option is computed, when the choice names one. */
  optionId?: string;
  /**
   * Picks the option to apply from the alert as it is now, or throws why
   * there is none. It runs only when the request id has no committed answer.
   */
  choose: (alert: ConflictAlert, options: readonly ResolutionOption[]) => ResolutionOption;
  notes: string;
  method: string;
  requestId: string;
  /** What the caller sent, fingerprinted for the idempotency key. */
  request: unknown;
}

/**
 * GetResolutionOptions and ResolveConflict. A resolution is applied exactly
 * once: the alert row is locked first and its status read again, so of several
 * concurrent resolvers only the first finds it open. The schedule change and
 * the alert's new status commit in the same transaction, or neither does.
 */
export class ResolveConflict {
  constructor(
    private readonly writePath: WritePath,
    private readonly transactions: TransactionRunner,
    private readonly planner: ResolutionPlanner,
    private readonly executeSwap: ExecuteSwap,
    private readonly clock: Clock,
    private readonly telemetry: ServiceTelemetry,
  ) {}

  /** Every candidate resolution of a conflict, best first. */
  async options(conflictId: string, call: CallContext): Promise<ResolutionOption[]> {
    return (await this.plan(conflictId, call)).options;
  }

  /** Applies the chosen option, once per request id. */
  resolve(
    conflictId: string,
    choice: ResolutionChoice,
    notes: string,
    requestId: string,
    call: CallContext,
  ): Promise<Committed<Resolution>> {
    const attributes = { 'conflict.id': conflictId, 'app.request_id': requestId };
    return inBusinessSpan(this.telemetry.tracer, 'conflict.resolve', attributes, async (span) => {
      const result = await this.commitResolution(
        {
          conflictId,
          ...('optionId' in choice && { optionId: choice.optionId }),
          choose: (alert, options) => {
            const option = options.find((o) =>
              'optionId' in choice
                ? o.optionId === choice.optionId
                : o.strategy === choice.strategy,
            );
            if (option) return option;
            throw 'optionId' in choice
              ? new InvalidArgumentError(
                  'option_id',
                  `no option ${choice.optionId} for conflict ${conflictId}; call GetResolutionOptions`,
                  'UNKNOWN_OPTION',
                )
              : new PreconditionFailedError([
                  {
                    reason: 'OPTION_NOT_AVAILABLE',
                    message: `no ${choice.strategy} option for conflict ${conflictId}`,
                    subject: `conflict/${conflictId}`,
                  },
                ]);
          },
          notes,
          method: 'ResolveConflict',
          requestId,
          request: { conflictId, choice, notes },
        },
        call,
      );
      const { alert, optionId, swap } = result.value;
      span.setAttributes({
        'conflict.faculty_id': alert.facultyId,
        'conflict.week': alert.weekStart,
        'conflict.option_id': optionId,
      });
      if (swap) span.setAttribute('swap.id', swap.id);
      return result;
    });
  }

  /**
   * Reads the alert and its options outside any lock: enough to pick what to
   * lock. A named option is computed alone; only a strategy needs every option ranked.
   */
  plan(
    conflictId: string,
    call: CallContext,
    optionId?: string,
  ): Promise<{ alert: ConflictAlert; options: ResolutionOption[] }> {
    return this.transactions.transactionally(
      call.budget,
      async (em) => {
        const alert = await em.findOne(ConflictAlert, conflictId);
        if (!alert) {
          throw new NotFoundError('CONFLICT_NOT_FOUND', `no conflict with id ${conflictId}`, {
            conflict_id: conflictId,
          });
        }
        const options = optionId
          ? [await this.planner.optionById(em, alert, optionId)].filter((o) => o !== undefined)
          : await this.planner.optionsFor(em, alert);
        return { alert, options };
      },
      { readOnly: true },
    );
  }

  /**
   * Commits one resolution through the write path: planned (the alert read and
   * the option chosen) only when its request id has no committed answer.
   */
  commitResolution(
    resolution: ResolutionRequest,
    call: CallContext,
  ): Promise<Committed<Resolution>> {
    return this.writePath.commit(call, {
      method: resolution.method,
      requestId: resolution.requestId,
      request: resolution.request,
      plan: async () => {
        const { alert, options } = await this.plan(
          resolution.conflictId,
          call,
          resolution.optionId,
        );
        const option = resolution.choose(alert, options);
        const lockNames = [conflictLockName(alert.id)];
        if (option.swap) lockNames.push(...swapLockNamesOf(option.swap));
        if (option.strategy === 'REASSIGN_JUNIOR')
          lockNames.push(lockNameOf({ personId: alert.facultyId, week: alert.weekStart }));
        return {
          lockNames,
          change: (ctx) => this.applyIn(ctx, alert.id, option, resolution.notes),
        };
      },
      subjects: ({ alert: resolved, swap }) => ({
        swapIds: swap ? [swap.id] : [],
        conflictIds: [resolved.id],
      }),
    });
  }

  private async applyIn(
    ctx: WriteContext,
    conflictId: string,
    option: ResolutionOption,
    notes: string,
  ): Promise<Resolution> {
    // Lock order: conflict_alert comes before every table a resolution changes.
    const alert = await lockOpenAlert(ctx.em, conflictId);
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
      if (!option.swap)
        throw new InvalidArgumentError(
          'option_id',
          `${option.optionId} carries no swap`,
          'INVALID_OPTION',
        );
      swap = await this.executeSwap.applyIn(ctx, option.swap);
    } else if (option.strategy === 'REASSIGN_JUNIOR') {
      await this.moveCalls(ctx, alert, option.callIds ?? []);
    }
    alert.status = 'RESOLVED';
    alert.resolution = option.strategy;
    alert.resolvedBy = ctx.actor;
    alert.resolvedAt = this.clock.now();
    alert.notes = notes || alert.notes;
    alert.resolutionSwapId = swap?.id ?? null;
    return { alert, optionId: option.optionId, description: option.description, swap };
  }

  private async moveCalls(
    ctx: WriteContext,
    alert: ConflictAlert,
    callIds: string[],
  ): Promise<void> {
    const { em } = ctx;
    await ctx.lockFacultyWeeks({ written: [{ personId: alert.facultyId, week: alert.weekStart }] });
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
}
