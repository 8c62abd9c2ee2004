import { status } from '@grpc/grpc-js';
import type { Swap } from '../../src/generated/swap/v1/swap';
import { type Outcome, outcomeOf } from './grpc-outcomes';
import { waitFor } from './sql-fixtures';

/** Statuses after which the same request, sent again with the same request_id, is safe and may succeed. */
const RETRYABLE = new Set<status>([status.UNAVAILABLE, status.ABORTED, status.DEADLINE_EXCEEDED]);

/**
 * Sends `call()` (the same request, so the same request_id, every time) until
 * its outcome is final: OK, or a status a retry would not change. Returns the
 * final outcome and every retryable one met on the way, so a test can say what
 * callers saw during a fault. Bounded like `waitFor`; never timed.
 */
export async function untilSettled(
  call: () => Promise<{ swap?: Swap | undefined }>,
): Promise<{ final: Outcome; retried: Outcome[] }> {
  const retried: Outcome[] = [];
  let final: Outcome | undefined;
  await waitFor('the call to settle', async () => {
    const outcome = await outcomeOf(call());
    if (!outcome.ok && RETRYABLE.has(outcome.code)) {
      retried.push(outcome);
      return false;
    }
    final = outcome;
    return true;
  });
  return { final: final!, retried };
}
