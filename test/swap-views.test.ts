import { status } from '@grpc/grpc-js';
import { beforeAll, expect, it } from 'vitest';
import { SwapType, SwapView, type Swap } from '../src/generated/swap/v1/swap';
import { failure } from './support/grpc-outcomes';
import type { ScheduleFixture } from './support/schedule-fixture';
import { errorDetails, type TestService, useTestService } from './support/test-service';

let ts: TestService;
let fx: ScheduleFixture;
useTestService((started) => ({ ts, fx } = started));

const WEEKS = ['2030-04-01', '2030-04-08', '2030-04-15'];
let executed: Swap[] = [];

beforeAll(async () => {
  executed = [];
  for (const week of WEEKS) {
    const [giver, taker] = [await fx.faculty('core'), await fx.faculty('core')];
    await fx.assignWeek(giver, week);
    const { swap } = await ts.api.executeSwap({
      sourceFacultyId: giver,
      sourceWeek: week,
      targetFacultyId: taker,
      swapType: SwapType.SWAP_TYPE_ABSORB,
      reason: 'views',
      requestId: crypto.randomUUID(),
    });
    executed.push(swap!);
  }
});

const withoutMoves = (swap: Swap): Swap => ({ ...swap, movedAssignments: [], movedCalls: [] });

it('lists swaps whole in the full view, which is also the unspecified one', async () => {
  const full = await ts.api.listSwaps({ view: SwapView.SWAP_VIEW_FULL });
  const unspecified = await ts.api.listSwaps({});
  expect(unspecified).toEqual(full);
  for (const swap of executed) {
    expect(swap.movedAssignments.length).toBeGreaterThan(0);
    expect(full.swaps).toContainEqual(swap);
  }
});

it('lists every field but the moves in the basic view, page for page', async () => {
  const full = await ts.api.listSwaps({ pageSize: 2 });
  const basic = await ts.api.listSwaps({ pageSize: 2, view: SwapView.SWAP_VIEW_BASIC });
  expect(basic.swaps).toEqual(full.swaps.map(withoutMoves));
  expect(basic.nextPageToken).toBe(full.nextPageToken);
  // A token from one view pages on in the other.
  const next = await ts.api.listSwaps({
    pageSize: 2,
    pageToken: full.nextPageToken,
    view: SwapView.SWAP_VIEW_BASIC,
  });
  const fullNext = await ts.api.listSwaps({ pageSize: 2, pageToken: full.nextPageToken });
  expect(next.swaps).toEqual(fullNext.swaps.map(withoutMoves));
});

it('refuses a view it does not know, naming the ones it does', async () => {
  const refused = await failure(ts.api.listSwaps({ view: 7 as SwapView }));
  expect(refused.code).toBe(status.INVALID_ARGUMENT);
  expect(errorDetails(refused)).toMatchObject({ reason: 'INVALID_ENUM', fields: ['view'] });
  expect(refused.details).toContain('SWAP_VIEW_BASIC');
});
