import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { NotFoundError, PreconditionFailedError } from '../domain/errors';
import type { MutationSubjects } from '../write-path/write-hooks';
import { ConflictAlert, OPEN_STATUSES } from './conflict-alert.entity';

/** The lock name of an alert; every write to it holds this. */
export function conflictLockName(conflictId: string): string {
  return `conflict:${conflictId}`;
}

/** What a write to an alert is filed under in the audit trail. */
export function alertSubjectsOf(alert: ConflictAlert): MutationSubjects {
  return { swapIds: [], conflictIds: [alert.id] };
}

/**
 * Locks an alert FOR UPDATE and fails unless it still asks for action: of
 * several concurrent writers, only the first finds it open.
 */
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
