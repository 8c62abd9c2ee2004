import { type Deadline, status } from '@grpc/grpc-js';

/**
 * The status a call ended with, as its client saw it. A client that cancelled
 * got CANCELLED, and one whose deadline passed got DEADLINE_EXCEEDED (grpc-js
 * answers both itself), whatever the handler answered afterwards: a lock wait
 * cut short by the cancel is not a concurrency abort, and logs and metrics
 * must not count it as one.
 */
export function statusSeenByClient(
  sent: status,
  cancelledAt: number | undefined,
  deadline: Deadline,
): status {
  if (cancelledAt === undefined) return sent;
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) && cancelledAt >= at ? status.DEADLINE_EXCEEDED : status.CANCELLED;
}
