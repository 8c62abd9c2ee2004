import { randomUUID } from 'node:crypto';
import { type ServiceError, status } from '@grpc/grpc-js';
import { beforeEach, describe, expect, it } from 'vitest';
import { addDays } from '../src/domain/calendar';
import {
  AutoResolveOutcome,
  type Conflict,
  ConflictStatus,
  ConflictType,
  type ResolutionOption,
  ResolutionStrategy,
  RiskLevel,
} from '../src/generated/swap/v1/conflict';
import { SwapStatus, SwapType } from '../src/generated/swap/v1/swap';
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
/** A Monday 7 days after the test clock's today: any swap of it is short notice. */
const SOON = '2030-01-14';
const week = (n: number) => addDays(W, 7 * n);

type Snapshot = Awaited<ReturnType<ScheduleFixture['snapshot']>>;
type Row = { id: string; person_id: string };

/** `before`, with every row of `from` in `ids` (all of them when omitted) given to `to`. */
function moved(before: Snapshot, from: string, to: string, only?: Set<string>): Snapshot {
  const give = (rows: unknown[]) =>
    (rows as Row[]).map((r) =>
      r.person_id === from && (!only || only.has(r.id)) ? { ...r, person_id: to } : r,
    );
  return { assignments: give(before.assignments), calls: give(before.calls) };
}

async function swapCount(): Promise<number> {
  return (await fx.invariantBreaches()).swapCount;
}

async function conflict(id: string): Promise<Conflict> {
  return (await ts.conflicts.getConflict({ conflictId: id })).conflict!;
}

async function options(id: string): Promise<ResolutionOption[]> {
  return (await ts.conflicts.getResolutionOptions({ conflictId: id })).options;
}

/** A faculty member on FMIT in `week`, with a Friday call and a TDY in it, and the alert that raises. */
async function leaveOverlap(at = W): Promise<{ faculty: string; alert: Conflict }> {
  const faculty = await fx.faculty();
  await fx.assignWeek(faculty, at);
  await fx.call(faculty, addDays(at, 4));
  await fx.absence(faculty, addDays(at, 1), addDays(at, 2), 'tdy');
  const { created } = await ts.conflicts.detectConflicts({ weekFrom: at, weekTo: at });
  const alert = created.find((c) => c.facultyId === faculty)!;
  expect(alert.type).toBe(ConflictType.CONFLICT_TYPE_LEAVE_FMIT_OVERLAP);
  return { faculty, alert };
}

const passes = (o: ResolutionOption) => o.checks.every((c) => c.passed);

describe('ResolveConflict', () => {
  it('applies exactly one of ten concurrent resolutions of one alert', async () => {
    const { faculty: a, alert } = await leaveOverlap();
    const b = await fx.faculty();
    const option = (await options(alert.id)).find((o) => o.targetFacultyId === b)!;
    expect(option).toMatchObject({
      strategy: ResolutionStrategy.RESOLUTION_STRATEGY_SWAP_ASSIGNMENTS,
      risk: RiskLevel.RISK_LEVEL_LOW,
      requiresHuman: false,
    });
    expect(passes(option)).toBe(true);
    const before = await fx.snapshot();
    const requestIds = Array.from({ length: 10 }, () => randomUUID());

    const outcomes = await Promise.allSettled(
      requestIds.map((requestId) =>
        ts.conflicts.resolveConflict({
          conflictId: alert.id,
          optionId: option.optionId,
          requestId,
        }),
      ),
    );

    const applied = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    const refused = outcomes.flatMap((o) =>
      o.status === 'rejected' ? [o.reason as ServiceError] : [],
    );
    expect(applied).toHaveLength(1);
    expect(refused.map((e) => [e.code, errorDetails(e).reason])).toEqual(
      Array.from({ length: 9 }, () => [status.FAILED_PRECONDITION, 'ALREADY_RESOLVED']),
    );
    const { conflict: resolved, swap } = applied[0]!;
    expect(resolved).toMatchObject({
      status: ConflictStatus.CONFLICT_STATUS_RESOLVED,
      resolution: ResolutionStrategy.RESOLUTION_STRATEGY_SWAP_ASSIGNMENTS,
      resolutionSwapId: swap!.id,
    });
    expect(swap).toMatchObject({
      sourceFacultyId: a,
      sourceWeek: W,
      targetFacultyId: b,
      swapType: SwapType.SWAP_TYPE_ABSORB,
      status: SwapStatus.SWAP_STATUS_EXECUTED,
    });
    expect(swap!.movedAssignments).toHaveLength(14);
    expect(swap!.movedCalls).toHaveLength(1);
    expect(await swapCount()).toBe(1);
    // a held nothing but that week, so all of a's rows are the ones that moved.
    expect(await fx.snapshot()).toEqual(moved(before, a, b));
    expect(await conflict(alert.id)).toEqual(resolved);

    // The winner's retry is answered from the record, and still nothing more moves.
    const winner = requestIds[outcomes.findIndex((o) => o.status === 'fulfilled')]!;
    const replay = await ts.conflicts.resolveConflict({
      conflictId: alert.id,
      optionId: option.optionId,
      requestId: winner,
    });
    expect(replay.swap?.id).toBe(swap!.id);
    expect(await swapCount()).toBe(1);
  });

  it.each([
    ['FACULTY_ABSENT', 'away that week'],
    ['DOUBLE_BOOKING', 'already holding one of its blocks'],
  ])(
    'leaves the alert and schedule untouched when the swap fails %s (candidate %s)',
    async (reason) => {
      const { alert } = await leaveOverlap();
      const candidate = await fx.faculty();
      if (reason === 'FACULTY_ABSENT') await fx.absence(candidate, W, addDays(W, 6), 'deployment');
      else await fx.assign(candidate, addDays(W, 2), 'PM', { rotation: 'clinic' });
      const option = (await options(alert.id)).find((o) => o.targetFacultyId === candidate)!;
      expect(option.risk).toBe(RiskLevel.RISK_LEVEL_HIGH);
      expect(option.checks.filter((c) => !c.passed).map((c) => c.name)).toEqual([reason]);
      const before = await fx.snapshot();

      const error = await failure(
        ts.conflicts.resolveConflict({
          conflictId: alert.id,
          optionId: option.optionId,
          requestId: randomUUID(),
        }),
      );

      expect(error.code).toBe(status.FAILED_PRECONDITION);
      expect(errorDetails(error)).toMatchObject({ reason, violations: [reason] });
      expect(await conflict(alert.id)).toEqual(alert);
      expect(await fx.snapshot()).toEqual(before);
      expect(await swapCount()).toBe(0);
    },
  );

  // Issue 11, defect 1: the retry must replay, though the best option of the
  // strategy it would plan now (the swap has moved the week) is another or none.
  it('replays a swap resolution by strategy retried with the same request id and body', async () => {
    const { alert } = await leaveOverlap();
    await fx.faculty();
    const request = {
      conflictId: alert.id,
      strategy: ResolutionStrategy.RESOLUTION_STRATEGY_SWAP_ASSIGNMENTS,
      requestId: randomUUID(),
    };
    const first = await ts.conflicts.resolveConflict(request);
    const after = await fx.snapshot();
    expect(first.swap?.status).toBe(SwapStatus.SWAP_STATUS_EXECUTED);

    const retried = await ts.conflicts.resolveConflict(request);

    expect(retried).toEqual(first);
    expect(await fx.snapshot()).toEqual(after);
    expect(await swapCount()).toBe(1);
  });

  it('finds the conflict again once the swap that resolved it is rolled back', async () => {
    const { faculty: a, alert } = await leaveOverlap();
    const b = await fx.faculty();
    const before = await fx.snapshot();
    const { swap } = await ts.conflicts.resolveConflict({
      conflictId: alert.id,
      strategy: ResolutionStrategy.RESOLUTION_STRATEGY_SWAP_ASSIGNMENTS,
      requestId: randomUUID(),
    });
    expect(swap?.targetFacultyId).toBe(b);

    await ts.api.rollbackSwap({ swapId: swap!.id, reason: 'b fell ill', requestId: randomUUID() });

    expect(await fx.snapshot()).toEqual(before);
    const { conflicts } = await ts.conflicts.listConflicts({ facultyId: a });
    expect(conflicts).toHaveLength(2);
    expect(conflicts.find((c) => c.id === alert.id)?.status).toBe(
      ConflictStatus.CONFLICT_STATUS_RESOLVED,
    );
    expect(conflicts.find((c) => c.id !== alert.id)).toMatchObject({
      type: ConflictType.CONFLICT_TYPE_LEAVE_FMIT_OVERLAP,
      facultyId: a,
      week: W,
      status: ConflictStatus.CONFLICT_STATUS_NEW,
      swapId: swap!.id,
    });
  });
});

describe('REASSIGN_JUNIOR and options that need a human', () => {
  async function callCascade() {
    const a = await fx.faculty();
    const resident = await fx.resident(1);
    await fx.assignWeek(a, W);
    const calls = [
      await fx.call(resident, addDays(W, 4)),
      await fx.call(resident, addDays(W, 5)),
      await fx.call(resident, addDays(W, 6)),
    ];
    const { created } = await ts.conflicts.detectConflicts({ weekFrom: W, weekTo: W });
    expect(created.map((c) => [c.type, c.facultyId])).toEqual([
      [ConflictType.CONFLICT_TYPE_CALL_CASCADE, a],
    ]);
    return { a, resident, calls, alert: created[0]! };
  }

  it('moves the Friday and Saturday calls to the FMIT faculty member and resolves the alert', async () => {
    const { a, resident, calls, alert } = await callCascade();
    const [best] = await options(alert.id);
    expect(best).toMatchObject({
      optionId: 'REASSIGN_JUNIOR:calls',
      strategy: ResolutionStrategy.RESOLUTION_STRATEGY_REASSIGN_JUNIOR,
      risk: RiskLevel.RISK_LEVEL_LOW,
      requiresHuman: false,
    });
    const before = await fx.snapshot();

    const { conflict: resolved, swap } = await ts.conflicts.resolveConflict({
      conflictId: alert.id,
      strategy: ResolutionStrategy.RESOLUTION_STRATEGY_REASSIGN_JUNIOR,
      requestId: randomUUID(),
    });

    expect(swap).toBeUndefined();
    expect(resolved).toMatchObject({
      status: ConflictStatus.CONFLICT_STATUS_RESOLVED,
      resolution: ResolutionStrategy.RESOLUTION_STRATEGY_REASSIGN_JUNIOR,
      resolutionSwapId: '',
    });
    // Sunday's call is not part of the cascade and stays where it was.
    expect(await fx.snapshot()).toEqual(moved(before, resident, a, new Set(calls.slice(0, 2))));
    expect(await swapCount()).toBe(0);
    expect((await ts.conflicts.detectConflicts({ weekFrom: W, weekTo: W })).created).toEqual([]);
  });

  // Issue 11, defect 1: the retry must replay, though the options it would
  // plan now (none of this strategy: the calls have moved) differ from the first.
  it('replays a resolution by strategy retried with the same request id and body', async () => {
    const { alert } = await callCascade();
    const request = {
      conflictId: alert.id,
      strategy: ResolutionStrategy.RESOLUTION_STRATEGY_REASSIGN_JUNIOR,
      notes: 'retried',
      requestId: randomUUID(),
    };
    const first = await ts.conflicts.resolveConflict(request);
    const after = await fx.snapshot();
    expect(first.conflict?.status).toBe(ConflictStatus.CONFLICT_STATUS_RESOLVED);

    const retried = await ts.conflicts.resolveConflict(request);

    expect(retried).toEqual(first);
    expect(await fx.snapshot()).toEqual(after);
    // The same id with another body is still refused.
    const reused = await failure(ts.conflicts.resolveConflict({ ...request, notes: 'other' }));
    expect([reused.code, errorDetails(reused).reason]).toEqual([
      status.INVALID_ARGUMENT,
      'IDEMPOTENCY_KEY_REUSED',
    ]);
  });

  it('refuses to move the calls to an FMIT faculty member who is away on a call day', async () => {
    const { a, alert } = await callCascade();
    await fx.absence(a, addDays(W, 4), addDays(W, 4), 'family_emergency');
    const [reassign] = (await options(alert.id)).filter(
      (o) => o.optionId === 'REASSIGN_JUNIOR:calls',
    );
    expect(reassign?.risk).toBe(RiskLevel.RISK_LEVEL_HIGH);
    expect(reassign?.checks.filter((c) => !c.passed).map((c) => c.name)).toEqual([
      'FACULTY_ABSENT',
    ]);
    const before = await fx.snapshot();

    const error = await failure(
      ts.conflicts.resolveConflict({
        conflictId: alert.id,
        optionId: 'REASSIGN_JUNIOR:calls',
        requestId: randomUUID(),
      }),
    );

    expect(await fx.snapshot()).toEqual(before);
    expect(await conflict(alert.id)).toEqual(alert);
    expect(error.code).toBe(status.FAILED_PRECONDITION);
    expect(errorDetails(error).reason).toBe('FACULTY_ABSENT');
  });

  it.each(['DEFER_TO_HUMAN', 'ESCALATE_TO_BACKUP', 'SPLIT_COVERAGE'])(
    'refuses %s with NEEDS_HUMAN_DECISION and changes nothing',
    async (optionId) => {
      const { alert } = await callCascade();
      const offered = (await options(alert.id)).find((o) => o.optionId === optionId);
      expect(offered?.requiresHuman).toBe(true);
      const before = await fx.snapshot();

      const error = await failure(
        ts.conflicts.resolveConflict({ conflictId: alert.id, optionId, requestId: randomUUID() }),
      );

      expect(error.code).toBe(status.FAILED_PRECONDITION);
      expect(errorDetails(error).reason).toBe('NEEDS_HUMAN_DECISION');
      expect(await conflict(alert.id)).toEqual(alert);
      expect(await fx.snapshot()).toEqual(before);
    },
  );
});

describe('AutoResolve', () => {
  it('applies only options within its risk limit, and a retry replays each resolution and changes nothing', async () => {
    // Resolved before the call: its faculty member's week 4 goes to b.
    const b = await fx.faculty();
    const { alert: done } = await leaveOverlap(week(4));
    const resolvedEarlier = await ts.conflicts.resolveConflict({
      conflictId: done.id,
      optionId: `SWAP_ASSIGNMENTS:${b}`,
      requestId: randomUUID(),
    });
    expect(resolvedEarlier.conflict?.status).toBe(ConflictStatus.CONFLICT_STATUS_RESOLVED);
    const { faculty: a, alert: far } = await leaveOverlap(W);
    const { faculty: c, alert: soon } = await leaveOverlap(SOON);

    const farOptions = await options(far.id);
    expect(farOptions[0]).toMatchObject({ risk: RiskLevel.RISK_LEVEL_LOW, requiresHuman: false });
    expect(passes(farOptions[0]!)).toBe(true);
    const soonSwaps = (await options(soon.id)).filter((o) => !o.requiresHuman && passes(o));
    expect(soonSwaps.length).toBeGreaterThan(0);
    expect(soonSwaps.every((o) => o.risk === RiskLevel.RISK_LEVEL_MEDIUM)).toBe(true);
    const before = await fx.snapshot();
    const request = {
      conflictIds: [far.id, soon.id, done.id],
      maxRisk: RiskLevel.RISK_LEVEL_LOW,
      requestId: randomUUID(),
    };

    const { results } = await ts.conflicts.autoResolve(request);

    expect(results.map((r) => [r.conflictId, r.outcome])).toEqual([
      [far.id, AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_RESOLVED],
      [soon.id, AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_NEEDS_HUMAN],
      [done.id, AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_ALREADY_RESOLVED],
    ]);
    expect(results[0]!.optionId).toBe(farOptions[0]!.optionId);
    const { swap } = await ts.api.getSwap({ swapId: results[0]!.swapId });
    expect(swap).toMatchObject({
      sourceFacultyId: a,
      sourceWeek: W,
      targetFacultyId: farOptions[0]!.targetFacultyId,
    });
    expect(await conflict(far.id)).toMatchObject({
      status: ConflictStatus.CONFLICT_STATUS_RESOLVED,
      resolutionSwapId: swap!.id,
    });
    expect(await conflict(soon.id)).toEqual(soon);
    expect(await fx.snapshot()).toEqual(moved(before, a, farOptions[0]!.targetFacultyId));
    expect(await swapCount()).toBe(2);

    const afterFirst = await fx.snapshot();
    const states = await Promise.all([far, soon, done].map((x) => conflict(x.id)));
    // The retry replays the resolution it committed, swap and option included
    // (issue 11, defect 2: it used to read the alert first and answer ALREADY_RESOLVED).
    const replay = await ts.conflicts.autoResolve(request);
    expect(replay.results).toEqual(results);
    expect(await fx.snapshot()).toEqual(afterFirst);
    expect(await swapCount()).toBe(2);
    expect(await Promise.all([far, soon, done].map((x) => conflict(x.id)))).toEqual(states);

    // It was the limit that held the short-notice one back.
    const medium = await ts.conflicts.autoResolve({
      conflictIds: [soon.id],
      maxRisk: RiskLevel.RISK_LEVEL_MEDIUM,
      requestId: randomUUID(),
    });
    expect(medium.results[0]?.outcome).toBe(AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_RESOLVED);
    expect(
      (await ts.api.getSwap({ swapId: medium.results[0]!.swapId })).swap?.sourceFacultyId,
    ).toBe(c);

    // The first call, delivered once more now that the conflict it left to a
    // human is resolved: it gets its own answer again, not a new pass over
    // conflicts whose state has moved on (which would say ALREADY_RESOLVED).
    const late = await ts.conflicts.autoResolve(request);
    expect(late.results).toEqual(results);
  });
});

describe('AcknowledgeConflict and IgnoreConflict', () => {
  it('acknowledges once, then ignores, and detection leaves an ignored alert ignored', async () => {
    const { alert } = await leaveOverlap();
    const ack = { conflictId: alert.id, notes: 'looking for cover', requestId: randomUUID() };
    const { conflict: acknowledged } = await ts.conflicts.acknowledgeConflict(ack);
    expect(acknowledged).toMatchObject({
      status: ConflictStatus.CONFLICT_STATUS_ACKNOWLEDGED,
      acknowledgedBy: 'anonymous',
      notes: 'looking for cover',
    });
    expect(acknowledged?.acknowledgedAt).toBeInstanceOf(Date);
    expect((await ts.conflicts.acknowledgeConflict(ack)).conflict).toEqual(acknowledged);

    const twice = await failure(
      ts.conflicts.acknowledgeConflict({ conflictId: alert.id, requestId: randomUUID() }),
    );
    expect(twice.code).toBe(status.FAILED_PRECONDITION);
    expect(errorDetails(twice).reason).toBe('INVALID_STATUS');

    const { conflict: ignored } = await ts.conflicts.ignoreConflict({
      conflictId: alert.id,
      reason: 'covered informally',
      requestId: randomUUID(),
    });
    expect(ignored).toMatchObject({
      status: ConflictStatus.CONFLICT_STATUS_IGNORED,
      notes: 'covered informally',
      acknowledgedBy: 'anonymous',
    });
    expect((await ts.conflicts.detectConflicts({ weekFrom: W, weekTo: W })).created).toEqual([]);

    // Thunks, not promises: each call starts only when its failure is awaited,
    // so no rejection is left unobserved while an earlier one is checked.
    for (const call of [
      () => ts.conflicts.acknowledgeConflict({ conflictId: alert.id, requestId: randomUUID() }),
      () =>
        ts.conflicts.ignoreConflict({ conflictId: alert.id, reason: 'x', requestId: randomUUID() }),
      () =>
        ts.conflicts.resolveConflict({
          conflictId: alert.id,
          optionId: 'DEFER_TO_HUMAN',
          requestId: randomUUID(),
        }),
    ]) {
      const error = await failure(call());
      expect(error.code).toBe(status.FAILED_PRECONDITION);
      expect(errorDetails(error).reason).toBe('ALREADY_RESOLVED');
    }
  });

  it('answers with the alert as stored, version included', async () => {
    const { alert } = await leaveOverlap();
    const { conflict: acknowledged } = await ts.conflicts.acknowledgeConflict({
      conflictId: alert.id,
      requestId: randomUUID(),
    });
    const storedAfterAck = await conflict(alert.id);
    const { conflict: ignored } = await ts.conflicts.ignoreConflict({
      conflictId: alert.id,
      reason: 'covered informally',
      requestId: randomUUID(),
    });
    const storedAfterIgnore = await conflict(alert.id);

    expect([storedAfterAck.version, storedAfterIgnore.version]).toEqual([2, 3]);
    expect([acknowledged, ignored]).toEqual([storedAfterAck, storedAfterIgnore]);
  });

  it('refuses to ignore or acknowledge a resolved alert, and an unknown one', async () => {
    const { alert } = await leaveOverlap();
    await fx.faculty();
    await ts.conflicts.resolveConflict({
      conflictId: alert.id,
      strategy: ResolutionStrategy.RESOLUTION_STRATEGY_SWAP_ASSIGNMENTS,
      requestId: randomUUID(),
    });
    const resolved = await conflict(alert.id);

    const ignore = await failure(
      ts.conflicts.ignoreConflict({
        conflictId: alert.id,
        reason: 'late',
        requestId: randomUUID(),
      }),
    );
    expect(ignore.code).toBe(status.FAILED_PRECONDITION);
    expect(errorDetails(ignore).reason).toBe('ALREADY_RESOLVED');
    const ack = await failure(
      ts.conflicts.acknowledgeConflict({ conflictId: alert.id, requestId: randomUUID() }),
    );
    expect(errorDetails(ack).reason).toBe('ALREADY_RESOLVED');
    expect(await conflict(alert.id)).toEqual(resolved);

    const unknown = await failure(
      ts.conflicts.ignoreConflict({
        conflictId: randomUUID(),
        reason: 'x',
        requestId: randomUUID(),
      }),
    );
    expect(unknown.code).toBe(status.NOT_FOUND);
    expect(errorDetails(unknown).reason).toBe('CONFLICT_NOT_FOUND');
  });
});

describe('bad input', () => {
  const id = randomUUID();
  const requestId = randomUUID();
  it.each([
    [
      'conflict_id',
      () => ts.conflicts.resolveConflict({ conflictId: 'c-1', optionId: 'x', requestId }),
    ],
    ['request_id', () => ts.conflicts.resolveConflict({ conflictId: id, optionId: 'x' })],
    [
      'option_id',
      () =>
        ts.conflicts.resolveConflict({
          conflictId: id,
          optionId: 'DEFER_TO_HUMAN',
          strategy: ResolutionStrategy.RESOLUTION_STRATEGY_DEFER_TO_HUMAN,
          requestId,
        }),
    ],
    ['option_id', () => ts.conflicts.resolveConflict({ conflictId: id, requestId })],
    [
      'strategy',
      () =>
        ts.conflicts.resolveConflict({
          conflictId: id,
          strategy: 99 as ResolutionStrategy,
          requestId,
        }),
    ],
    ['max_risk', () => ts.conflicts.autoResolve({ conflictIds: [id], requestId })],
    [
      'conflict_ids',
      () =>
        ts.conflicts.autoResolve({ conflictIds: [], maxRisk: RiskLevel.RISK_LEVEL_LOW, requestId }),
    ],
    [
      'conflict_ids[1]',
      () =>
        ts.conflicts.autoResolve({
          conflictIds: [id, 'nope'],
          maxRisk: RiskLevel.RISK_LEVEL_LOW,
          requestId,
        }),
    ],
    [
      'request_id',
      () => ts.conflicts.autoResolve({ conflictIds: [id], maxRisk: RiskLevel.RISK_LEVEL_LOW }),
    ],
    ['conflict_id', () => ts.conflicts.acknowledgeConflict({ conflictId: '', requestId })],
    ['reason', () => ts.conflicts.ignoreConflict({ conflictId: id, reason: '  ', requestId })],
    ['conflict_id', () => ts.conflicts.getResolutionOptions({ conflictId: 'nope' })],
  ])('names %s', async (field, call) => {
    const error = await failure(call());
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(errorDetails(error).fields).toEqual([field]);
  });

  it('answers an option id the alert does not offer with INVALID_ARGUMENT option_id', async () => {
    const { alert } = await leaveOverlap();
    const error = await failure(
      ts.conflicts.resolveConflict({
        conflictId: alert.id,
        optionId: `SWAP_ASSIGNMENTS:${randomUUID()}`,
        requestId: randomUUID(),
      }),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(errorDetails(error)).toMatchObject({ reason: 'UNKNOWN_OPTION', fields: ['option_id'] });
    for (const optionId of [
      'SWAP_ASSIGNMENTS:not-a-uuid',
      `SWAP_ASSIGNMENTS:${alert.facultyId}`,
      'REASSIGN_JUNIOR:calls',
    ]) {
      const other = await failure(
        ts.conflicts.resolveConflict({ conflictId: alert.id, optionId, requestId: randomUUID() }),
      );
      expect(errorDetails(other)).toMatchObject({
        reason: 'UNKNOWN_OPTION',
        fields: ['option_id'],
      });
    }
  });
});
