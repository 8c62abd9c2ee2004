import { randomUUID } from 'node:crypto';
import { SwapType } from '../../src/generated/swap/v1/swap';
import type { ScheduleFixture } from './schedule-fixture';

export interface SwapPairOptions {
  /** Monday of the week the source holds. */
  sourceWeek: string;
  /** Monday of the week the target holds. */
  targetWeek: string;
  /** The request's reason. */
  reason: string;
  /** The two faculty members' names; generated unless given. */
  names?: readonly [source: string, target: string];
}

/**
 * Two core faculty, each holding a whole FMIT week, and the ONE_TO_ONE
 * ExecuteSwap request that trades them; each call of `request` is a new
 * request_id unless one is given.
 */
export async function fmitSwapPair(fx: ScheduleFixture, options: SwapPairOptions) {
  const { sourceWeek, targetWeek, reason, names } = options;
  const source = await fx.faculty('core', names?.[0]);
  const target = await fx.faculty('core', names?.[1]);
  const sourceAssignments = await fx.assignWeek(source, sourceWeek);
  await fx.assignWeek(target, targetWeek);
  return {
    source,
    target,
    sourceAssignments,
    request: (requestId = randomUUID()) => ({
      sourceFacultyId: source,
      sourceWeek,
      targetFacultyId: target,
      targetWeek,
      swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
      reason,
      requestId,
    }),
  };
}
