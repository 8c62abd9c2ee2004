import type { EntityManager } from '@mikro-orm/postgresql';
import type { Clock } from '../domain/clock';
import { PreconditionFailedError } from '../domain/errors';
import type { ConflictAlert } from './conflict-alert.entity';
import { lockOpenAlert } from './conflict-resolver';

/** Acknowledging and ignoring alerts: status changes with no schedule change. */
export class ConflictTriage {
  constructor(private readonly clock: Clock) {}

  async acknowledgeIn(
    em: EntityManager,
    conflictId: string,
    notes: string,
    actor: string,
  ): Promise<ConflictAlert> {
    const alert = await lockOpenAlert(em, conflictId);
    if (alert.status === 'ACKNOWLEDGED') {
      throw new PreconditionFailedError([
        {
          reason: 'INVALID_STATUS',
          message: `conflict ${conflictId} was already acknowledged by ${alert.acknowledgedBy ?? 'someone'}`,
          subject: `conflict/${conflictId}`,
        },
      ]);
    }
    alert.status = 'ACKNOWLEDGED';
    alert.acknowledgedBy = actor;
    alert.acknowledgedAt = this.clock.now();
    if (notes) alert.notes = notes;
    return alert;
  }

  async ignoreIn(
    em: EntityManager,
    conflictId: string,
    reason: string,
    actor: string,
  ): Promise<ConflictAlert> {
    const alert = await lockOpenAlert(em, conflictId);
    alert.status = 'IGNORED';
    alert.resolvedBy = actor;
    alert.resolvedAt = this.clock.now();
    alert.notes = reason;
    return alert;
  }
}
