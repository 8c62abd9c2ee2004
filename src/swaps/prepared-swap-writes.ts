import { OptimisticLockError } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { type PreparedStatement, preparedStatement, runPrepared } from '../db/prepared-statement';
import type { SwapWrites } from './swap-writes';
import type { AssignmentMove, CallMove, SwapMoves, SwapRecord } from './swap-record.entity';

interface MovedRows {
  assignments: string[];
  calls: string[];
}

// The CTEs of a statement that moves assignments and calls. Each UPDATE
// row-locks what it changes and changes a row only if it is still held, at the
// version expected, by the person it moves from; the ids of the rows moved come
// back. The faculty-week locks taken before keep writers of the same weeks
// apart, so these row locks never wait on another swap.
// $1..$4 assignments (id, from, to, version now), $5..$8 calls (the same).
const MOVES_CTES = `
with assignment_moves as (
  select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[]) as m(id, from_person, to_person, version)
), call_moves as (
  select * from unnest($5::uuid[], $6::uuid[], $7::uuid[], $8::int[]) as m(id, from_person, to_person, version)
), moved_assignments as (
  update assignment a set person_id = m.to_person, version = a.version + 1
  from assignment_moves m
  where a.id = m.id and a.person_id = m.from_person and a.version = m.version
  returning a.id
), moved_calls as (
  update call_assignment c set person_id = m.to_person, version = c.version + 1
  from call_moves m
  where c.id = m.id and c.person_id = m.from_person and c.version = m.version
  returning c.id
)`;

const MOVED_IDS = `
select
  (select coalesce(json_agg(id), '[]') from moved_assignments) as assignments,
  (select coalesce(json_agg(id), '[]') from moved_calls) as calls`;

/** Moves the rows (back, for a rollback: from and to swapped). */
const MOVE = preparedStatement<MovedRows>('swap_move_rows', MOVES_CTES + MOVED_IDS);

// Moves the rows and inserts the swap's record, in one round trip: the record
// goes in whatever moved, since a row that did not makes the attempt roll back.
// $9.. the record's columns.
const EXECUTE = preparedStatement<MovedRows>(
  'swap_execute',
  `${MOVES_CTES}, recorded as (
  insert into swap_record (id, source_faculty_id, source_week, target_faculty_id, target_week,
    swap_type, status, reason, requested_at, requested_by, executed_at, executed_by,
    rolled_back_at, rolled_back_by, rollback_reason, moves, warnings, fencing_token, version)
  values ($9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
    $24::jsonb, $25::jsonb, $26::bigint, $27)
)${MOVED_IDS}`,
);

/** A swap's changes as prepared, parameterized statements: one round trip each way. */
export class PreparedSwapWrites implements SwapWrites {
  async execute(em: EntityManager, swap: SwapRecord): Promise<void> {
    const { moves } = swap;
    const moved = await this.move(em, EXECUTE, moves, 'forward', [
      swap.id,
      swap.sourceFacultyId,
      swap.sourceWeek,
      swap.targetFacultyId,
      swap.targetWeek,
      swap.swapType,
      swap.status,
      swap.reason,
      swap.requestedAt,
      swap.requestedBy,
      swap.executedAt,
      swap.executedBy,
      swap.rolledBackAt,
      swap.rolledBackBy,
      swap.rollbackReason,
      JSON.stringify(swap.moves),
      JSON.stringify(swap.warnings),
      swap.fencingToken,
      swap.version,
    ]);
    const stale =
      moves.assignments.find((m) => !moved.assignments.has(m.assignmentId))?.assignmentId ??
      moves.calls.find((m) => !moved.calls.has(m.callId))?.callId;
    if (stale !== undefined) throw OptimisticLockError.lockFailed(`row ${stale}`);
  }

  async revert(em: EntityManager, moves: SwapMoves): Promise<SwapMoves> {
    const moved = await this.move(em, MOVE, moves, 'back', []);
    return {
      assignments: moves.assignments.filter((m) => !moved.assignments.has(m.assignmentId)),
      calls: moves.calls.filter((m) => !moved.calls.has(m.callId)),
    };
  }

  private async move(
    em: EntityManager,
    statement: PreparedStatement<MovedRows>,
    moves: SwapMoves,
    direction: 'forward' | 'back',
    extra: readonly unknown[],
  ): Promise<{ assignments: Set<string>; calls: Set<string> }> {
    // Forward: from the old holder at the version before; back: from the new
    // holder at the version the swap left.
    const ends = (m: AssignmentMove | CallMove) =>
      direction === 'forward'
        ? { from: m.fromPersonId, to: m.toPersonId, version: m.version - 1 }
        : { from: m.toPersonId, to: m.fromPersonId, version: m.version };
    const a = moves.assignments.map((m) => ({ id: m.assignmentId, ...ends(m) }));
    const c = moves.calls.map((m) => ({ id: m.callId, ...ends(m) }));
    const [row] = await runPrepared(em, statement, [
      a.map((m) => m.id),
      a.map((m) => m.from),
      a.map((m) => m.to),
      a.map((m) => m.version),
      c.map((m) => m.id),
      c.map((m) => m.from),
      c.map((m) => m.to),
      c.map((m) => m.version),
      ...extra,
    ]);
    return { assignments: new Set(row?.assignments), calls: new Set(row?.calls) };
  }
}
