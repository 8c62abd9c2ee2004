import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { addDays, mondayOf, toIsoDate } from '../../src/domain/calendar';
import type { RowState } from './history';

/**
 * The schedule a chaos run works on: groups of three faculty members (A holds
 * FMIT in week 1, B in week 3, C holds nothing) who swap and absorb each
 * other's weeks. Every block of a group's weeks has its FMIT attending, a
 * PGY-1 and a PGY-3; the attending holds the week's Friday and Saturday calls,
 * so every call follows its week and no CALL_CASCADE arises. In every second
 * group A is deployed for two days of week 1, which raises LEAVE_FMIT_OVERLAP,
 * whose resolution absorbs the week to someone else; rolling that back brings
 * the conflict back.
 */
export interface ChaosGroup {
  index: number;
  faculty: [string, string, string];
  weeks: [string, string];
  /** The assignment ids of each week, for lock stalls. */
  assignmentIds: [string[], string[]];
}

export interface ChaosSchedule {
  groups: ChaosGroup[];
  firstWeek: string;
  lastWeek: string;
}

const WEEKS_PER_GROUP = 4;
const CALL_DAYS = [4, 5];
const HALVES = ['AM', 'PM'] as const;

/** Seeds `count` groups with plain SQL, starting far enough ahead that no week is near. */
export async function seedChaosSchedule(db: pg.Pool, count: number): Promise<ChaosSchedule> {
  const firstWeek = mondayOf(addDays(toIsoDate(new Date()), 8 * 7));
  const pgy1 = randomUUID();
  const pgy3 = randomUUID();
  const people: unknown[][] = [
    [pgy1, 'Chaos PGY-1', 'resident', 1, null],
    [pgy3, 'Chaos PGY-3', 'resident', 3, null],
  ];
  const blocks: unknown[][] = [];
  const assignments: unknown[][] = [];
  const calls: unknown[][] = [];
  const facultyWeeks: unknown[][] = [];
  const absences: unknown[][] = [];
  const groups: ChaosGroup[] = [];
  for (let g = 0; g < count; g++) {
    const faculty: [string, string, string] = [randomUUID(), randomUUID(), randomUUID()];
    faculty.forEach((id, i) => people.push([id, `Chaos ${'ABC'[i]}${g}`, 'faculty', null, 'core']));
    const week1 = addDays(firstWeek, 7 * WEEKS_PER_GROUP * g);
    const weeks: [string, string] = [week1, addDays(week1, 14)];
    const assignmentIds: [string[], string[]] = [[], []];
    weeks.forEach((week, w) => {
      const attending = faculty[w]!;
      for (let day = 0; day < 7; day++) {
        for (const half of HALVES) {
          const block = randomUUID();
          blocks.push([block, addDays(week, day), half]);
          for (const person of [attending, pgy1, pgy3]) {
            const id = randomUUID();
            assignments.push([id, block, person]);
            if (person === attending) assignmentIds[w]!.push(id);
          }
        }
      }
      for (const day of CALL_DAYS) calls.push([randomUUID(), addDays(week, day), attending]);
    });
    for (const person of faculty) {
      for (let w = -1; w <= 3; w++)
        facultyWeeks.push([randomUUID(), person, addDays(week1, 7 * w)]);
    }
    if (g % 2 === 0) {
      absences.push([
        randomUUID(),
        faculty[0],
        addDays(week1, 2),
        addDays(week1, 3),
        'deployment',
        true,
      ]);
    }
    groups.push({ index: g, faculty, weeks, assignmentIds });
  }
  const client = await db.connect();
  try {
    await client.query('begin');
    await client.query(
      `insert into person (id, name, kind, pgy_level, faculty_role)
       select * from unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[])`,
      columns(people, 5),
    );
    await client.query(
      `insert into block (id, date, half) select * from unnest($1::uuid[], $2::date[], $3::text[])`,
      columns(blocks, 3),
    );
    await client.query(
      `insert into assignment (id, block_id, person_id, role, rotation)
       select id, block_id, person_id, 'primary', 'FMIT' from unnest($1::uuid[], $2::uuid[], $3::uuid[]) as t(id, block_id, person_id)`,
      columns(assignments, 3),
    );
    await client.query(
      `insert into call_assignment (id, date, person_id, call_type)
       select id, date, person_id, 'weekend' from unnest($1::uuid[], $2::date[], $3::uuid[]) as t(id, date, person_id)`,
      columns(calls, 3),
    );
    await client.query(
      `insert into faculty_week (id, person_id, week_start) select * from unnest($1::uuid[], $2::uuid[], $3::date[])`,
      columns(facultyWeeks, 3),
    );
    if (absences.length > 0) {
      await client.query(
        `insert into absence (id, person_id, start_date, end_date, type, blocking)
         select * from unnest($1::uuid[], $2::uuid[], $3::date[], $4::date[], $5::text[], $6::bool[])`,
        columns(absences, 6),
      );
    }
    await client.query('commit');
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
  const lastWeek = addDays(firstWeek, 7 * (WEEKS_PER_GROUP * count - 1));
  return { groups, firstWeek, lastWeek };
}

/** Every assignment and call with its holder and version. */
export async function scheduleRows(
  query: <R extends pg.QueryResultRow>(sql: string) => Promise<R[]>,
): Promise<{ assignments: RowState[]; calls: RowState[] }> {
  const assignments = await query<RowState>(
    `select id, person_id as "personId", version from assignment order by id`,
  );
  const calls = await query<RowState>(
    `select id, person_id as "personId", version from call_assignment order by id`,
  );
  return { assignments, calls };
}

function columns(rows: readonly unknown[][], width: number): unknown[][] {
  return Array.from({ length: width }, (_, c) => rows.map((row) => row[c]));
}
