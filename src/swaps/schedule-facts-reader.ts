import type { EntityManager } from '@mikro-orm/postgresql';
import { preparedStatement, runPrepared } from '../db/prepared-statement';
import { addDays } from '../domain/calendar';
import type { PersonFacts, ScheduleFacts } from './schedule-facts';
import { CASCADING_CALL_DAYS, type SwapCommand, transfersOf } from './swap-command';

/** Weeks before and after a swapped week whose FMIT matters to the back-to-back rule. */
const NEIGHBOUR_DAYS = 7;

interface FactsRow {
  people: PersonFacts[];
  facultyAssignments: ScheduleFacts['facultyAssignments'];
  affectedBlockRosters: ScheduleFacts['affectedBlockRosters'];
  blockingAbsences: ScheduleFacts['blockingAbsences'];
  cascadingCalls: ScheduleFacts['cascadingCalls'];
}

/**
 * The assignment of `person` in `block`, if any, looked up by the (block,
 * person) unique index. As a LATERAL with LIMIT it stays a lookup per block:
 * a plain join lets the planner, which cannot see how few blocks a window of
 * array parameters holds, read the people's whole history instead.
 */
function holding(block: string, person: string): string {
  return `select a.* from assignment a where a.block_id = ${block} and a.person_id = ${person} limit 1`;
}

// One round trip for everything the rules read, prepared once per connection
// (its plan costs more than running it). Each part is a JSON array, so no ORM
// hydration is paid for rows that are only looked at. Every part starts from
// the dates it needs (block by date, then its assignments; calls by person and
// date), so its cost follows the weeks asked about, never the length of
// anyone's history.
// $1 people, $2/$3 the windows' first and last days, $4/$5 each transfer's
// giver and week, $6/$7 the givers and dates of the calls that follow them.
const FACTS = preparedStatement<FactsRow>(
  'swap_schedule_facts',
  `
with windows as (
  select w.first_day, w.last_day from unnest($2::date[], $3::date[]) as w(first_day, last_day)
), window_blocks as (
  select distinct b.id, b.date, b.half
  from windows w join block b on b.date between w.first_day and w.last_day
), moving_blocks as (
  select distinct a.block_id
  from unnest($4::uuid[], $5::date[]) as t(giver, week)
  join block b on b.date between t.week and t.week + 6
  cross join lateral (${holding('b.id', 't.giver')}) a
)
select
  (select coalesce(json_agg(json_build_object('id', p.id, 'kind', p.kind,
      'facultyRole', p.faculty_role, 'pgyLevel', p.pgy_level)), '[]')
     from person p where p.id = any($1::uuid[])) as people,
  (select coalesce(json_agg(json_build_object('id', a.id, 'blockId', b.id, 'blockDate', b.date,
      'blockHalf', b.half, 'personId', a.person_id, 'personKind', p.kind, 'pgyLevel', p.pgy_level,
      'role', a.role, 'rotation', a.rotation, 'version', a.version)), '[]')
     from window_blocks b
     cross join unnest($1::uuid[]) as who(person_id)
     cross join lateral (${holding('b.id', 'who.person_id')}) a
     join person p on p.id = a.person_id) as "facultyAssignments",
  (select coalesce(json_agg(json_build_object('id', a.id, 'blockId', b.id, 'blockDate', b.date,
      'blockHalf', b.half, 'personId', a.person_id, 'personKind', p.kind, 'pgyLevel', p.pgy_level,
      'role', a.role, 'rotation', a.rotation, 'version', a.version)), '[]')
     from moving_blocks m
     join block b on b.id = m.block_id
     join assignment a on a.block_id = m.block_id
     join person p on p.id = a.person_id) as "affectedBlockRosters",
  (select coalesce(json_agg(json_build_object('personId', ab.person_id, 'startDate', ab.start_date,
      'endDate', ab.end_date, 'type', ab.type)), '[]')
     from absence ab
     where ab.blocking and ab.person_id = any($1::uuid[])
       and exists (select 1 from windows w where ab.start_date <= w.last_day and ab.end_date >= w.first_day)) as "blockingAbsences",
  (select coalesce(json_agg(json_build_object('id', c.id, 'date', c.date, 'personId', c.person_id,
      'callType', c.call_type, 'version', c.version) order by c.id), '[]')
     from unnest($6::uuid[], $7::date[]) as k(person_id, date)
     join call_assignment c on c.person_id = k.person_id and c.date = k.date) as "cascadingCalls"
`,
);

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
  const callDays = transfers.flatMap((t) =>
    CASCADING_CALL_DAYS.map((d) => ({ giver: t.giver, date: addDays(t.week, d) })),
  );
  const [row] = await runPrepared(em, FACTS, [
    [command.sourceFacultyId, command.targetFacultyId],
    transfers.map((t) => addDays(t.week, -NEIGHBOUR_DAYS)),
    transfers.map((t) => addDays(t.week, 6 + NEIGHBOUR_DAYS)),
    transfers.map((t) => t.giver),
    transfers.map((t) => t.week),
    callDays.map((c) => c.giver),
    callDays.map((c) => c.date),
  ]);
  if (!row) throw new Error('the facts query returned no row');
  return {
    people: new Map(row.people.map((p) => [p.id, p])),
    facultyAssignments: row.facultyAssignments,
    affectedBlockRosters: row.affectedBlockRosters,
    blockingAbsences: row.blockingAbsences,
    cascadingCalls: row.cascadingCalls,
  };
}
