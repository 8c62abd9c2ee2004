import type { EntityManager } from '@mikro-orm/postgresql';
import { sqlArray } from '../db/sql-array';
import { addDays } from '../domain/calendar';
import type { PersonFacts, ScheduleFacts } from './schedule-facts';
import { type SwapCommand, transfersOf } from './swap-command';

/** Weeks before and after a swapped week whose FMIT matters to the back-to-back rule. */
const NEIGHBOUR_DAYS = 7;

// One round trip for everything the rules read. Each part is a JSON array, so
// no ORM hydration is paid for rows that are only looked at.
const FACTS_SQL = `
with wanted as (
  select unnest(?::uuid[]) as person_id
), windows as (
  select unnest(?::date[]) as first_day, unnest(?::date[]) as last_day
), moving_blocks as (
  select a.block_id
  from assignment a join block b on b.id = a.block_id
  join unnest(?::uuid[], ?::date[]) as t(giver, week) on a.person_id = t.giver
  where b.date between t.week and t.week + 6
), facts as not materialized (
  select a.id, a.block_id as "blockId", b.date as "blockDate", b.half as "blockHalf",
         a.person_id as "personId", p.kind as "personKind", p.pgy_level as "pgyLevel",
         a.role, a.rotation
  from assignment a join block b on b.id = a.block_id join person p on p.id = a.person_id
)
select
  (select coalesce(json_agg(json_build_object('id', p.id, 'kind', p.kind,
      'facultyRole', p.faculty_role, 'pgyLevel', p.pgy_level)), '[]')
     from person p where p.id in (select person_id from wanted)) as people,
  (select coalesce(json_agg(f), '[]') from facts f
     where f."personId" in (select person_id from wanted)
       and exists (select 1 from windows w where f."blockDate" between w.first_day and w.last_day)) as "facultyAssignments",
  (select coalesce(json_agg(f), '[]') from facts f
     where f."blockId" in (select block_id from moving_blocks)) as "affectedBlockRosters",
  (select coalesce(json_agg(json_build_object('personId', ab.person_id, 'startDate', ab.start_date,
      'endDate', ab.end_date, 'type', ab.type)), '[]')
     from absence ab
     where ab.blocking and ab.person_id in (select person_id from wanted)
       and exists (select 1 from windows w where ab.start_date <= w.last_day and ab.end_date >= w.first_day)) as "blockingAbsences"
`;

interface FactsRow {
  people: PersonFacts[];
  facultyAssignments: ScheduleFacts['facultyAssignments'];
  affectedBlockRosters: ScheduleFacts['affectedBlockRosters'];
  blockingAbsences: ScheduleFacts['blockingAbsences'];
}

/**
 * Reads the facts that the swap rules judge, in the transaction of `em`. Writers
 * call it only after locking the faculty weeks involved, so the facts stay true
 * until they commit.
 */
export async function readScheduleFacts(
  em: EntityManager,
  command: SwapCommand,
): Promise<ScheduleFacts> {
  const transfers = transfersOf(command);
  const people = [command.sourceFacultyId, command.targetFacultyId];
  const firstDays = transfers.map((t) => addDays(t.week, -NEIGHBOUR_DAYS));
  const lastDays = transfers.map((t) => addDays(t.week, 6 + NEIGHBOUR_DAYS));
  const [row] = await em.execute<FactsRow[]>(FACTS_SQL, [
    sqlArray(people),
    sqlArray(firstDays),
    sqlArray(lastDays),
    sqlArray(transfers.map((t) => t.giver)),
    sqlArray(transfers.map((t) => t.week)),
  ]);
  if (!row) throw new Error('the facts query returned no row');
  return {
    people: new Map(row.people.map((p) => [p.id, p])),
    facultyAssignments: row.facultyAssignments,
    affectedBlockRosters: row.affectedBlockRosters,
    blockingAbsences: row.blockingAbsences,
  };
}
