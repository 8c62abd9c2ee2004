import type { EntityManager } from '@mikro-orm/postgresql';
import { addDays, mondayOf } from '../domain/calendar';
import { FMIT_ROTATION } from '../schedule/assignment.entity';

/** A one-to-one swap of two FMIT weeks that the demo schedule allows. */
export interface DemoSwap {
  sourceFacultyId: string;
  sourceName: string;
  sourceWeek: string;
  targetFacultyId: string;
  targetName: string;
  targetWeek: string;
}

/** Swaps this far ahead carry no short-notice warning. */
const LEAD_DAYS = 21;

/**
 * One-to-one FMIT swaps of the schedule as it is now, earliest first: each
 * holder is free of all work and absence in the other's week and holds no
 * FMIT week next to it, so the swap breaks no rule. The demo seed keeps a few
 * such pairs (see `DemoPlan.swapReady`); this finds them, or any others, in
 * the database itself, so it also works on a demo database seeded earlier.
 */
export async function findDemoSwaps(
  em: EntityManager,
  today: string,
  limit: number,
): Promise<DemoSwap[]> {
  const from = addDays(mondayOf(today), LEAD_DAYS);
  return em.execute<DemoSwap[]>(
    `with fmit as (
       select distinct a.person_id as person, b.date - (extract(isodow from b.date)::int - 1) as week
         from assignment a join block b on b.id = a.block_id
        where a.rotation = ? and b.date >= ?::date - 7),
     busy as (
       select distinct a.person_id as person, b.date - (extract(isodow from b.date)::int - 1) as week
         from assignment a join block b on b.id = a.block_id where b.date >= ?::date
       union
       select person_id, date - (extract(isodow from date)::int - 1) from call_assignment where date >= ?::date)
     select a.person as "sourceFacultyId", pa.name as "sourceName", a.week::text as "sourceWeek",
            b.person as "targetFacultyId", pb.name as "targetName", b.week::text as "targetWeek"
       from fmit a join fmit b on b.person <> a.person and b.week >= a.week + 14
       join person pa on pa.id = a.person join person pb on pb.id = b.person
      where a.week >= ?::date
        and not exists (select 1 from busy x where x.person = b.person and x.week = a.week)
        and not exists (select 1 from busy x where x.person = a.person and x.week = b.week)
        and not exists (select 1 from fmit f where f.person = b.person and f.week in (a.week - 7, a.week + 7))
        and not exists (select 1 from fmit f where f.person = a.person and f.week in (b.week - 7, b.week + 7))
        and not exists (select 1 from absence x where x.person_id = b.person and x.blocking
                          and x.start_date <= a.week + 6 and x.end_date >= a.week)
        and not exists (select 1 from absence x where x.person_id = a.person and x.blocking
                          and x.start_date <= b.week + 6 and x.end_date >= b.week)
      order by a.week, b.week, pa.name, pb.name
      limit ?`,
    [FMIT_ROTATION, from, from, from, from, limit],
  );
}
