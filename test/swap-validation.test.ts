import { randomUUID } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { addDays } from '../src/domain/calendar';
import {
  type ExecuteSwapRequest,
  type Swap,
  SwapStatus,
  SwapType,
  type Violation,
} from '../src/generated/swap/v1/swap';
import { failure } from './support/grpc-outcomes';
import type { ScheduleFixture } from './support/schedule-fixture';
import { errorDetails, type TestService, TODAY, useTestService } from './support/test-service';

/**
 * Every swap rule through the real gRPC client: for each, a swap that passes
 * and one that breaks it. A refused swap must be refused identically by
 * ValidateSwap and ExecuteSwap, and must leave every row as it was.
 */

let ts: TestService;
let fx: ScheduleFixture;
useTestService((started) => ({ ts, fx } = started));

// The tests share one database, and blocks are shared by date: each test takes
// weeks of its own so that no roster (and so no supervision count) overlaps.
const FIRST_FREE_MONDAY = '2030-02-04';
let slotsTaken = 0;
/** Four consecutive Mondays that no other test uses, all beyond the short-notice window. */
function freshWeeks(): [string, string, string, string] {
  const monday = addDays(FIRST_FREE_MONDAY, 35 * slotsTaken++);
  return [monday, addDays(monday, 7), addDays(monday, 14), addDays(monday, 21)];
}

const PAST_MONDAY = addDays(TODAY, -7);
const SHORT_NOTICE_MONDAY = addDays(TODAY, 7);
/** Exactly 14 days away: the first week outside the short-notice window. */
const FIRST_WEEK_WITH_NOTICE = addDays(TODAY, 14);

type SwapRequest = Partial<ExecuteSwapRequest>;

function absorb(source: string, week: string, target: string): SwapRequest {
  return {
    sourceFacultyId: source,
    sourceWeek: week,
    targetFacultyId: target,
    swapType: SwapType.SWAP_TYPE_ABSORB,
    reason: 'test',
    requestId: randomUUID(),
  };
}

function oneToOne(
  source: string,
  sourceWeek: string,
  target: string,
  targetWeek: string,
): SwapRequest {
  return {
    sourceFacultyId: source,
    sourceWeek,
    targetFacultyId: target,
    targetWeek,
    swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
    reason: 'test',
    requestId: randomUUID(),
  };
}

/** A whole FMIT week, with the Friday and Saturday calls that follow it. */
async function fmitWeek(personId: string, week: string): Promise<void> {
  await fx.assignWeek(personId, week, { rotation: 'FMIT' });
  await fx.call(personId, addDays(week, 4), 'overnight');
  await fx.call(personId, addDays(week, 5), 'weekend');
}

async function dbState() {
  const counts = await fx.db.query<{ swaps: number; facultyWeeks: number }>(
    `select (select count(*)::int from swap_record) as swaps, (select count(*)::int from faculty_week) as "facultyWeeks"`,
  );
  return { rows: await fx.snapshot(), ...counts.rows[0]! };
}

/** ValidateSwap, checking that it wrote nothing. */
async function validate(request: SwapRequest) {
  const before = await dbState();
  const verdict = await ts.api.validateSwap(request);
  expect(await dbState()).toEqual(before);
  return verdict;
}

/**
 * Expects ValidateSwap to report exactly `reasons`, and ExecuteSwap to fail with
 * FAILED_PRECONDITION naming the first in ErrorInfo and all of them in
 * PreconditionFailure, changing nothing. Returns the validation errors.
 */
async function expectRefused(request: SwapRequest, reasons: string[]): Promise<Violation[]> {
  const verdict = await validate(request);
  expect(verdict.valid).toBe(false);
  expect(verdict.errors.map((e) => e.reason)).toEqual(reasons);

  const before = await dbState();
  const error = await failure(ts.api.executeSwap(request));
  expect(error.code, error.details).toBe(status.FAILED_PRECONDITION);
  expect(errorDetails(error)).toMatchObject({ reason: reasons[0], violations: reasons });
  expect(await dbState()).toEqual(before);
  return verdict.errors;
}

/** Expects ValidateSwap to accept the swap and ExecuteSwap to carry it out as reported. */
async function expectExecuted(request: SwapRequest): Promise<Swap> {
  const verdict = await validate(request);
  expect(verdict.errors).toEqual([]);
  expect(verdict.valid).toBe(true);

  const { swap } = await ts.api.executeSwap(request).catch((error: ServiceError) => {
    throw new Error(`ExecuteSwap failed: ${error.code} ${error.details}`);
  });
  expect(swap?.status).toBe(SwapStatus.SWAP_STATUS_EXECUTED);
  expect(swap!.warnings).toEqual(verdict.warnings);
  for (const m of swap!.movedAssignments) {
    const { rows } = await fx.db.query<{ person_id: string }>(
      `select person_id from assignment where id = $1`,
      [m.assignmentId],
    );
    expect(rows[0]?.person_id).toBe(m.toPersonId);
  }
  for (const m of swap!.movedCalls) {
    const { rows } = await fx.db.query<{ person_id: string }>(
      `select person_id from call_assignment where id = $1`,
      [m.callId],
    );
    expect(rows[0]?.person_id).toBe(m.toPersonId);
  }
  return swap!;
}

describe('NOT_FACULTY', () => {
  it('passes when both people are faculty, whatever their role', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('adjunct');
    await fmitWeek(a, w1);
    const swap = await expectExecuted(absorb(a, w1, b));
    expect(swap.movedAssignments).toHaveLength(14);
    expect(swap.movedCalls).toHaveLength(2);
  });

  it('refuses a resident on either side', async () => {
    const [w1, w2] = freshWeeks();
    const a = await fx.faculty('core');
    const resident = await fx.resident(2);
    await fmitWeek(a, w1);
    await fx.assignWeek(resident, w2);
    const [violation] = await expectRefused(absorb(a, w1, resident), ['NOT_FACULTY']);
    expect(violation?.subject).toBe(`person/${resident}`);
    await expectRefused(oneToOne(resident, w2, a, w1), ['NOT_FACULTY']);
  });

  it('answers NOT_FOUND / FACULTY_NOT_FOUND for an unknown person, and ValidateSwap reports it', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const nobody = randomUUID();
    await fmitWeek(a, w1);
    const verdict = await validate(absorb(a, w1, nobody));
    expect(verdict.valid).toBe(false);
    expect(verdict.errors.map((e) => e.reason)).toEqual(['FACULTY_NOT_FOUND']);

    const before = await dbState();
    const error = await failure(ts.api.executeSwap(absorb(a, w1, nobody)));
    expect(error.code).toBe(status.NOT_FOUND);
    expect(errorDetails(error).reason).toBe('FACULTY_NOT_FOUND');
    expect(await dbState()).toEqual(before);
  });
});

describe('PAST_WEEK', () => {
  it('passes for the week that starts today (it has not begun before today)', async () => {
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, TODAY);
    const swap = await expectExecuted(absorb(a, TODAY, b));
    expect(swap.warnings.map((w) => w.reason)).toEqual(['SHORT_NOTICE']);
  });

  it('refuses to give away a week that began before today', async () => {
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, PAST_MONDAY);
    const [violation] = await expectRefused(absorb(a, PAST_MONDAY, b), ['PAST_WEEK']);
    expect(violation?.subject).toBe(`week/${PAST_MONDAY}`);
  });

  it('refuses a one-to-one swap whose target week is past', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, w1);
    await fx.assignWeek(b, PAST_MONDAY, { rotation: 'inpatient' });
    const [violation] = await expectRefused(oneToOne(a, w1, b, PAST_MONDAY), ['PAST_WEEK']);
    expect(violation?.subject).toBe(`week/${PAST_MONDAY}`);
  });
});

describe('NO_ASSIGNMENTS', () => {
  it('passes when the giver holds a single half-day in the week', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fx.assign(a, addDays(w1, 2), 'PM', { rotation: 'inpatient' });
    const swap = await expectExecuted(absorb(a, w1, b));
    expect(swap.movedAssignments).toHaveLength(1);
  });

  it('refuses to absorb a week the source does not work', async () => {
    const [w1, , w3] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, w3);
    const [violation] = await expectRefused(absorb(a, w1, b), ['NO_ASSIGNMENTS']);
    expect(violation?.subject).toBe(`faculty/${a}/week/${w1}`);
  });

  it('refuses a one-to-one swap when the target has nothing to give back', async () => {
    const [w1, , w3] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, w1);
    const [violation] = await expectRefused(oneToOne(a, w1, b, w3), ['NO_ASSIGNMENTS']);
    expect(violation?.subject).toBe(`faculty/${b}/week/${w3}`);
  });
});

describe('FACULTY_ABSENT', () => {
  it('passes when the receiver has only non-blocking leave that week, or blocking leave that ends before it', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, w1);
    await fx.absence(b, addDays(w1, -10), addDays(w1, -1), 'deployment');
    await fx.absence(b, w1, addDays(w1, 4), 'vacation');
    await fx.absence(b, addDays(w1, 5), addDays(w1, 6), 'sick');
    await expectExecuted(absorb(a, w1, b));
  });

  it('refuses when the receiver is deployed on just the last day of the week', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, w1);
    await fx.absence(b, addDays(w1, 6), addDays(w1, 20), 'deployment');
    const [violation] = await expectRefused(absorb(a, w1, b), ['FACULTY_ABSENT']);
    expect(violation?.subject).toBe(`faculty/${b}/week/${w1}`);
  });

  it('refuses a one-to-one swap when the source is away in the week it would receive', async () => {
    const [w1, , w3] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, w1);
    await fx.assignWeek(b, w3, { rotation: 'inpatient' });
    // Eight days of medical leave is past the seven-day threshold, so it blocks.
    await fx.absence(a, addDays(w3, -2), addDays(w3, 5), 'medical');
    const [violation] = await expectRefused(oneToOne(a, w1, b, w3), ['FACULTY_ABSENT']);
    expect(violation?.subject).toBe(`faculty/${a}/week/${w3}`);
  });
});

describe('DOUBLE_BOOKING', () => {
  it('passes when the receiver works other half-days of the same week', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fx.assignWeek(a, w1, { rotation: 'inpatient', halves: ['AM'] });
    await fx.assignWeek(b, w1, { rotation: 'inpatient', halves: ['PM'] });
    await expectExecuted(absorb(a, w1, b));
    const { rows } = await fx.db.query<{ n: number }>(
      `select count(*)::int as n from assignment where person_id = $1`,
      [b],
    );
    expect(rows[0]?.n).toBe(14);
  });

  it('refuses when the receiver already holds one of the blocks', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, w1);
    await fx.assign(b, addDays(w1, 2), 'AM', { rotation: 'inpatient' });
    const [violation] = await expectRefused(absorb(a, w1, b), ['DOUBLE_BOOKING']);
    expect(violation?.subject).toBe(`block/${addDays(w1, 2)}/AM`);
  });

  it('lets two faculty trade places within one week, since neither ends up double-booked', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fx.assignWeek(a, w1, { rotation: 'FMIT', days: [0, 1] });
    await fx.assignWeek(b, w1, { rotation: 'inpatient', days: [0, 1] });
    const swap = await expectExecuted(oneToOne(a, w1, b, w1));
    expect(swap.movedAssignments).toHaveLength(8);
  });
});

describe('SUPERVISION_RATIO', () => {
  /** A's Monday-morning block of `week`, shared with another faculty member and residents. */
  async function supervisedBlock(
    week: string,
    other: 'supervising' | 'backup',
    pgy1: number,
    seniors: number,
  ) {
    const a = await fx.faculty('core');
    const c = await fx.faculty('core');
    await fx.assign(a, week, 'AM', { rotation: 'FMIT', role: 'primary' });
    await fx.assign(c, week, 'AM', { rotation: 'FMIT', role: other });
    for (let i = 0; i < pgy1; i++) await fx.assign(await fx.resident(1), week, 'AM');
    for (let i = 0; i < seniors; i++)
      await fx.assign(await fx.resident(i % 2 === 0 ? 2 : 3), week, 'AM');
    return a;
  }

  it('passes when the block keeps exactly the faculty it needs (3 PGY-1 and 1 PGY-2 need 2)', async () => {
    const [w1] = freshWeeks();
    const a = await supervisedBlock(w1, 'supervising', 3, 1);
    const b = await fx.faculty('core');
    await expectExecuted(absorb(a, w1, b));
  });

  it('refuses when the block would have too few supervising faculty (a backup does not count)', async () => {
    const [w1] = freshWeeks();
    const a = await supervisedBlock(w1, 'backup', 3, 0);
    const b = await fx.faculty('core');
    const [violation] = await expectRefused(absorb(a, w1, b), ['SUPERVISION_RATIO']);
    expect(violation?.subject).toBe(`block/${w1}/AM`);
  });
});

describe('CLINIC_LIMIT', () => {
  it('passes when the receiver reaches its limit exactly (apd: 2)', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('apd');
    await fx.assignWeek(a, w1, { rotation: 'clinic', days: [1] });
    await expectExecuted(absorb(a, w1, b));
  });

  it('passes when the receiver is already over its limit but receives no clinic', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('pd');
    await fx.assign(b, w1, 'AM', { rotation: 'clinic' });
    await fx.assignWeek(a, w1, { rotation: 'FMIT', days: [1, 2, 3, 4] });
    await expectExecuted(absorb(a, w1, b));
  });

  it('refuses when the receiver would go over its limit', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('apd');
    await fx.assign(b, w1, 'AM', { rotation: 'clinic' });
    await fx.assignWeek(a, w1, { rotation: 'clinic', days: [1] });
    const [violation] = await expectRefused(absorb(a, w1, b), ['CLINIC_LIMIT']);
    expect(violation?.subject).toBe(`faculty/${b}/week/${w1}`);
  });

  it('refuses a one-to-one swap that gives the source more clinic than its role allows (dept_chief: 1)', async () => {
    const [w1, , w3] = freshWeeks();
    const a = await fx.faculty('dept_chief');
    const b = await fx.faculty('core');
    await fmitWeek(a, w1);
    await fx.assignWeek(b, w3, { rotation: 'clinic', days: [2] });
    const [violation] = await expectRefused(oneToOne(a, w1, b, w3), ['CLINIC_LIMIT']);
    expect(violation?.subject).toBe(`faculty/${a}/week/${w3}`);
  });
});

describe('BACK_TO_BACK_FMIT', () => {
  it('passes when the receiver has FMIT two weeks away', async () => {
    const [w1, , w3] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, w1);
    await fmitWeek(b, w3);
    await expectExecuted(absorb(a, w1, b));
  });

  it('passes a one-to-one swap of adjacent FMIT weeks, since each gives one away', async () => {
    const [w1, w2] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, w1);
    await fmitWeek(b, w2);
    const swap = await expectExecuted(oneToOne(a, w1, b, w2));
    expect(swap.movedAssignments).toHaveLength(28);
    expect(swap.movedCalls).toHaveLength(4);
  });

  it.each([
    ['the week after', 1],
    ['the week before', -1],
  ])('refuses when the receiver has FMIT in %s', async (_, direction) => {
    const [, w2] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, w2);
    await fmitWeek(b, addDays(w2, 7 * direction));
    const [violation] = await expectRefused(absorb(a, w2, b), ['BACK_TO_BACK_FMIT']);
    expect(violation?.subject).toBe(`faculty/${b}/week/${w2}`);
  });
});

describe('a swap that breaks several rules', () => {
  it('reports the receiver being away and back-to-back FMIT together', async () => {
    const [w1, w2] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, w1);
    await fmitWeek(b, w2);
    await fx.absence(b, addDays(w1, 1), addDays(w1, 3), 'tdy');
    await expectRefused(absorb(a, w1, b), ['FACULTY_ABSENT', 'BACK_TO_BACK_FMIT']);
  });

  it('reports a double booking and the supervision it costs together', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fx.assign(a, w1, 'AM', { rotation: 'FMIT', role: 'primary' });
    await fx.assign(b, w1, 'AM', { rotation: 'FMIT', role: 'supervising' });
    for (let i = 0; i < 3; i++) await fx.assign(await fx.resident(1), w1, 'AM');
    await expectRefused(absorb(a, w1, b), ['DOUBLE_BOOKING', 'SUPERVISION_RATIO']);
  });
});

describe('SHORT_NOTICE', () => {
  it('is a warning: the swap is valid, executes, and carries the warning', async () => {
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, SHORT_NOTICE_MONDAY);
    const request = absorb(a, SHORT_NOTICE_MONDAY, b);

    const verdict = await validate(request);
    expect(verdict.valid).toBe(true);
    expect(verdict.errors).toEqual([]);
    expect(verdict.warnings).toEqual([
      expect.objectContaining({ reason: 'SHORT_NOTICE', subject: `week/${SHORT_NOTICE_MONDAY}` }),
    ]);

    const swap = await expectExecuted(request);
    expect(swap.warnings).toEqual([
      expect.objectContaining({ reason: 'SHORT_NOTICE', subject: `week/${SHORT_NOTICE_MONDAY}` }),
    ]);
    const { swap: stored } = await ts.api.getSwap({ swapId: swap.id });
    expect(stored?.warnings).toEqual(swap.warnings);
  });

  it('warns only about the week that is close, in a one-to-one swap', async () => {
    const [w1] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fx.assignWeek(a, SHORT_NOTICE_MONDAY, { rotation: 'inpatient', halves: ['PM'] });
    await fmitWeek(b, w1);
    const swap = await expectExecuted(oneToOne(a, SHORT_NOTICE_MONDAY, b, w1));
    expect(swap.warnings.map((w) => w.subject)).toEqual([`week/${SHORT_NOTICE_MONDAY}`]);
  });

  it('does not warn about a week that starts exactly 14 days from today', async () => {
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fmitWeek(a, FIRST_WEEK_WITH_NOTICE);
    const swap = await expectExecuted(absorb(a, FIRST_WEEK_WITH_NOTICE, b));
    expect(swap.warnings).toEqual([]);
  });

  it('is never listed among the violations of a refused swap', async () => {
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fx.assignWeek(a, SHORT_NOTICE_MONDAY, { rotation: 'inpatient', halves: ['AM'] });
    await fx.absence(b, SHORT_NOTICE_MONDAY, addDays(SHORT_NOTICE_MONDAY, 6), 'bereavement');
    const request = absorb(a, SHORT_NOTICE_MONDAY, b);
    await expectRefused(request, ['FACULTY_ABSENT']);
    expect((await validate(request)).warnings.map((w) => w.reason)).toEqual(['SHORT_NOTICE']);
  });
});

describe('ValidateSwap', () => {
  it('writes nothing, for a valid swap or a refused one, however often it is called', async () => {
    const [w1, w2] = freshWeeks();
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    const c = await fx.faculty('core');
    await fmitWeek(a, w1);
    await fmitWeek(c, w2);
    const before = await dbState();
    for (const request of [
      absorb(a, w1, b),
      oneToOne(a, w1, c, w2),
      absorb(a, w1, c),
      absorb(b, w1, a),
    ]) {
      await ts.api.validateSwap(request);
      await ts.api.validateSwap(request);
    }
    expect(await dbState()).toEqual(before);

    // The same comparison sees what an execution writes, so it would see a validation's.
    await ts.api.executeSwap(absorb(a, w1, b));
    const after = await dbState();
    expect(after.swaps).toBe(before.swaps + 1);
    expect(after.facultyWeeks).toBeGreaterThan(before.facultyWeeks);
    expect(after.rows).not.toEqual(before.rows);
  });
});
