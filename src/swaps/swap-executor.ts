import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { addDays, isoDateOf } from '../domain/calendar';
import type { CallBudget } from '../domain/call-budget';
import { type LockGuard, unguarded } from '../domain/lock-guard';
import type { Clock } from '../domain/clock';
import { NotFoundError, PreconditionFailedError, type RuleViolation } from '../domain/errors';
import type { TransactionRunner } from '../db/transaction-runner';
import { Assignment } from '../schedule/assignment.entity';
import { CallAssignment } from '../schedule/call-assignment.entity';
import { type FacultyWeekKey, lockFacultyWeeks, lockNameOf } from '../schedule/faculty-week-locks';
import { Person } from '../schedule/person.entity';
import type { ConflictDetector } from '../conflicts/conflict-detector';
import { StaleScheduleError } from './stale-schedule-error';
import { readScheduleFacts } from './schedule-facts-reader';
import { type SwapCommand, type WeekTransfer, transfersOf } from './swap-command';
import { type AssignmentMove, type CallMove, SwapRecord } from './swap-record.entity';
import { judgeSwap, type PlannedMove } from './swap-rules';

export interface SwapSettings {
  /** Weeks starting sooner than this many days get a SHORT_NOTICE warning. */
  shortNoticeDays: number;
}

/** What ValidateSwap reports: exactly the verdict ExecuteSwap would act on. */
export interface SwapValidation {
  errors: RuleViolation[];
  warnings: RuleViolation[];
}

/** The Friday and Saturday of a week: the calls that follow whoever works it. */
const CASCADING_CALL_DAYS = [4, 5];

/**
 * Executes swaps, and dry-runs them. Execution locks the faculty weeks
 * involved, reads the schedule, judges it with the same rules as validation,
 * then moves exactly the assignments and calls of the swapped weeks, as one
 * unit of work whose rows are locked FOR UPDATE and flushed with version checks.
 */
export class SwapExecutor {
  constructor(
    private readonly transactions: TransactionRunner,
    private readonly clock: Clock,
    private readonly settings: SwapSettings,
    private readonly detector: ConflictDetector,
  ) {}

  /** Runs every rule and reports every violation, writing nothing. */
  async validate(command: SwapCommand, budget: CallBudget): Promise<SwapValidation> {
    return this.transactions.run(
      budget,
      async (em) => {
        const facts = await readScheduleFacts(em, command);
        const { errors, warnings } = judgeSwap(command, facts, this.ruleContext());
        return { errors, warnings };
      },
      { readOnly: true },
    );
  }

  /**
   * Executes the swap in a transaction of its own, without distributed locks or
   * idempotency (the transport wraps calls in both; tools and benchmarks may not).
   */
  async execute(command: SwapCommand, actor: string, budget: CallBudget): Promise<SwapRecord> {
    return this.transactions.run(budget, (em) =>
      this.executeIn(em, command, actor, unguarded(budget)),
    );
  }

  /** The lock names a swap must hold: each faculty week it changes. */
  lockNamesOf(command: SwapCommand): string[] {
    return touchedWeeksOf(transfersOf(command)).map(lockNameOf);
  }

  /**
   * Executes the swap inside the caller's transaction, so another use case
   * (a conflict resolution) can commit it together with its own changes.
   */
  async executeIn(
    em: EntityManager,
    command: SwapCommand,
    actor: string,
    guard: LockGuard,
  ): Promise<SwapRecord> {
    const transfers = transfersOf(command);
    await lockFacultyWeeks(em, facultyWeeksOf(transfers));
    const facts = await readScheduleFacts(em, command);
    const verdict = judgeSwap(command, facts, this.ruleContext());
    const notFound = verdict.errors.find((e) => e.reason === 'FACULTY_NOT_FOUND');
    if (notFound)
      throw new NotFoundError('FACULTY_NOT_FOUND', notFound.message, { subject: notFound.subject });
    if (verdict.errors.length > 0) throw new PreconditionFailedError(verdict.errors);

    await guard.fence(em, touchedWeeksOf(transfers));
    const assignmentMoves = await this.moveAssignments(em, verdict.moves);
    const callMoves = await this.moveCalls(em, transfers);
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
      requestedBy: actor,
      executedAt: now,
      executedBy: actor,
      rolledBackAt: null,
      rolledBackBy: null,
      rollbackReason: null,
      moves: { assignments: assignmentMoves, calls: callMoves },
      warnings: verdict.warnings,
      fencingToken: guard.fencingToken,
      version: 1,
    });
    // Detection reads the schedule with SQL, so the moves must be in it first.
    await em.flush();
    await detectAround(this.detector, em, record);
    return record;
  }

  private async moveAssignments(
    em: EntityManager,
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

  private async moveCalls(em: EntityManager, transfers: WeekTransfer[]): Promise<CallMove[]> {
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

  private ruleContext() {
    return { today: isoDateOf(this.clock.now()), shortNoticeDays: this.settings.shortNoticeDays };
  }
}

/** The faculty weeks a swap changes: each swapped week, of both people. */
export function touchedWeeksOf(transfers: readonly WeekTransfer[]): FacultyWeekKey[] {
  return transfers.flatMap((t) => [
    { personId: t.giver, week: t.week },
    { personId: t.receiver, week: t.week },
  ]);
}

/**
 * The faculty weeks a swap must lock in PostgreSQL: those it changes, and the
 * receivers' neighbouring weeks, which the back-to-back FMIT rule reads.
 */
export function facultyWeeksOf(transfers: readonly WeekTransfer[]): FacultyWeekKey[] {
  return [
    ...touchedWeeksOf(transfers),
    ...transfers.flatMap((t) => [
      { personId: t.receiver, week: addDays(t.week, -7) },
      { personId: t.receiver, week: addDays(t.week, 7) },
    ]),
  ];
}

/**
 * Runs conflict detection for the weeks a swap touched and their neighbours
 * (back-to-back FMIT spans two weeks), for the two faculty members involved.
 */
export async function detectAround(
  detector: ConflictDetector,
  em: EntityManager,
  record: SwapRecord,
): Promise<void> {
  const weeks = [record.sourceWeek, ...(record.targetWeek ? [record.targetWeek] : [])].sort();
  await detector.detect(em, addDays(weeks[0]!, -7), addDays(weeks[weeks.length - 1]!, 7), {
    causedBySwap: record.id,
    faculty: [record.sourceFacultyId, record.targetFacultyId],
  });
}
