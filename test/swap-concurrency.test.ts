import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { addDays } from '../src/domain/calendar';
import type { TransactionStats } from '../src/db/transaction-stats';
import { SwapStatus, SwapType } from '../src/generated/swap/v1/swap';
import { seededRandom } from '../src/dev/seeded-random';
import { outcomeOf, tally } from './support/grpc-outcomes';
import type { ScheduleFixture } from './support/schedule-fixture';
import { connect, truncateAll } from './support/sql-fixtures';
import { type TestService, useTestService } from './support/test-service';

/**
 * Races real gRPC calls against one real service and database. Nothing here
 * depends on timing: each test fires its calls together, waits for all of them,
 * then checks what every caller was told against what the database holds.
 */

let ts: TestService;
let fx: ScheduleFixture;
let admin: pg.Client;
useTestService((started) => ({ ts, fx } = started));
beforeAll(async () => {
  admin = await connect(ts.db.url);
});
afterAll(() => admin?.end());
beforeEach(async () => {
  await truncateAll(admin);
});

// Calls queue behind each other's row locks and retries, so the deadline is
// generous: a call that runs out of it is a failure of the test, not a verdict.
const GENEROUS_DEADLINE_MS = 60_000;
const deadline = () => ({ deadline: new Date(Date.now() + GENEROUS_DEADLINE_MS) });

/** Weeks well after the service's TODAY (2030-01-07), so no SHORT_NOTICE or PAST_WEEK. */
const WEEK = '2030-02-11';

function retriesSince(before: TransactionStats): Record<string, number> {
  const after = ts.service.transactions.stats();
  const reasons = new Set([...Object.keys(before.retries), ...Object.keys(after.retries)]);
  return Object.fromEntries(
    [...reasons].map((r) => [r, (after.retries[r] ?? 0) - (before.retries[r] ?? 0)]),
  );
}

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await fx.db.query<{ n: number }>(
    `select count(*)::int as n from (${sql}) x`,
    params,
  );
  return rows[0]!.n;
}

/** Faculty assignments per block of the week starting `week`, as "date half" → count. */
async function facultyPerBlock(week: string): Promise<Record<string, number>> {
  const { rows } = await fx.db.query<{ block: string; n: number }>(
    `select to_char(b.date, 'YYYY-MM-DD') || ' ' || b.half as block, count(a.id) filter (where p.kind = 'faculty')::int as n
       from block b left join assignment a on a.block_id = b.id left join person p on p.id = a.person_id
      where b.date between $1::date and $1::date + 6
      group by b.date, b.half`,
    [week],
  );
  return Object.fromEntries(rows.map((r) => [r.block, r.n]));
}

/** Creates the faculty-week lock rows up front, so the race starts at FOR UPDATE instead of at the insert. */
async function createLockRows(keys: { personId: string; week: string }[]): Promise<void> {
  await fx.db.query(
    `insert into faculty_week (id, person_id, week_start)
     select gen_random_uuid(), k.person_id, k.week_start from unnest($1::uuid[], $2::date[]) as k(person_id, week_start)
     on conflict do nothing`,
    [keys.map((k) => k.personId), keys.map((k) => k.week)],
  );
}

describe('20 ExecuteSwap calls racing for one source faculty-week', () => {
  it.each([
    { lockRows: 'missing (the first writers create them)', precreate: false },
    { lockRows: 'already present', precreate: true },
  ])('moves the week exactly once with lock rows $lockRows', async ({ precreate }) => {
    const source = await fx.faculty('core');
    const targets: string[] = [];
    for (let i = 0; i < 20; i++) targets.push(await fx.faculty('core'));
    const weekIds = await fx.assignWeek(source, WEEK);
    const callIds = [
      await fx.call(source, addDays(WEEK, 4)),
      await fx.call(source, addDays(WEEK, 5)),
    ];
    if (precreate) {
      await createLockRows([
        { personId: source, week: WEEK },
        ...targets.flatMap((t) => [-7, 0, 7].map((d) => ({ personId: t, week: addDays(WEEK, d) }))),
      ]);
    }
    const statsBefore = ts.service.transactions.stats();

    const outcomes = await Promise.all(
      targets.map((target) =>
        outcomeOf(
          ts.api.executeSwap(
            {
              sourceFacultyId: source,
              sourceWeek: WEEK,
              targetFacultyId: target,
              swapType: SwapType.SWAP_TYPE_ABSORB,
              reason: 'race',
              requestId: randomUUID(),
            },
            deadline(),
          ),
        ),
      ),
    );

    console.log(
      `1a (lock rows ${precreate ? 'present' : 'missing'}):`,
      tally(outcomes),
      'retries:',
      retriesSince(statsBefore),
    );
    expect(tally(outcomes)).toEqual({ OK: 1, 'FAILED_PRECONDITION/NO_ASSIGNMENTS': 19 });
    const winner = outcomes.find((o) => o.ok)!.swap;
    expect(winner.status).toBe(SwapStatus.SWAP_STATUS_EXECUTED);
    expect(new Set(winner.movedAssignments.map((m) => m.assignmentId))).toEqual(new Set(weekIds));
    expect(
      winner.movedAssignments.every(
        (m) =>
          m.fromPersonId === source && m.toPersonId === winner.targetFacultyId && m.version === 2,
      ),
    ).toBe(true);
    expect(new Set(winner.movedCalls.map((m) => m.callId))).toEqual(new Set(callIds));

    // The week's 14 half-days each have exactly one faculty: the winner's target.
    const perBlock = await facultyPerBlock(WEEK);
    expect(Object.keys(perBlock)).toHaveLength(14);
    expect(Object.values(perBlock).every((n) => n === 1)).toBe(true);
    expect(
      await count(`select 1 from assignment where person_id = $1 and version = 2`, [
        winner.targetFacultyId,
      ]),
    ).toBe(14);
    expect(
      await count(`select 1 from assignment where person_id <> $1`, [winner.targetFacultyId]),
    ).toBe(0);
    expect(
      await count(`select 1 from call_assignment where person_id = $1 and version = 2`, [
        winner.targetFacultyId,
      ]),
    ).toBe(2);
    expect(await fx.invariantBreaches()).toEqual({ doubleBooked: 0, swapCount: 1 });
  });
});

describe('10 RollbackSwap calls racing for one executed swap', () => {
  it('rolls it back exactly once and restores the schedule', async () => {
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    const weekA = WEEK;
    const weekB = addDays(WEEK, 14);
    await fx.assignWeek(a, weekA);
    await fx.assignWeek(b, weekB);
    await fx.call(a, addDays(weekA, 4));
    await fx.call(b, addDays(weekB, 5));
    const before = await fx.snapshot();
    const { swap } = await ts.api.executeSwap({
      sourceFacultyId: a,
      sourceWeek: weekA,
      targetFacultyId: b,
      targetWeek: weekB,
      swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
      reason: 'conference',
      requestId: randomUUID(),
    });
    expect(swap?.movedAssignments).toHaveLength(28);
    expect(await fx.snapshot()).not.toEqual(before);
    const statsBefore = ts.service.transactions.stats();

    const outcomes = await Promise.all(
      Array.from({ length: 10 }, () =>
        outcomeOf(
          ts.api.rollbackSwap(
            { swapId: swap!.id, reason: 'plans changed', requestId: randomUUID() },
            deadline(),
          ),
        ),
      ),
    );

    console.log('1b:', tally(outcomes), 'retries:', retriesSince(statsBefore));
    expect(tally(outcomes)).toEqual({ OK: 1, 'FAILED_PRECONDITION/INVALID_STATUS': 9 });
    const { swap: stored } = await ts.api.getSwap({ swapId: swap!.id });
    expect(stored?.status).toBe(SwapStatus.SWAP_STATUS_ROLLED_BACK);
    // The record was written twice (executed, rolled back), and each moved row
    // twice (swap, rollback to version 3): nothing was undone a second time.
    expect(stored?.version).toBe(2);
    expect(await fx.snapshot()).toEqual(before);
    expect(await count(`select 1 from assignment where version <> 3`)).toBe(0);
    expect(await count(`select 1 from call_assignment where version <> 3`)).toBe(0);
    expect(await fx.invariantBreaches()).toEqual({ doubleBooked: 0, swapCount: 1 });
  });
});

interface Row {
  id: string;
  person_id: string;
  version: number;
}

interface Move {
  id: string;
  from: string;
  to: string;
  version: number;
}

/**
 * Checks that the moves recorded for each row form one unbroken chain: the
 * versions the swaps left are 2, 3, 4…, each move starts where the previous one
 * ended, the first starts at the fixture's holder and the last ends at today's.
 * So every successful swap's receivers hold what it moved, unless a later swap
 * (the next version) moved it on.
 */
function brokenChains(
  initial: readonly Row[],
  final: readonly Row[],
  moves: readonly Move[],
): string[] {
  const start = new Map(initial.map((r) => [r.id, r]));
  const byRow = new Map<string, Move[]>();
  for (const m of moves) byRow.set(m.id, [...(byRow.get(m.id) ?? []), m]);
  const problems: string[] = [];
  for (const row of final) {
    const chain = (byRow.get(row.id) ?? []).sort((x, y) => x.version - y.version);
    let holder = start.get(row.id)!.person_id;
    let version = start.get(row.id)!.version;
    for (const m of chain) {
      if (m.version !== version + 1 || m.from !== holder) {
        problems.push(
          `${row.id}: move to v${m.version} from ${m.from}, but v${version} was held by ${holder}`,
        );
      }
      holder = m.to;
      version = m.version;
    }
    if (row.person_id !== holder || row.version !== version) {
      problems.push(
        `${row.id}: held by ${row.person_id} at v${row.version}, the moves end at ${holder} v${version}`,
      );
    }
  }
  return problems;
}

describe('50 random swaps racing over 8 faculty and 6 weeks', () => {
  // Fixed, so a failing mix replays; SWAP_RACE_SEED explores other mixes.
  const SEED = Number(process.env.SWAP_RACE_SEED ?? 20300107);
  const WEEKS = Array.from({ length: 6 }, (_, k) => addDays('2030-03-04', 7 * k));
  const FMIT_DAYS_HALF = ['AM'] as ('AM' | 'PM')[];

  /**
   * Each week two faculty are on FMIT (every morning; Friday and Saturday calls)
   * and the other six have two clinic afternoons. Nobody has adjacent FMIT weeks.
   * Most swaps are valid; the rest break the double-booking, clinic-limit or
   * back-to-back rules, or find the week already given away.
   */
  async function buildProgram(): Promise<string[]> {
    const faculty: string[] = [];
    for (let i = 0; i < 8; i++) faculty.push(await fx.faculty('core', `Dr ${i}`));
    for (const [k, week] of WEEKS.entries()) {
      const onFmit = [(2 * k) % 8, (2 * k + 1) % 8];
      for (const [i, person] of faculty.entries()) {
        if (onFmit.includes(i)) {
          await fx.assignWeek(person, week, { rotation: 'FMIT', halves: FMIT_DAYS_HALF });
          await fx.call(person, addDays(week, onFmit[0] === i ? 4 : 5));
        } else {
          await fx.assignWeek(person, week, {
            rotation: 'clinic',
            halves: ['PM'],
            days: [i % 7, (i + 3) % 7],
          });
        }
      }
    }
    return faculty;
  }

  it('ends every call in OK or a business refusal, and leaves a consistent schedule', async () => {
    const faculty = await buildProgram();
    const random = seededRandom(SEED);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    const requests = Array.from({ length: 50 }, () => {
      const source = pick(faculty);
      const target = pick(faculty.filter((f) => f !== source));
      const oneToOne = random() < 0.5;
      return {
        sourceFacultyId: source,
        sourceWeek: pick(WEEKS),
        targetFacultyId: target,
        targetWeek: oneToOne ? pick(WEEKS) : '',
        swapType: oneToOne ? SwapType.SWAP_TYPE_ONE_TO_ONE : SwapType.SWAP_TYPE_ABSORB,
        reason: 'random',
        requestId: randomUUID(),
      };
    });
    const blocksBefore = await fx.db.query(
      `select block_id, rotation, count(*)::int as n from assignment group by 1, 2 order by 1, 2`,
    );
    const assignmentsBefore = (
      await fx.db.query<Row>(`select id, person_id, version from assignment`)
    ).rows;
    const callsBefore = (
      await fx.db.query<Row>(`select id, person_id, version from call_assignment`)
    ).rows;
    const statsBefore = ts.service.transactions.stats();

    const outcomes = await Promise.all(
      requests.map((r) => outcomeOf(ts.api.executeSwap(r, deadline()))),
    );

    const stats = ts.service.transactions.stats();
    console.log(
      `1c (seed ${SEED}):`,
      tally(outcomes),
      'retries:',
      retriesSince(statsBefore),
      'exhausted:',
      stats.exhausted - statsBefore.exhausted,
    );
    const unexpected = outcomes.filter(
      (o) => !o.ok && o.code !== status.FAILED_PRECONDITION && o.code !== status.NOT_FOUND,
    );
    expect(unexpected).toEqual([]);
    const swaps = outcomes.flatMap((o) => (o.ok ? [o.swap] : []));
    expect(swaps.length).toBeGreaterThan(0);
    expect(await count(`select 1 from swap_record where status = 'EXECUTED'`)).toBe(swaps.length);

    // Moves change who holds a row, never how many rows a block has.
    const blocksAfter = await fx.db.query(
      `select block_id, rotation, count(*)::int as n from assignment group by 1, 2 order by 1, 2`,
    );
    expect(blocksAfter.rows).toEqual(blocksBefore.rows);
    expect((await fx.invariantBreaches()).doubleBooked).toBe(0);

    const assignmentsAfter = (
      await fx.db.query<Row>(`select id, person_id, version from assignment`)
    ).rows;
    const callsAfter = (
      await fx.db.query<Row>(`select id, person_id, version from call_assignment`)
    ).rows;
    const assignmentMoves = swaps.flatMap((s) =>
      s.movedAssignments.map((m) => ({
        id: m.assignmentId,
        from: m.fromPersonId,
        to: m.toPersonId,
        version: m.version,
      })),
    );
    const callMoves = swaps.flatMap((s) =>
      s.movedCalls.map((m) => ({
        id: m.callId,
        from: m.fromPersonId,
        to: m.toPersonId,
        version: m.version,
      })),
    );
    expect(brokenChains(assignmentsBefore, assignmentsAfter, assignmentMoves)).toEqual([]);
    expect(brokenChains(callsBefore, callsAfter, callMoves)).toEqual([]);

    // The rules each committed swap was judged by still hold for the final schedule.
    const backToBack = await fx.db.query(
      `with fmit as (
         select distinct a.person_id, date_trunc('week', b.date)::date as week
           from assignment a join block b on b.id = a.block_id where a.rotation = 'FMIT')
       select x.person_id, x.week from fmit x join fmit y on y.person_id = x.person_id and y.week = x.week + 7`,
    );
    expect(backToBack.rows).toEqual([]);
    const overClinicLimit = await fx.db.query(
      `select a.person_id, date_trunc('week', b.date)::date as week, count(*)::int as n
         from assignment a join block b on b.id = a.block_id
        where a.rotation = 'clinic' group by 1, 2 having count(*) > 4`,
    );
    expect(overClinicLimit.rows).toEqual([]);
  });
});
