import { randomUUID } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { SwapStatus, SwapType } from '../src/generated/swap/v1/swap';
import type { ScheduleFixture } from './support/schedule-fixture';
import { errorDetails, type TestService, useTestService } from './support/test-service';

let ts: TestService;
let fx: ScheduleFixture;
useTestService((started) => ({ ts, fx } = started));

const W1 = '2030-02-04';
const W2 = '2030-02-18';

describe('ExecuteSwap and RollbackSwap', () => {
  it('swaps two FMIT weeks one-to-one, with their weekend calls, and rolls it back exactly', async () => {
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fx.assignWeek(a, W1);
    await fx.assignWeek(b, W2);
    await fx.call(a, '2030-02-08');
    await fx.call(a, '2030-02-09');
    await fx.call(b, '2030-02-22');
    const before = await fx.snapshot();

    const { swap } = await ts.api.executeSwap({
      sourceFacultyId: a,
      sourceWeek: W1,
      targetFacultyId: b,
      targetWeek: W2,
      swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
      reason: 'conference',
      requestId: randomUUID(),
    });
    expect(swap?.status).toBe(SwapStatus.SWAP_STATUS_EXECUTED);
    expect(swap?.movedAssignments).toHaveLength(28);
    expect(swap?.movedCalls).toHaveLength(3);
    const moved = await fx.db.query<{ n: number }>(
      `select count(*)::int as n from assignment where person_id = $1`,
      [b],
    );
    expect(moved.rows[0]?.n).toBe(14);

    const { swap: rolledBack } = await ts.api.rollbackSwap({
      swapId: swap!.id,
      reason: 'changed plans',
      requestId: randomUUID(),
    });
    expect(rolledBack?.status).toBe(SwapStatus.SWAP_STATUS_ROLLED_BACK);
    expect(await fx.snapshot()).toEqual(before);
  });

  it('rejects a malformed week with INVALID_ARGUMENT naming the field', async () => {
    const error = (await ts.api
      .executeSwap({
        sourceFacultyId: randomUUID(),
        sourceWeek: '2030-02-05',
        targetFacultyId: randomUUID(),
        swapType: SwapType.SWAP_TYPE_ABSORB,
        requestId: randomUUID(),
      })
      .catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toContain('source_week');
    expect(errorDetails(error).fields).toEqual(['source_week']);
  });
});
