import { LockMode } from '@mikro-orm/core';
import { addDays } from '../domain/calendar';
import type { CallContext } from '../domain/call-context';
import type { ProgramClock } from '../domain/clock';
import {
  DomainError,
  NotFoundError,
  PreconditionFailedError,
  StaleScheduleError,
} from '../domain/errors';
import { inBusinessSpan } from '../observability/business-span';
import type { ServiceTelemetry } from '../observability/service-telemetry';
import { Assignment } from '../schedule/assignment.entity';
import { CallAssignment } from '../schedule/call-assignment.entity';
import { lockNameOf } from '../schedule/faculty-week-key';
import { Person } from '../schedule/person.entity';
import type { MutationSubjects, ScheduleChange } from '../write-path/write-hooks';
import type { WriteContext } from '../write-path/write-context';
import type { Committed, WritePath } from '../write-path/write-path';
import { readScheduleFacts } from './schedule-facts-reader';
import {
  neighbourWeeksOf,
  type SwapCommand,
  touchedWeeksOf,
  transfersOf,
  type WeekTransfer,
} from './swap-command';
import { type AssignmentMove, type CallMove, SwapRecord } from './swap-record.entity';
import { judgeSwap, ruleContextAt, type PlannedMove } from './swap-rules';

export interface SwapSettings {
  /** Weeks starting sooner than this many days get a SHORT_NOTICE warning. */
  shortNoticeDays: number;
}

/** The Friday and Saturday of a week: the calls that follow whoever works it. */
const CASCADING_CALL_DAYS = [4, 5];

/**
 * ExecuteSwap: locks the faculty weeks involved, reads the schedule, judges it
 * with the same rules as ValidateSwap, then moves exactly the assignments and
 * calls of the swapped weeks, with version checks, and records the swap; once
 * per request id, through the write path.
 */
export class ExecuteSwap {
  constructor(
    private readonly writePath: WritePath,
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

    const assignmentMoves = await this.moveAssignments(ctx, verdict.moves);
    const callMoves = await this.moveCalls(ctx, transfers);
    const now = this.clock.now();
    const record = em.create(SwapRecord, {
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
      moves: { assignments: assignmentMoves, calls: callMoves },
      warnings: verdict.warnings,
      fencingToken: ctx.fencingToken,
      version: 1,
    });
    await ctx.scheduleChanged(scheduleChangeOf(record));
    return record;
  }

  private async moveAssignments(
    { em }: WriteContext,
    moves: PlannedMove[],
  ): Promise<AssignmentMove[]> {
    const planned = new Map(moves.map((m) => [m.assignment.id, m]));
    // A partial load is typed as a read-only view; these rows are ours to change.
    const rows = (await em.find(
      Assignment,
      { id: { $in: [...planned.keys()] } },
      {
        lockMode: LockMode.PESSIMISTIC_WRITE,
        orderBy: { id: 'asc' },
        // Only what the move changes and checks; the block is already in the facts.
        fields: ['person', 'rotation', 'version'],
      },
    )) as unknown as Assignment[];
    const recorded: AssignmentMove[] = [];
    for (const row of rows) {
      const move = planned.get(row.id)!;
      // The faculty-week locks keep swaps from racing here; a writer that
      // bypassed them means the facts are stale, so the attempt starts over.
      if (row.person.id !== move.assignment.personId)
        throw new StaleScheduleError('assignment', row.id);
      row.person = em.getReference(Person, move.to, { wrapped: true });
      recorded.push({
        assignmentId: row.id,
        blockDate: move.assignment.blockDate,
        blockHalf: move.assignment.blockHalf,
        rotation: row.rotation,
        fromPersonId: move.assignment.personId,
        toPersonId: move.to,
        // The flush increments the version by one, under our row lock.
        version: row.version + 1,
      });
    }
    if (rows.length !== planned.size) throw new StaleScheduleError('assignment', 'missing');
    return recorded;
  }

  private async moveCalls({ em }: WriteContext, transfers: WeekTransfer[]): Promise<CallMove[]> {
    const calls = (await em.find(
      CallAssignment,
      {
        $or: transfers.map((t) => ({
          person: t.giver,
          date: { $in: CASCADING_CALL_DAYS.map((d) => addDays(t.week, d)) },
        })),
      },
      {
        lockMode: LockMode.PESSIMISTIC_WRITE,
        orderBy: { id: 'asc' },
        fields: ['date', 'person', 'callType', 'version'],
      },
    )) as unknown as CallAssignment[];
    return calls.map((call) => {
      const transfer = transfers.find(
        (t) => t.giver === call.person.id && call.date >= t.week && call.date <= addDays(t.week, 6),
      )!;
      call.person = em.getReference(Person, transfer.receiver, { wrapped: true });
      return {
        callId: call.id,
        date: call.date,
        callType: call.callType,
        fromPersonId: transfer.giver,
        toPersonId: transfer.receiver,
        version: call.version + 1,
      };
    });
  }
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
