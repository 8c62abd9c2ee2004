import type pg from 'pg';
import { addDays } from '../src/domain/calendar';

/** The size of the program the scale bench measures on (the one issue 14 measured). */
export const BIG_PROGRAM = {
  faculty: 228,
  /** Faculty who attend FMIT, in turn: each some 22 weeks over the ten years. */
  fmitAttendings: 24,
  residents: 36,
  /** Ten academic years of weeks. */
  weeks: 522,
  /** Faculty on other work in each half-day block, beside the FMIT attending and two residents. */
  clinicPerBlock: 24,
  absencesPerFaculty: 20,
  swapRecords: 1_000_000,
  idempotencyKeys: 1_000_000,
} as const;

/** What {@link generateBigProgram} made, for the report. */
export interface BigProgram {
  firstWeek: string;
  lastWeek: string;
  /** The Monday of the last full year of the program, and the Monday 51 weeks later. */
  lastYear: { from: string; to: string };
  rows: Record<string, number>;
  elapsedMs: number;
}

/**
 * Grows the schedule of `db` into the big program, all in SQL with
 * generate_series so it takes minutes: faculty up to {@link BIG_PROGRAM}'s 228
 * (the faculty already there, the bench's swap pairs, are part of it and get a
 * history too), ten academic years of half-day blocks ending the week before
 * `endBefore`, each with an FMIT attending, two residents and 24 faculty on
 * other work (~197k assignments; FMIT taken in turn by 24 of the faculty), a call every day (Friday and Saturday calls
 * mostly the FMIT attending's, so some weeks raise CALL_CASCADE), absences,
 * a million swap records and a million idempotency keys. `endBefore` is the
 * first week the swap pairs own, so no block of the program collides with
 * theirs and no rule of their swaps sees the program's weeks.
 */
export async function generateBigProgram(
  db: pg.ClientBase,
  endBefore: string,
  say: (line: string) => void,
): Promise<BigProgram> {
  const started = performance.now();
  const lastWeek = addDays(endBefore, -14);
  const firstWeek = addDays(lastWeek, -7 * (BIG_PROGRAM.weeks - 1));
  const step = async (what: string, sql: string, values: unknown[] = []) => {
    const t0 = performance.now();
    const result = await db.query(sql, values);
    say(
      `  big program: ${what}: ${result.rowCount ?? 0} rows, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  };
  await step(
    'faculty',
    `insert into person (id, name, kind, faculty_role)
     select gen_random_uuid(), 'Program faculty ' || n, 'faculty', (array['core', 'core', 'core', 'adjunct', 'apd', 'oic'])[1 + n % 6]
     from generate_series(1, greatest(0, $1 - (select count(*) from person where kind = 'faculty'))) n`,
    [BIG_PROGRAM.faculty],
  );
  await step(
    'residents',
    `insert into person (id, name, kind, pgy_level)
     select gen_random_uuid(), 'Program resident ' || n, 'resident', 1 + n % 3 from generate_series(0, $1 - 1) n`,
    [BIG_PROGRAM.residents],
  );
  await db.query(`
create temp table program_faculty as
  select (row_number() over (order by id) - 1)::int as k, id from person where kind = 'faculty';
create temp table program_resident as
  select (row_number() over (order by id) - 1)::int as k, id from person where name like 'Program resident %';`);
  await step(
    'blocks',
    `insert into block (id, date, half)
     select gen_random_uuid(), $1::date + d, half from generate_series(0, $2 * 7 - 1) d, unnest(array['AM', 'PM']) half`,
    [firstWeek, BIG_PROGRAM.weeks],
  );
  // Block day d of week w: FMIT attending faculty 7w mod a (the a attendings in
  // turn, every a weeks), the others offset from it so none holds a block twice.
  await db.query(
    `create temp table program_block as
       select b.id, (b.date - $1::date) as d, (b.date - $1::date) / 7 as w
       from block b where b.date between $1::date and $1::date + $2 * 7 - 1`,
    [firstWeek, BIG_PROGRAM.weeks],
  );
  const facultyCount = `(select count(*) from program_faculty)`;
  await step(
    'FMIT assignments',
    `insert into assignment (id, block_id, person_id, role, rotation)
     select gen_random_uuid(), b.id, f.id, 'primary', 'FMIT'
     from program_block b join program_faculty f on f.k = (7 * b.w) % $1`,
    [BIG_PROGRAM.fmitAttendings],
  );
  await step(
    'resident assignments',
    `insert into assignment (id, block_id, person_id, role, rotation)
     select gen_random_uuid(), b.id, r.id, 'primary', 'FMIT'
     from program_block b join program_resident r on r.k in ((3 * b.w) % $1, (3 * b.w + 1) % $1)`,
    [BIG_PROGRAM.residents],
  );
  await step(
    'other assignments',
    `insert into assignment (id, block_id, person_id, role, rotation)
     select gen_random_uuid(), b.id, f.id, 'supervising', (array['clinic', 'inpatient', 'sports', 'procedures'])[1 + j % 4]
     from program_block b cross join generate_series(0, $1 - 1) j
     join program_faculty f on f.k = ((7 * b.w) % $2 + 1 + 9 * j + b.d % 7) % ${facultyCount}`,
    [BIG_PROGRAM.clinicPerBlock, BIG_PROGRAM.fmitAttendings],
  );
  await step(
    'calls',
    `insert into call_assignment (id, date, person_id, call_type)
     select gen_random_uuid(), $1::date + d, f.id, case when d % 7 in (4, 5) then 'weekend' else 'overnight' end
     from generate_series(0, $2 * 7 - 1) d
     join program_faculty f on f.k = case
       when d % 7 in (4, 5) and (d / 7) % 9 <> 0 then (7 * (d / 7)) % $3
       else (13 * d + 5) % ${facultyCount} end`,
    [firstWeek, BIG_PROGRAM.weeks, BIG_PROGRAM.fmitAttendings],
  );
  await step(
    'absences',
    `insert into absence (id, person_id, start_date, end_date, type, blocking)
     select gen_random_uuid(), f.id, $1::date + s.start, $1::date + s.start + s.len,
            case when s.blocking then 'tdy' else 'conference' end, s.blocking
     from program_faculty f cross join generate_series(1, $3) n
     cross join lateral (select ((f.k * 7919 + n * 104729) % ($2 * 7 - 10)) as start,
                                 (f.k + n) % 10 as len, (f.k + n) % 3 = 0 as blocking) s`,
    [firstWeek, BIG_PROGRAM.weeks, BIG_PROGRAM.absencesPerFaculty],
  );
  // History: requested over the ten years up to yesterday, so the bench's own
  // swaps, made now, are the newest; moves left empty to keep the table to a size
  // a bench machine holds.
  await step(
    'swap records',
    `insert into swap_record (id, source_faculty_id, source_week, target_faculty_id, target_week, swap_type, status,
                              reason, requested_at, requested_by, executed_at, executed_by,
                              rolled_back_at, rolled_back_by, rollback_reason, moves, warnings)
     select gen_random_uuid(), s.id, $1::date + 7 * (n % $3::int), t.id, $1::date + 7 * ((n + 2) % $3::int), 'ONE_TO_ONE',
            case when n % 10 = 0 then 'ROLLED_BACK' else 'EXECUTED' end, 'program history', at, 'bench-history',
            at, 'bench-history', case when n % 10 = 0 then at end, case when n % 10 = 0 then 'bench-history' end,
            case when n % 10 = 0 then 'program history' end, '{"assignments": [], "calls": []}', '[]'
     from generate_series(1, $2::int) n
     cross join lateral (select date_trunc('milliseconds', now() - interval '1 day' - (1 - n::float8 / $2::int) * ($3::int * interval '7 days')) as at) a
     join program_faculty s on s.k = n % ${facultyCount}
     join program_faculty t on t.k = (n * 7 + 1) % ${facultyCount}`,
    [firstWeek, BIG_PROGRAM.swapRecords, BIG_PROGRAM.weeks],
  );
  // Keys of earlier calls, live for a while yet, as the retention window keeps them.
  await step(
    'idempotency keys',
    `insert into idempotency_record (scope, request_id, fingerprint, response, created_at, expires_at)
     select json_build_array('bench-history', null, 'ExecuteSwap')::text, gen_random_uuid(), md5(n::text),
            '\\x00'::bytea, now() - interval '1 hour', now() + interval '1 day'
     from generate_series(1, $1) n`,
    [BIG_PROGRAM.idempotencyKeys],
  );
  await db.query('drop table program_faculty, program_resident, program_block');
  const t0 = performance.now();
  await db.query(
    'vacuum (analyze) person, block, assignment, call_assignment, absence, swap_record, idempotency_record',
  );
  say(`  big program: vacuum analyze ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const { rows } = await db.query<Record<string, number>>(`
select (select count(*) from person where kind = 'faculty')::int as faculty,
       (select count(*) from assignment)::int as assignments,
       (select count(*) from call_assignment)::int as calls,
       (select count(*) from absence)::int as absences,
       (select count(*) from swap_record)::int as "swapRecords",
       (select count(*) from idempotency_record)::int as "idempotencyKeys"`);
  const yearEnd = addDays(lastWeek, -7);
  return {
    firstWeek,
    lastWeek,
    lastYear: { from: addDays(yearEnd, -7 * 51), to: yearEnd },
    rows: rows[0]!,
    elapsedMs: performance.now() - started,
  };
}
