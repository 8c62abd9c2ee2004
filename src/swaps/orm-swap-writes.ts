import { LockMode, OptimisticLockError } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Assignment } from '../schedule/assignment.entity';
import { CallAssignment } from '../schedule/call-assignment.entity';
import { Person } from '../schedule/person.entity';
import type { SwapWrites } from './swap-writes';
import type { SwapMoves, SwapRecord } from './swap-record.entity';

/** A row a move changes, as loaded: its holder and version. */
interface Movable {
  id: string;
  person: { id: string };
  version: number;
}

/**
 * The swap's changes as the ORM makes them: the rows loaded PESSIMISTIC_WRITE
 * in id order, changed as entities, and written with the new record by the
 * flush, which checks their versions again. Selected by `SCHEDULE_WRITES=orm`.
 */
export class OrmSwapWrites implements SwapWrites {
  async execute(em: EntityManager, swap: SwapRecord): Promise<void> {
    const { moves } = swap;
    const [assignments, calls] = await this.load(em, moves);
    const move = (
      row: Movable | undefined,
      id: string,
      from: string,
      to: string,
      version: number,
    ) => {
      if (!row || row.person.id !== from || row.version !== version - 1)
        throw OptimisticLockError.lockFailed(`row ${id}`);
      row.person = em.getReference(Person, to, { wrapped: true });
    };
    for (const m of moves.assignments)
      move(
        assignments.get(m.assignmentId),
        m.assignmentId,
        m.fromPersonId,
        m.toPersonId,
        m.version,
      );
    for (const m of moves.calls)
      move(calls.get(m.callId), m.callId, m.fromPersonId, m.toPersonId, m.version);
    em.persist(swap);
  }

  async revert(em: EntityManager, moves: SwapMoves): Promise<SwapMoves> {
    const [assignments, calls] = await this.load(em, moves);
    const unchanged = (row: Movable | undefined, holder: string, version: number) =>
      row !== undefined && row.person.id === holder && row.version === version;
    const changed: SwapMoves = {
      assignments: moves.assignments.filter(
        (m) => !unchanged(assignments.get(m.assignmentId), m.toPersonId, m.version),
      ),
      calls: moves.calls.filter((m) => !unchanged(calls.get(m.callId), m.toPersonId, m.version)),
    };
    if (changed.assignments.length > 0 || changed.calls.length > 0) return changed;
    for (const m of moves.assignments)
      assignments.get(m.assignmentId)!.person = em.getReference(Person, m.fromPersonId, {
        wrapped: true,
      });
    for (const m of moves.calls)
      calls.get(m.callId)!.person = em.getReference(Person, m.fromPersonId, { wrapped: true });
    return changed;
  }

  /** The rows of `moves`, locked in id order, assignments before calls. */
  private async load(
    em: EntityManager,
    moves: SwapMoves,
  ): Promise<[Map<string, Assignment>, Map<string, CallAssignment>]> {
    const locked = { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: 'asc' } } as const;
    const assignments = moves.assignments.length
      ? await em.find(
          Assignment,
          { id: { $in: moves.assignments.map((m) => m.assignmentId) } },
          locked,
        )
      : [];
    const calls = moves.calls.length
      ? await em.find(CallAssignment, { id: { $in: moves.calls.map((m) => m.callId) } }, locked)
      : [];
    return [new Map(assignments.map((a) => [a.id, a])), new Map(calls.map((c) => [c.id, c]))];
  }
}
