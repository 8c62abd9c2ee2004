import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { addDays, mondayOf, toIsoDate } from '../src/domain/calendar';
import { type ExecuteSwapRequest, SwapType } from '../src/generated/swap/v1/swap';

/**
 * Two faculty members who trade FMIT weeks back and forth. A starts with FMIT in
 * `weekA` and B in `weekB`, two weeks later, so a ONE_TO_ONE swap of those weeks
 * is valid in either direction, and each swap undoes the previous one.
 */
export interface SwapPair {
  index: number;
  a: string;
  b: string;
  weekA: string;
  weekB: string;
  /** True while A holds weekB and B holds weekA. */
  flipped: boolean;
  /** Swaps of this pair that committed; each bumps every moved row's version by one. */
  swaps: number;
  /** A swap of this pair failed, so its state is unknown; the run leaves it alone. */
  broken: boolean;
}

/** Far enough ahead that no swapped week is near (SHORT_NOTICE) or past, whatever the date. */
const FIRST_WEEK = mondayOf(addDays(toIsoDate(new Date()), 8 * 7));
/** Pair i owns weeks 4i..4i+3 after FIRST_WEEK, so each FMIT week has exactly one attending. */
const WEEKS_PER_PAIR = 4;
/** Friday and Saturday (days after Monday): the calls that follow whoever works the week. */
export const CALL_DAYS = [4, 5];
const HALVES = ['AM', 'PM'] as const;

/** What one swap changes; stated in the report so the numbers can be compared. */
export const ROWS_PER_SWAP = {
  facultyWeeksLocked: 8,
  assignmentsMoved: 2 * 7 * HALVES.length,
  callsMoved: 2 * CALL_DAYS.length,
  recordsInserted: 1,
} as const;

/** What one swap asks for, less its request id. */
export type SwapRequest = Omit<ExecuteSwapRequest, 'requestId'>;

/** The ONE_TO_ONE swap that flips `pair` to its other state. */
export function nextSwapOf(pair: SwapPair): SwapRequest {
  return {
    sourceFacultyId: pair.a,
    sourceWeek: pair.flipped ? pair.weekB : pair.weekA,
    targetFacultyId: pair.b,
    targetWeek: pair.flipped ? pair.weekA : pair.weekB,
    swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
    reason: 'bench',
  };
}

/** Who holds the FMIT week `week` of `pair` now. */
export function holderOf(pair: SwapPair, week: string): string {
  return (week === pair.weekA) !== pair.flipped ? pair.a : pair.b;
}

/**
 * Seeds `count` pairs with plain SQL: per FMIT week, 14 half-day blocks each held
 * by the attending, a PGY-1 and a PGY-3 (so the supervision rule has a roster to
 * judge), the attending's Friday and Saturday calls, and every faculty-week row
 * either direction of the swap locks, so no swap has to create lock rows.
 * Pairs are numbered from `firstIndex`, so a second call with the count of the
 * first as `firstIndex` adds pairs on weeks of their own.
 */
export async function seedSwapPairs(
  db: pg.ClientBase,
  count: number,
  firstIndex = 0,
): Promise<SwapPair[]> {
  const pgy1 = randomUUID();
  const pgy3 = randomUUID();
  const people: Array<[string, string, 'faculty' | 'resident', number | null, string | null]> = [
    [pgy1, 'Bench PGY-1', 'resident', 1, null],
    [pgy3, 'Bench PGY-3', 'resident', 3, null],
  ];
  const blocks: Array<[string, string, string]> = [];
  const assignments: Array<[string, string, string]> = [];
  const calls: Array<[string, string, string]> = [];
  const facultyWeeks: Array<[string, string, string]> = [];
  const pairs: SwapPair[] = [];

  for (let i = firstIndex; i < firstIndex + count; i++) {
    const a = randomUUID();
    const b = randomUUID();
    const weekA = addDays(FIRST_WEEK, 7 * WEEKS_PER_PAIR * i);
    const weekB = addDays(weekA, 14);
    people.push(
      [a, `Bench A${i}`, 'faculty', null, 'core'],
      [b, `Bench B${i}`, 'faculty', null, 'core'],
    );
    for (const [attending, week] of [
      [a, weekA],
      [b, weekB],
    ] as const) {
      for (let day = 0; day < 7; day++) {
        for (const half of HALVES) {
          const block = randomUUID();
          blocks.push([block, addDays(week, day), half]);
          for (const person of [attending, pgy1, pgy3])
            assignments.push([randomUUID(), block, person]);
        }
      }
      for (const day of CALL_DAYS) calls.push([randomUUID(), addDays(week, day), attending]);
    }
    for (const person of [a, b]) {
      for (const week of [addDays(weekA, -7), weekA, addDays(weekA, 7), weekB, addDays(weekB, 7)]) {
        facultyWeeks.push([randomUUID(), person, week]);
      }
    }
    pairs.push({ index: i, a, b, weekA, weekB, flipped: false, swaps: 0, broken: false });
  }

  await db.query('begin');
  try {
    await db.query(
      `insert into person (id, name, kind, pgy_level, faculty_role)
       select * from unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[])`,
      columns(people, 5),
    );
    await db.query(
      `insert into block (id, date, half) select * from unnest($1::uuid[], $2::date[], $3::text[])`,
      columns(blocks, 3),
    );
    await db.query(
      `insert into assignment (id, block_id, person_id, role, rotation)
       select id, block_id, person_id, 'primary', 'FMIT' from unnest($1::uuid[], $2::uuid[], $3::uuid[]) as t(id, block_id, person_id)`,
      columns(assignments, 3),
    );
    await db.query(
      `insert into call_assignment (id, date, person_id, call_type)
       select id, date, person_id, 'weekend' from unnest($1::uuid[], $2::date[], $3::uuid[]) as t(id, date, person_id)`,
      columns(calls, 3),
    );
    await db.query(
      `insert into faculty_week (id, person_id, week_start) select * from unnest($1::uuid[], $2::uuid[], $3::date[])`,
      columns(facultyWeeks, 3),
    );
    await db.query('commit');
  } catch (error) {
    await db.query('rollback');
    throw error;
  }
  await db.query('analyze');
  return pairs;
}

function columns(rows: ReadonlyArray<readonly unknown[]>, width: number): unknown[][] {
  return Array.from({ length: width }, (_, c) => rows.map((row) => row[c]));
}
