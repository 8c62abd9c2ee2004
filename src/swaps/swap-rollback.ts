import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { CallBudget } from '../domain/call-budget';
import { type LockGuard, unguarded } from '../domain/lock-guard';
import type { Clock } from '../domain/clock';
import { NotFoundError, PreconditionFailedError, type RuleViolation } from '../domain/errors';
import { sqlArray } from '../db/sql-array';
import type { TransactionRunner } from '../db/transaction-runner';
import { Assignment } from '../schedule/assignment.entity';
import { CallAssignment } from '../schedule/call-assignment.entity';
import { lockFacultyWeeks, lockNameOf } from '../schedule/faculty-week-locks';
import { Person } from '../schedule/person.entity';
import { transfersOf } from './swap-command';
import { detectAround, touchedWeeksOf } from './swap-executor';
import type { ConflictDetector } from '../conflicts/conflict-detector';
import { SwapRecord } from './swap-record.entity';

export interface RollbackSettings {
  /** How long after execution a swap may still be rolled back. */
  rollbackWindowMs: number;
}

// Blocks where a former holder has since been given another assignment: moving
// theirs back would double-book them.
const REBOOKED_SQL = `
select b.date as "blockDate", b.half as "blockHalf", a.person_id as "personId"
from assignment a join block b on b.id = a.block_id
join unnest(?::uuid[], ?::uuid[]) as m(assignment_id, person_id)
  on a.person_id = m.person_id
 and a.block_id = (select block_id from assignment where id = m.assignment_id)
where a.id <> all(?::uuid[])`;

/**
 * Rolls back an executed swap within its window: moves exactly the rows the
 * swap moved back to their former holders, provided none of them has changed
 * since, and marks the record ROLLED_BACK. Either all of it happens or none.
 */
export class SwapRollback {
  constructor(
    private readonly transactions: TransactionRunner,
    private readonly clock: Clock,
    private readonly settings: RollbackSettings,
    private readonly detector: ConflictDetector,
  ) {}

  /** Rolls back in a transaction of its own, without distributed locks or idempotency. */
  async rollback(
    swapId: string,
    reason: string,
    actor: string,
    budget: CallBudget,
  ): Promise<SwapRecord> {
    return this.transactions.run(budget, (em) =>
      this.rollbackIn(em, swapId, reason, actor, unguarded(budget)),
    );
  }

  /** The lock names a rollback must hold: the swap, and every faculty week it changed. */
  lockNamesOf(record: SwapRecord): string[] {
    return [`swap:${record.id}`, ...touchedWeeksOf(transfersOf(record)).map(lockNameOf)];
  }

  /** Rolls back inside the caller's transaction. */
  async rollbackIn(
    em: EntityManager,
    swapId: string,
    reason: string,
    actor: string,
    guard: LockGuard,
  ): Promise<SwapRecord> {
    // Lock order: swap_record, then faculty_week, then assignment, then call_assignment.
    const record = await em.findOne(SwapRecord, swapId, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!record)
      throw new NotFoundError('SWAP_NOT_FOUND', `no swap with id ${swapId}`, { swap_id: swapId });
    this.assertRollbackable(record);

    const touched = touchedWeeksOf(transfersOf(record));
    await lockFacultyWeeks(em, touched);
    await guard.fence(em, touched);
    const { assignments: assignmentMoves, calls: callMoves } = record.moves;
    const violations: RuleViolation[] = [];

    const assignments = await em.find(
      Assignment,
      { id: { $in: assignmentMoves.map((m) => m.assignmentId) } },
      { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: 'asc' } },
    );
    const calls = callMoves.length
      ? await em.find(
          CallAssignment,
          { id: { $in: callMoves.map((m) => m.callId) } },
          { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: 'asc' } },
        )
      : [];
    const assignmentById = new Map(assignments.map((a) => [a.id, a]));
    const callById = new Map(calls.map((c) => [c.id, c]));
    for (const m of assignmentMoves) {
      const row = assignmentById.get(m.assignmentId);
      if (!row || row.version !== m.version || row.person.id !== m.toPersonId) {
        violations.push(
          changedSince('assignment', m.assignmentId, `${m.blockDate} ${m.blockHalf}`),
        );
      }
    }
    for (const m of callMoves) {
      const row = callById.get(m.callId);
      if (!row || row.version !== m.version || row.person.id !== m.toPersonId) {
        violations.push(changedSince('call', m.callId, `${m.date} ${m.callType}`));
      }
    }
    if (violations.length === 0) violations.push(...(await this.rebookings(em, record)));
    if (violations.length > 0) throw new PreconditionFailedError(violations);

    for (const m of assignmentMoves) {
      assignmentById.get(m.assignmentId)!.person = em.getReference(Person, m.fromPersonId, {
        wrapped: true,
      });
    }
    for (const m of callMoves) {
      callById.get(m.callId)!.person = em.getReference(Person, m.fromPersonId, { wrapped: true });
    }
    record.status = 'ROLLED_BACK';
    record.rolledBackAt = this.clock.now();
    record.rolledBackBy = actor;
    record.rollbackReason = reason;
    // Undoing a swap can bring back the conflicts it resolved; detection must see the undone schedule.
    await em.flush();
    await detectAround(this.detector, em, record);
    return record;
  }

  private assertRollbackable(record: SwapRecord): void {
    if (record.status !== 'EXECUTED') {
      throw new PreconditionFailedError([
        {
          reason: 'INVALID_STATUS',
          message: `swap ${record.id} is ${record.status}; only an EXECUTED swap can be rolled back`,
          subject: `swap/${record.id}`,
        },
      ]);
    }
    const executedAt = record.executedAt ?? record.requestedAt;
    const closesAt = executedAt.getTime() + this.settings.rollbackWindowMs;
    if (this.clock.now().getTime() > closesAt) {
      throw new PreconditionFailedError([
        {
          reason: 'ROLLBACK_WINDOW_EXPIRED',
          message: `swap ${record.id} could be rolled back until ${new Date(closesAt).toISOString()}`,
          subject: `swap/${record.id}`,
        },
      ]);
    }
  }

  private async rebookings(em: EntityManager, record: SwapRecord): Promise<RuleViolation[]> {
    const moves = record.moves.assignments;
    const rows = await em.execute<{ blockDate: string; blockHalf: string; personId: string }[]>(
      REBOOKED_SQL,
      [
        sqlArray(moves.map((m) => m.assignmentId)),
        sqlArray(moves.map((m) => m.fromPersonId)),
        sqlArray(moves.map((m) => m.assignmentId)),
      ],
    );
    return rows.map((r) => ({
      reason: 'DOUBLE_BOOKING',
      message: `faculty ${r.personId} has been given block ${r.blockDate} ${r.blockHalf} since the swap`,
      subject: `block/${r.blockDate}/${r.blockHalf}`,
    }));
  }
}

function changedSince(kind: string, id: string, what: string): RuleViolation {
  return {
    reason: 'SCHEDULE_CHANGED',
    message: `${kind} ${what} (${id}) has changed since the swap; roll back by hand`,
    subject: `${kind}/${id}`,
  };
}
