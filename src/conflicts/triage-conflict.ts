import type { CallContext } from '../domain/call-context';
import type { Clock } from '../domain/clock';
import { PreconditionFailedError } from '../domain/errors';
import type { Committed, WritePath } from '../write-path/write-path';
import type { ConflictAlert } from './conflict-alert.entity';
import { alertSubjectsOf, conflictLockName, lockOpenAlert } from './open-alert';

/** AcknowledgeConflict and IgnoreConflict: status changes with no schedule change. */
export class TriageConflict {
  constructor(
    private readonly writePath: WritePath,
    private readonly clock: Clock,
  ) {}

  /** NEW → ACKNOWLEDGED, once per request id. */
  acknowledge(
    conflictId: string,
    notes: string,
    requestId: string,
    call: CallContext,
  ): Promise<Committed<ConflictAlert>> {
    return this.writePath.commit(call, {
      method: 'AcknowledgeConflict',
      requestId,
      request: { conflictId, notes },
      lockNames: [conflictLockName(conflictId)],
      subjects: alertSubjectsOf,
      change: async ({ em, actor }) => {
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
      },
    });
  }

  /** An open alert → IGNORED with a reason, once per request id. */
  ignore(
    conflictId: string,
    reason: string,
    requestId: string,
    call: CallContext,
  ): Promise<Committed<ConflictAlert>> {
    return this.writePath.commit(call, {
      method: 'IgnoreConflict',
      requestId,
      request: { conflictId, reason },
      lockNames: [conflictLockName(conflictId)],
      subjects: alertSubjectsOf,
      change: async ({ em, actor }) => {
        const alert = await lockOpenAlert(em, conflictId);
        alert.status = 'IGNORED';
        alert.resolvedBy = actor;
        alert.resolvedAt = this.clock.now();
        alert.notes = reason;
        return alert;
      },
    });
  }
}
