import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ConflictStatus, ConflictType, ResolutionStrategy } from '../src/generated/swap/v1/conflict';
import { ScheduleFixture } from './support/schedule-fixture';
import { startTestService, type TestService } from './support/test-service';

let ts: TestService;
let fx: ScheduleFixture;
beforeAll(async () => {
  ts = await startTestService();
  fx = await ScheduleFixture.connect(ts.db.url);
});
afterAll(async () => {
  await fx?.close();
  await ts?.close();
});

it('detects a leave overlap, resolves it by a swap, and finds it again after rollback', async () => {
  const week = '2030-03-04';
  const a = await fx.faculty('core');
  const b = await fx.faculty('core');
  await fx.assignWeek(a, week);
  await fx.absence(a, '2030-03-05', '2030-03-06', 'tdy');
  const { created } = await ts.conflicts.detectConflicts({ weekFrom: week, weekTo: week });
  expect(created.map((c) => c.type)).toEqual([ConflictType.CONFLICT_TYPE_LEAVE_FMIT_OVERLAP]);
  expect((await ts.conflicts.detectConflicts({ weekFrom: week, weekTo: week })).created).toEqual([]);
  const conflict = created[0]!;
  const { options } = await ts.conflicts.getResolutionOptions({ conflictId: conflict.id });
  const swapOption = options.find((o) => o.targetFacultyId === b)!;
  expect(swapOption.strategy).toBe(ResolutionStrategy.RESOLUTION_STRATEGY_SWAP_ASSIGNMENTS);
  const resolved = await ts.conflicts.resolveConflict({ conflictId: conflict.id, optionId: swapOption.optionId, requestId: randomUUID() });
  expect(resolved.conflict?.status).toBe(ConflictStatus.CONFLICT_STATUS_RESOLVED);
  expect(resolved.swap?.targetFacultyId).toBe(b);
  await ts.api.rollbackSwap({ swapId: resolved.swap!.id, reason: 'undo', requestId: randomUUID() });
  const { conflicts } = await ts.conflicts.listConflicts({ facultyId: a, status: ConflictStatus.CONFLICT_STATUS_NEW });
  expect(conflicts.map((c) => c.type)).toEqual([ConflictType.CONFLICT_TYPE_LEAVE_FMIT_OVERLAP]);
});
