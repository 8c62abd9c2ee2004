import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { beforeEach, describe, expect, it } from 'vitest';
import { addDays } from '../src/domain/calendar';
import {
  type Conflict,
  ConflictSeverity,
  ConflictStatus,
  ConflictType,
} from '../src/generated/swap/v1/conflict';
import { SwapType } from '../src/generated/swap/v1/swap';
import { failure } from './support/grpc-outcomes';
import type { ScheduleFixture } from './support/schedule-fixture';
import { truncateAll } from './support/sql-fixtures';
import { errorDetails, type TestService, useTestService } from './support/test-service';

let ts: TestService;
let fx: ScheduleFixture;
useTestService((started) => ({ ts, fx } = started));
// Every test states the whole schedule it needs.
beforeEach(() => truncateAll(fx.db));

/** A Monday well past the short-notice horizon of the test clock (2030-01-07). */
const W = '2030-03-04';
/** The Monday `n` weeks after W. */
const week = (n: number) => addDays(W, 7 * n);

/** What identifies an alert: its rule, its person and its week. */
const key = (c: Conflict) => ({ type: c.type, facultyId: c.facultyId, week: c.week });

async function detect(from = week(-2), to = week(12)): Promise<Conflict[]> {
  return (await ts.conflicts.detectConflicts({ weekFrom: from, weekTo: to })).created;
}

async function allConflicts(): Promise<Conflict[]> {
  return (await ts.conflicts.listConflicts({ pageSize: 500 })).conflicts;
}

/** Gives `person` the weeks listed, FMIT where `pattern` says F and clinic where it says C. */
async function rotations(person: string, pattern: string, first = W): Promise<void> {
  for (const [i, kind] of [...pattern].entries()) {
    if (kind === '_') continue;
    await fx.assignWeek(person, addDays(first, 7 * i), {
      rotation: kind === 'F' ? 'FMIT' : 'clinic',
    });
  }
}

describe('LEAVE_FMIT_OVERLAP', () => {
  it('raises a critical alert when a blocking absence touches an FMIT week, even on its last day', async () => {
    const a = await fx.faculty();
    const b = await fx.faculty();
    await fx.assignWeek(a, W);
    await fx.assignWeek(b, week(2));
    const tdy = await fx.absence(a, addDays(W, 1), addDays(W, 2), 'tdy');
    await fx.absence(b, addDays(week(2), 6), addDays(week(2), 9), 'deployment');

    const created = await detect();

    expect(created.map(key)).toEqual([
      { type: ConflictType.CONFLICT_TYPE_LEAVE_FMIT_OVERLAP, facultyId: a, week: W },
      { type: ConflictType.CONFLICT_TYPE_LEAVE_FMIT_OVERLAP, facultyId: b, week: week(2) },
    ]);
    expect(created[0]).toMatchObject({
      severity: ConflictSeverity.CONFLICT_SEVERITY_CRITICAL,
      status: ConflictStatus.CONFLICT_STATUS_NEW,
      absenceId: tdy,
      swapId: '',
    });
  });

  it('ignores leave that does not block, blocking leave outside FMIT weeks, and leave that ends the day before', async () => {
    const a = await fx.faculty();
    const b = await fx.faculty();
    const c = await fx.faculty();
    const d = await fx.faculty();
    await fx.assignWeek(a, W);
    await fx.absence(a, addDays(W, 1), addDays(W, 5), 'vacation');
    await fx.absence(a, addDays(W, 2), addDays(W, 3), 'sick');
    await fx.assignWeek(b, W, { rotation: 'clinic' });
    await fx.absence(b, W, addDays(W, 6), 'tdy');
    await fx.assignWeek(c, week(2));
    await fx.absence(c, week(1), addDays(week(2), -1), 'deployment');
    await fx.assignWeek(d, week(4));
    await fx.absence(d, addDays(week(5), 0), addDays(week(5), 3), 'tdy');

    expect(await detect()).toEqual([]);
    expect(await allConflicts()).toEqual([]);
  });
});

describe('BACK_TO_BACK', () => {
  it('warns on the later of two FMIT weeks less than 14 days apart', async () => {
    const a = await fx.faculty();
    await rotations(a, 'FF');

    const created = await detect();

    expect(created.map(key)).toEqual([
      { type: ConflictType.CONFLICT_TYPE_BACK_TO_BACK, facultyId: a, week: week(1) },
    ]);
    expect(created[0]?.severity).toBe(ConflictSeverity.CONFLICT_SEVERITY_WARNING);
  });

  it('accepts FMIT weeks exactly 14 days apart', async () => {
    const a = await fx.faculty();
    await rotations(a, 'F_F');

    expect(await detect()).toEqual([]);
  });
});

describe('EXCESSIVE_ALTERNATING', () => {
  it('flags the first week at which switches within eight weeks exceed four', async () => {
    const a = await fx.faculty();
    // Switches at weeks 1 to 5: the fifth, in week 5, is one too many.
    await rotations(a, 'FCFCFCF');

    const created = await detect();

    expect(created.map(key)).toEqual([
      { type: ConflictType.CONFLICT_TYPE_EXCESSIVE_ALTERNATING, facultyId: a, week: week(5) },
    ]);
    expect(created[0]?.severity).toBe(ConflictSeverity.CONFLICT_SEVERITY_INFO);
  });

  it('allows four switches, and five that are spread over more than eight weeks', async () => {
    const a = await fx.faculty();
    const b = await fx.faculty();
    await rotations(a, 'FCFCF');
    // Switches at weeks 1, 2, 3, 4 and 9: any eight weeks hold at most four.
    await rotations(b, 'FCFCF____C');

    expect(await detect()).toEqual([]);
  });
});

describe('CALL_CASCADE', () => {
  it("warns when the Friday or Saturday call of an FMIT week is someone else's", async () => {
    const a = await fx.faculty();
    const b = await fx.faculty();
    const other = await fx.faculty();
    const resident = await fx.resident(2);
    await fx.assignWeek(a, W);
    await fx.assignWeek(b, week(2));
    await fx.call(other, addDays(W, 4));
    await fx.call(b, addDays(week(2), 4));
    await fx.call(resident, addDays(week(2), 5));

    const created = await detect();

    expect(created.map(key)).toEqual([
      { type: ConflictType.CONFLICT_TYPE_CALL_CASCADE, facultyId: a, week: W },
      { type: ConflictType.CONFLICT_TYPE_CALL_CASCADE, facultyId: b, week: week(2) },
    ]);
    expect(created[0]?.severity).toBe(ConflictSeverity.CONFLICT_SEVERITY_WARNING);
  });

  it('accepts weekend calls held by an FMIT faculty member of the week, and other days held by anyone', async () => {
    const a = await fx.faculty();
    const b = await fx.faculty();
    const other = await fx.faculty();
    await fx.assignWeek(a, W);
    await fx.call(a, addDays(W, 4));
    await fx.call(a, addDays(W, 5));
    await fx.call(other, addDays(W, 3), 'overnight');
    await fx.call(other, addDays(W, 6));
    // Week 2 is split between two FMIT faculty; the one on PM holds the weekend.
    await fx.assignWeek(a, week(2), { halves: ['AM'] });
    await fx.assignWeek(b, week(2), { halves: ['PM'] });
    await fx.call(b, addDays(week(2), 4));
    await fx.call(b, addDays(week(2), 5));

    expect(await detect()).toEqual([]);
  });
});

describe('DetectConflicts', () => {
  it('raises each open alert once, however often and over whatever ranges it runs', async () => {
    const a = await fx.faculty();
    const b = await fx.faculty();
    const other = await fx.faculty();
    await rotations(a, 'FF');
    await fx.absence(a, addDays(W, 1), addDays(W, 1), 'tdy');
    await rotations(b, 'FCFCFC', week(3));
    await fx.call(other, addDays(week(3), 5));

    const first = await detect(week(3), week(3));
    expect(first.map(key)).toEqual([
      { type: ConflictType.CONFLICT_TYPE_CALL_CASCADE, facultyId: b, week: week(3) },
    ]);
    const second = await detect();
    expect(second.map((c) => c.type).sort()).toEqual(
      [
        ConflictType.CONFLICT_TYPE_LEAVE_FMIT_OVERLAP,
        ConflictType.CONFLICT_TYPE_BACK_TO_BACK,
        ConflictType.CONFLICT_TYPE_EXCESSIVE_ALTERNATING,
      ].sort(),
    );
    expect(await detect()).toEqual([]);
    expect(await detect(week(-8), week(20))).toEqual([]);

    const stored = await allConflicts();
    expect(stored).toHaveLength(4);
    expect(new Set(stored.map((c) => c.id))).toEqual(
      new Set([...first, ...second].map((c) => c.id)),
    );
  });

  it('raises, inside a swap the rules allow, the conflict that swap creates, naming the swap', async () => {
    const a = await fx.faculty();
    const b = await fx.faculty();
    // b alternates three times around a free week 4; taking a's FMIT week 4 makes it five.
    await rotations(b, 'FCFC_C');
    await fx.assignWeek(a, week(4));
    expect(await detect()).toEqual([]);
    const command = {
      sourceFacultyId: a,
      sourceWeek: week(4),
      targetFacultyId: b,
      swapType: SwapType.SWAP_TYPE_ABSORB,
      reason: 'cover',
    };
    const verdict = await ts.api.validateSwap(command);
    expect(verdict).toMatchObject({ valid: true, errors: [], warnings: [] });

    const { swap } = await ts.api.executeSwap({ ...command, requestId: randomUUID() });

    const raised = await allConflicts();
    expect(raised.map(key)).toEqual([
      { type: ConflictType.CONFLICT_TYPE_EXCESSIVE_ALTERNATING, facultyId: b, week: week(5) },
    ]);
    expect(raised[0]?.swapId).toBe(swap!.id);
    expect(await detect()).toEqual([]);
  });

  it("agrees, after a swap, with a full scan of the swapped week's calls", async () => {
    // A swap scans only its two faculty members; whether a weekend call is held
    // by an FMIT faculty member of the week must still count everyone.
    // y and z share FMIT week 0 (AM and PM); z holds the weekend calls, which is fine.
    const y = await fx.faculty();
    const z = await fx.faculty();
    const r = await fx.faculty();
    await fx.assignWeek(y, W, { halves: ['AM'] });
    await fx.assignWeek(z, W, { halves: ['PM'] });
    await fx.call(z, addDays(W, 4));
    await fx.call(z, addDays(W, 5));
    expect(await detect()).toEqual([]);

    // r takes y's half; z still holds FMIT and the calls, so nothing is wrong.
    await ts.api.executeSwap({
      sourceFacultyId: y,
      sourceWeek: W,
      targetFacultyId: r,
      swapType: SwapType.SWAP_TYPE_ABSORB,
      reason: 'cover',
      requestId: randomUUID(),
    });

    const raisedBySwap = (await allConflicts()).map(key);
    await fx.db.query('delete from conflict_alert');
    expect(await detect()).toEqual([]);
    expect(raisedBySwap).toEqual([]);
  });

  it('reports only the weeks in its range', async () => {
    const a = await fx.faculty();
    await fx.assignWeek(a, week(6));
    await fx.absence(a, week(6), week(6), 'tdy');

    expect(await detect(W, week(5))).toEqual([]);
    expect((await detect(week(6), week(6))).map(key)).toEqual([
      { type: ConflictType.CONFLICT_TYPE_LEAVE_FMIT_OVERLAP, facultyId: a, week: week(6) },
    ]);
  });

  it.each([
    ['week_to', { weekFrom: week(2), weekTo: W }],
    ['week_from', { weekFrom: addDays(W, 1), weekTo: week(2) }],
    ['week_from', { weekTo: week(2) }],
    ['week_to', { weekFrom: W, weekTo: '2030-13-01' }],
    ['week_to', { weekFrom: W, weekTo: week(61) }],
  ])('rejects a bad range naming %s', async (field, request) => {
    const error = await failure(ts.conflicts.detectConflicts(request));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(errorDetails(error).fields).toEqual([field]);
  });
});

describe('GetConflict and ListConflicts', () => {
  /** Four alerts: one of each rule, over three faculty and four weeks. */
  async function fourAlerts() {
    const a = await fx.faculty();
    const b = await fx.faculty();
    const c = await fx.faculty();
    await rotations(a, 'FF');
    await fx.absence(a, W, W, 'tdy');
    await rotations(b, 'FCFCFC', week(3));
    await fx.assignWeek(c, week(10));
    await fx.call(a, addDays(week(10), 4));
    const created = await detect();
    expect(created).toHaveLength(4);
    return { a, b, c, created };
  }

  it('gets an alert by id, and answers NOT_FOUND or INVALID_ARGUMENT for unknown or malformed ids', async () => {
    const { created } = await fourAlerts();
    const { conflict } = await ts.conflicts.getConflict({ conflictId: created[1]!.id });
    expect(conflict).toEqual(created[1]);

    const missing = await failure(ts.conflicts.getConflict({ conflictId: randomUUID() }));
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(errorDetails(missing).reason).toBe('CONFLICT_NOT_FOUND');
    const malformed = await failure(ts.conflicts.getConflict({ conflictId: 'conflict-1' }));
    expect(malformed.code).toBe(status.INVALID_ARGUMENT);
    expect(errorDetails(malformed).fields).toEqual(['conflict_id']);
  });

  it('filters by faculty, status, type, severity and week range', async () => {
    const { a, b, c, created } = await fourAlerts();
    const ids = async (filter: Parameters<typeof ts.conflicts.listConflicts>[0]) =>
      (await ts.conflicts.listConflicts(filter)).conflicts.map(key);
    await ts.conflicts.acknowledgeConflict({
      conflictId: created.find((x) => x.facultyId === c)!.id,
      requestId: randomUUID(),
    });

    expect(await ids({ facultyId: a })).toEqual([
      { type: ConflictType.CONFLICT_TYPE_LEAVE_FMIT_OVERLAP, facultyId: a, week: W },
      { type: ConflictType.CONFLICT_TYPE_BACK_TO_BACK, facultyId: a, week: week(1) },
    ]);
    expect(await ids({ status: ConflictStatus.CONFLICT_STATUS_ACKNOWLEDGED })).toEqual([
      { type: ConflictType.CONFLICT_TYPE_CALL_CASCADE, facultyId: c, week: week(10) },
    ]);
    expect(await ids({ type: ConflictType.CONFLICT_TYPE_EXCESSIVE_ALTERNATING })).toEqual([
      { type: ConflictType.CONFLICT_TYPE_EXCESSIVE_ALTERNATING, facultyId: b, week: week(8) },
    ]);
    expect(await ids({ severity: ConflictSeverity.CONFLICT_SEVERITY_WARNING })).toEqual([
      { type: ConflictType.CONFLICT_TYPE_BACK_TO_BACK, facultyId: a, week: week(1) },
      { type: ConflictType.CONFLICT_TYPE_CALL_CASCADE, facultyId: c, week: week(10) },
    ]);
    expect(await ids({ weekFrom: week(1), weekTo: week(8) })).toEqual([
      { type: ConflictType.CONFLICT_TYPE_BACK_TO_BACK, facultyId: a, week: week(1) },
      { type: ConflictType.CONFLICT_TYPE_EXCESSIVE_ALTERNATING, facultyId: b, week: week(8) },
    ]);
    expect(
      await ids({ facultyId: a, severity: ConflictSeverity.CONFLICT_SEVERITY_CRITICAL }),
    ).toEqual([{ type: ConflictType.CONFLICT_TYPE_LEAVE_FMIT_OVERLAP, facultyId: a, week: W }]);
    expect(await ids({ facultyId: randomUUID() })).toEqual([]);
  });

  it('walks every alert one page at a time, in week then id order', async () => {
    const { a } = await fourAlerts();
    const everything = await allConflicts();
    const sorted = [...everything].sort(
      (x, y) => x.week.localeCompare(y.week) || x.id.localeCompare(y.id),
    );
    expect(everything).toEqual(sorted);

    const walked: Conflict[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const page = await ts.conflicts.listConflicts({ pageSize: 1, pageToken });
      expect(page.conflicts.length).toBe(1);
      walked.push(...page.conflicts);
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken && pages < 10);
    expect(pages).toBe(4);
    expect(walked).toEqual(everything);

    const first = await ts.conflicts.listConflicts({ pageSize: 1 });
    const otherFilter = await failure(
      ts.conflicts.listConflicts({ pageSize: 1, pageToken: first.nextPageToken, facultyId: a }),
    );
    expect(otherFilter.code).toBe(status.INVALID_ARGUMENT);
    expect(errorDetails(otherFilter).fields).toEqual(['page_token']);
  });

  it.each([
    ['week_to', { weekFrom: week(2), weekTo: W }],
    ['week_from', { weekFrom: '2030-03-05' }],
    ['faculty_id', { facultyId: 'dr-a' }],
    ['page_size', { pageSize: 501 }],
    ['page_size', { pageSize: -1 }],
    ['page_token', { pageToken: 'not-a-token' }],
    ['status', { status: 42 as ConflictStatus }],
  ])('rejects a bad filter naming %s', async (field, request) => {
    const error = await failure(ts.conflicts.listConflicts(request));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(errorDetails(error).fields).toEqual([field]);
  });
});
