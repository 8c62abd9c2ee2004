import { addDays } from '../domain/calendar';
import type { CallContext } from '../domain/call-context';
import type { ProgramClock } from '../domain/clock';
import { DomainError, NotFoundError, PreconditionFailedError } from '../domain/errors';
import { inBusinessSpan } from '../observability/business-span';
import type { ServiceTelemetry } from '../observability/service-telemetry';
import { lockNameOf } from '../schedule/faculty-week-key';
import type { MutationSubjects, ScheduleChange } from '../write-path/write-hooks';
import type { WriteContext } from '../write-path/write-context';
import type { Committed, WritePath } from '../write-path/write-path';
import type { CallFact } from './schedule-facts';
import { readScheduleFacts } from './schedule-facts-reader';
import type { SwapWrites } from './swap-writes';
import {
  neighbourWeeksOf,
  type SwapCommand,
  touchedWeeksOf,
  transfersOf,
  type WeekTransfer,
} from './swap-command';
import {
  type AssignmentMove,
  type CallMove,
  SwapRecord,
  type SwapMoves,
} from './swap-record.entity';
import { judgeSwap, ruleContextAt, type PlannedMove } from './swap-rules';

export interface SwapSettings {
  /** Weeks starting sooner than this many days get a SHORT_NOTICE warning. */
  shortNoticeDays: number;
}

/**
 * ExecuteSwap: locks the faculty weeks involved, reads the schedule, judges it
 * with the same rules as ValidateSwap, then moves exactly the assignments and
 * calls of the swapped weeks, with version checks, and records the swap; once
 * per request id, through the write path.
 */
export class ExecuteSwap {
  constructor(
    private readonly writePath: WritePath,
    private readonly writes: SwapWrites,
    private readonly clock: ProgramClock,
    private readonly settings: SwapSettings,
    private readonly telemetry: ServiceTelemetry,
  ) {}

  async execute(
    command: SwapCommand,
    requestId: string,
    call: CallContext,
  ): Promise<Committed<SwapRecord>> {
    const attributes = {
      'swap.type': command.swapType,
      'swap.source_faculty_id': command.sourceFacultyId,
      'swap.source_week': command.sourceWeek,
      'swap.target_faculty_id': command.targetFacultyId,
      ...(command.targetWeek && { 'swap.target_week': command.targetWeek }),
      'app.request_id': requestId,
    };
    const counted = { operation: 'execute', swap_type: command.swapType };
    return inBusinessSpan(this.telemetry.tracer, 'swap.execute', attributes, async (span) => {
      const result = await this.writePath
        .commit(call, {
          method: 'ExecuteSwap',
          requestId,
          request: command,
          lockNames: lockNamesOf(command),
          change: (ctx) => this.applyIn(ctx, command),
          subjects: swapSubjectsOf,
        })
        .catch((error: unknown) => {
          this.telemetry.swaps.add(1, { ...counted, outcome: outcomeOf(error) });
          throw error;
        });
      span.setAttributes({ 'swap.id': result.value.id, 'app.replayed': result.replayed });
      this.telemetry.swaps.add(1, { ...counted, outcome: result.replayed ? 'replayed' : 'ok' });
      return result;
    });
  }

  /**
   * Applies the swap inside another mutation's write, so a conflict resolution
   * commits it together with its own change.
   */
  async applyIn(ctx: WriteContext, command: SwapCommand): Promise<SwapRecord> {
    const { em } = ctx;
    const transfers = transfersOf(command);
    await ctx.lockFacultyWeeks({
      written: touchedWeeksOf(transfers),
      read: neighbourWeeksOf(transfers),
    });
    const facts = await readScheduleFacts(em, command);
    const verdict = judgeSwap(
      command,
      facts,
      ruleContextAt(this.clock, this.settings.shortNoticeDays),
    );
    const notFound = verdict.errors.find((e) => e.reason === 'FACULTY_NOT_FOUND');
    if (notFound)
      throw new NotFoundError('FACULTY_NOT_FOUND', notFound.message, { subject: notFound.subject });
    if (verdict.errors.length > 0) throw new PreconditionFailedError(verdict.errors);

    const moves = swapMovesOf(verdict.moves, facts.cascadingCalls, transfers);
    const now = this.clock.now();
    // Built as plain data, not through em.create: the writes decide whether
    // the ORM persists it (and entity creation costs more than the insert).
    const record = Object.assign(new SwapRecord(), {
      id: crypto.randomUUID(),
      sourceFacultyId: command.sourceFacultyId,
      sourceWeek: command.sourceWeek,
      targetFacultyId: command.targetFacultyId,
      targetWeek: command.targetWeek,
      swapType: command.swapType,
      status: 'EXECUTED',
      reason: command.reason,
      requestedAt: now,
      requestedBy: ctx.actor,
      executedAt: now,
      executedBy: ctx.actor,
      rolledBackAt: null,
      rolledBackBy: null,
      rollbackReason: null,
      moves,
      warnings: verdict.warnings,
      fencingToken: ctx.fencingToken,
      version: 1,
    } satisfies SwapRecord);
    await this.writes.execute(em, record);
    await ctx.scheduleChanged(scheduleChangeOf(record));
    return record;
  }
}

/**
 * What a swap moves, as its record keeps it: the planned assignments and the
 * givers' cascading calls, each with the version it will have, in id order.
 */
function swapMovesOf(
  planned: readonly PlannedMove[],
  calls: readonly CallFact[],
  transfers: readonly WeekTransfer[],
): SwapMoves {
  const assignments = planned.map(({ assignment: a, to }): AssignmentMove => ({
    assignmentId: a.id,
    blockDate: a.blockDate,
    blockHalf: a.blockHalf,
    rotation: a.rotation,
    fromPersonId: a.personId,
    toPersonId: to,
    version: a.version + 1,
  }));
  const callMoves = calls.map((call): CallMove => {
    const transfer = transfers.find(
      (t) => t.giver === call.personId && call.date >= t.week && call.date <= addDays(t.week, 6),
    )!;
    return {
      callId: call.id,
      date: call.date,
      callType: call.callType,
      fromPersonId: call.personId,
      toPersonId: transfer.receiver,
      version: call.version + 1,
    };
  });
  const byId =
    <M>(id: (m: M) => string) =>
    (x: M, y: M) =>
      id(x) < id(y) ? -1 : id(x) > id(y) ? 1 : 0;
  return {
    assignments: assignments.sort(byId((m) => m.assignmentId)),
    calls: callMoves.sort(byId((m) => m.callId)),
  };
}

/** The lock names a swap must hold: each faculty week it changes. */
export function lockNamesOf(command: SwapCommand): string[] {
  return touchedWeeksOf(transfersOf(command)).map(lockNameOf);
}

/** What a swap (or its rollback) announces: the two people and the weeks that moved. */
export function scheduleChangeOf(record: SwapRecord): ScheduleChange {
  return {
    swapId: record.id,
    facultyIds: [record.sourceFacultyId, record.targetFacultyId],
    weeks: [record.sourceWeek, ...(record.targetWeek ? [record.targetWeek] : [])],
  };
}

/** What a swap call is filed under in the audit trail: the swap it executed or rolled back. */
export function swapSubjectsOf(record: SwapRecord): MutationSubjects {
  return { swapIds: [record.id], conflictIds: [] };
}

/** A low-cardinality label for a failed swap: the domain reason code, or `error`. */
export function outcomeOf(error: unknown): string {
  return error instanceof DomainError ? error.reason.toLowerCase() : 'error';
}
