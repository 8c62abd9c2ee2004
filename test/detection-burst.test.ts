import { expect, it } from 'vitest';
import { addDays } from '../src/domain/calendar';
import { status } from '@grpc/grpc-js';
import { isServiceError } from './support/grpc-outcomes';
import type { ScheduleFixture } from './support/schedule-fixture';
import { errorDetails, type TestService, useTestService } from './support/test-service';

/**
 * Issue 11, defect 8: a burst of concurrent DetectConflicts calls queues for
 * the detection lock within each call's deadline instead of failing ABORTED
 * LOCK_TIMEOUT. LOCK_WAIT_MS is tiny here so that, were the lock wait bounded
 * by it, the burst would be refused for certain.
 */

let ts: TestService;
let fx: ScheduleFixture;
useTestService((started) => ({ ts, fx } = started), { LOCK_WAIT_MS: '1' });

it('answers every one of 75 concurrent DetectConflicts calls, none ABORTED', async () => {
  const W = '2030-03-04';
  for (let i = 0; i < 4; i++) {
    const faculty = await fx.faculty();
    await fx.assignWeek(faculty, addDays(W, 7 * i));
    await fx.absence(faculty, addDays(W, 7 * i + 1), addDays(W, 7 * i + 2), 'tdy');
  }
  const deadline = new Date(Date.now() + 120_000);

  const outcomes = await Promise.all(
    Array.from({ length: 75 }, () =>
      ts.conflicts.detectConflicts({ weekFrom: W, weekTo: addDays(W, 7 * 8) }, { deadline }).then(
        () => 'OK',
        (error: unknown) => {
          if (!isServiceError(error)) throw error;
          return `${status[error.code]}/${errorDetails(error).reason}`;
        },
      ),
    ),
  );

  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
  expect(counts).toEqual({ OK: 75 });
  // Run together or one after the other, the scans raised each alert once.
  const { conflicts } = await ts.conflicts.listConflicts({});
  expect(conflicts).toHaveLength(4);
});
