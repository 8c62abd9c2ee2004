import type { CallContext } from '../domain/call-context';
import { inBusinessSpan } from '../observability/business-span';
import type { ServiceTelemetry } from '../observability/service-telemetry';
import type { WritePath } from '../write-path/write-path';
import type { ConflictAlert } from './conflict-alert.entity';
import type { ConflictDetector } from './conflict-detector';

/**
 * DetectConflicts: scans a range of weeks and raises the alerts not already
 * open. It needs no request id: the alerts' unique index makes a second run
 * raise nothing, and the lock only saves replicas a duplicate scan.
 */
export class DetectConflicts {
  constructor(
    private readonly writePath: WritePath,
    private readonly detector: ConflictDetector,
    private readonly telemetry: ServiceTelemetry,
  ) {}

  detect(firstWeek: string, lastWeek: string, call: CallContext): Promise<ConflictAlert[]> {
    const attributes = { 'conflict.week_from': firstWeek, 'conflict.week_to': lastWeek };
    return inBusinessSpan(this.telemetry.tracer, 'conflict.detect', attributes, async (span) => {
      const created = await this.writePath.commitLocked(call, {
        lockNames: ['conflicts:detect'],
        // Callers queue for the lock until their deadline: it only spares a
        // duplicate scan, so contention is no reason to refuse one.
        lockWait: 'budget',
        change: ({ em }) => this.detector.detect(em, firstWeek, lastWeek),
      });
      span.setAttribute('conflict.created', created.length);
      return created;
    });
  }
}
