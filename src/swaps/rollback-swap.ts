import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { preparedStatement, runPrepared } from '../db/prepared-statement';
import type { CallContext } from '../domain/call-context';
import type { ProgramClock } from '../domain/clock';
import { NotFoundError, PreconditionFailedError, type RuleViolation } from '../domain/errors';
import { inBusinessSpan } from '../observability/business-span';
import type { ServiceTelemetry } from '../observability/service-telemetry';
import { lockNameOf } from '../schedule/faculty-week-key';
import type { WriteContext } from '../write-path/write-context';
import type { Committed, WritePath } from '../write-path/write-path';
import { outcomeOf, scheduleChangeOf, swapSubjectsOf } from './execute-swap';
import type { SwapWrites } from './swap-writes';
import { touchedWeeksOf, transfersOf } from './swap-command';
import type { SwapQueries } from './swap-queries';
import { SwapRecord } from './swap-record.entity';

export interface RollbackSettings {
  /** How long after execution a swap may still be rolled back. */
  rollbackWindowMs: number;
}

// Blocks where a former holder has since been given another assignment: moving
// theirs back would double-book them. $1 the moved assignments, $2 their former holders.
const REBOOKED = preparedStatement<{ blockDate: string; blockHalf: string; personId: string }>(
  'swap_rollback_rebooked',
  `
select b.date::text as "blockDate", b.half as "blockHalf", a.person_id as "personId"
from unnest($1::uuid[], $2::uuid[]) as m(assignment_id, person_id)
join assignment moved on moved.id = m.assignment_id
join assignment a on a.block_id = moved.block_id and a.person_id = m.person_id
join block b on b.id = a.block_id
where a.id <> all($1::uuid[])`,
);

/**
 * RollbackSwap: within its window, moves exactly the rows a swap moved back to
 * their former holders, provided none of them has changed since, and marks the
 * record ROLLED_BACK. Either all of it happens or none; once per request id.
 */
export class RollbackSwap {
  constructor(
    private readonly writePath: WritePath,
    private readonly writes: SwapWrites,
    private readonly queries: SwapQueries,
    private readonly clock: ProgramClock,
    private readonly settings: RollbackSettings,
    private readonly telemetry: ServiceTelemetry,
  ) {}

  async rollback(
    swapId: string,
    reason: string,
    requestId: string,
    call: CallContext,
  ): Promise<Committed<SwapRecord>> {
    const attributes = { 'swap.id': swapId, 'app.request_id': requestId };
    return inBusinessSpan(this.telemetry.tracer, 'swap.rollback', attributes, async (span) => {
      // The lock names come from the swap itself; it is read again, locked, in the transaction.
      const record = await this.queries.get(swapId, call);
      const counted = { operation: 'rollback', swap_type: record.swapType };
      span.setAttributes({
        'swap.source_faculty_id': record.sourceFacultyId,
        'swap.target_faculty_id': record.targetFacultyId,
        'swap.source_week': record.sourceWeek,
      });
      const result = await this.writePath
        .commit(call, {
          method: 'RollbackSwap',
          requestId,
          request: { swapId, reason },
          lockNames: [`swap:${record.id}`, ...touchedWeeksOf(transfersOf(record)).map(lockNameOf)],
          change: (ctx) => this.rollbackIn(ctx, swapId, reason),
          subjects: swapSubjectsOf,
        })
        .catch((error: unknown) => {
          this.telemetry.swaps.add(1, { ...counted, outcome: outcomeOf(error) });
          throw error;
        });
      span.setAttribute('app.replayed', result.replayed);
      this.telemetry.swaps.add(1, { ...counted, outcome: result.replayed ? 'replayed' : 'ok' });
      return result;
    });
  }

  private async rollbackIn(ctx: WriteContext, swapId: string, reason: string): Promise<SwapRecord> {
    const { em } = ctx;
    // Lock order: swap_record, then faculty_week, then assignment, then call_assignment.
    const record = await em.findOne(SwapRecord, swapId, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!record)
      throw new NotFoundError('SWAP_NOT_FOUND', `no swap with id ${swapId}`, { swap_id: swapId });
    this.assertRollbackable(record);

    await ctx.lockFacultyWeeks({ written: touchedWeeksOf(transfersOf(record)) });
    // Moved back at once, each row only if it is still as the swap left it;
    // a refusal undoes whatever did move.
    const changed = await this.writes.revert(em, record.moves);
    const violations: RuleViolation[] = [
      ...changed.assignments.map((m) =>
        changedSince('assignment', m.assignmentId, `${m.blockDate} ${m.blockHalf}`),
      ),
      ...changed.calls.map((m) => changedSince('call', m.callId, `${m.date} ${m.callType}`)),
    ];
    if (violations.length === 0) violations.push(...(await this.rebookings(em, record)));
    if (violations.length > 0) throw new PreconditionFailedError(violations);

    record.status = 'ROLLED_BACK';
    record.rolledBackAt = this.clock.now();
    record.rolledBackBy = ctx.actor;
    record.rollbackReason = reason;
    // Undoing a swap can bring back the conflicts it resolved.
    await ctx.scheduleChanged(scheduleChangeOf(record));
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
          // In the program's time zone, as the people who read it keep time.
          message: `swap ${record.id} could be rolled back until ${this.clock.display(new Date(closesAt))}`,
          subject: `swap/${record.id}`,
        },
      ]);
    }
  }

  private async rebookings(em: EntityManager, record: SwapRecord): Promise<RuleViolation[]> {
    const moves = record.moves.assignments;
    const rows = await runPrepared(em, REBOOKED, [
      moves.map((m) => m.assignmentId),
      moves.map((m) => m.fromPersonId),
    ]);
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
