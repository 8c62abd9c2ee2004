/**
 * Every statement the raw-SQL path sends, with pg's numbered placeholders.
 *
 * Those the service writes as SQL text itself are copied verbatim from the
 * constant named beside each one (its \`?\` placeholders numbered \`$1\`, \`$2\`, …),
 * because none of them is exported; COPIED_STATEMENTS lists them, and the bench
 * checks on every run that each copy still matches its source. The rest are
 * what MikroORM generates for the service (row locks, versioned updates, the
 * record insert), written by hand.
 */

/** A statement copied from src/, and where it was copied from. */
export interface CopiedStatement {
  name: string;
  /** Path from the repository root. */
  file: string;
  /** The constant holding its text in that file. */
  constant: string;
  text: string;
}

// src/coordination/idempotency-store.ts, LOOKUP_SQL: the committed answer of a key, if any.
export const LOOKUP_SQL = `
select fingerprint, response from idempotency_record
where scope = $1 and request_id = $2 and expires_at > now() and response is not null`;

// src/coordination/idempotency-store.ts, CLAIM_SQL.
export const CLAIM_SQL = `
insert into idempotency_record (scope, request_id, fingerprint, expires_at)
values ($1, $2, $3, now() + $4::interval)
on conflict (scope, request_id) do update
  set fingerprint = excluded.fingerprint, response = null, created_at = now(), expires_at = excluded.expires_at
  where idempotency_record.expires_at <= now()
returning 1 as claimed`;

// src/coordination/idempotency-store.ts, COMPLETE_SQL.
export const COMPLETE_SQL = `
update idempotency_record set response = $1 where scope = $2 and request_id = $3
returning greatest(0, floor(extract(epoch from (expires_at - clock_timestamp())) * 1000))::float8 as "ttlMs"`;

// src/schedule/faculty-week-locks.ts, LOCK_SQL.
export const LOCK_FACULTY_WEEKS_SQL = `
select fw.person_id as "personId", fw.week_start as "week"
from faculty_week fw
join unnest($1::uuid[], $2::date[]) as k(person_id, week_start)
  on fw.person_id = k.person_id and fw.week_start = k.week_start
order by fw.id
for update of fw`;

// src/schedule/faculty-week-locks.ts, FENCE_SQL.
export const FENCE_SQL = `
with wanted as (
  select fw.id, fw.person_id, fw.week_start, fw.fencing_token
  from faculty_week fw
  join unnest($1::uuid[], $2::date[]) as k(person_id, week_start)
    on fw.person_id = k.person_id and fw.week_start = k.week_start
), fenced as (
  update faculty_week fw set fencing_token = $3::bigint
  from wanted w
  where fw.id = w.id and (w.fencing_token is null or w.fencing_token <= $4::bigint)
  returning fw.id
)
select w.person_id as "personId", w.week_start as "week", w.fencing_token::text as "token"
from wanted w where w.id not in (select id from fenced)`;

// src/swaps/schedule-facts-reader.ts, FACTS_SQL.
export const FACTS_SQL = `
with wanted as (
  select unnest($1::uuid[]) as person_id
), windows as (
  select unnest($2::date[]) as first_day, unnest($3::date[]) as last_day
), moving_blocks as (
  select a.block_id
  from assignment a join block b on b.id = a.block_id
  join unnest($4::uuid[], $5::date[]) as t(giver, week) on a.person_id = t.giver
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

// src/conflicts/conflict-detector.ts, DETECT_SQL. Parameters: first week, last
// week, back-to-back days, alternation window (days), max alternations, causing
// swap id, faculty (null: all), first week, last week.
export const DETECT_SQL = `
with params as (
  select $1::date as first_week, $2::date as last_week, $3::int as b2b_days,
         $4::int as window_days, $5::int as max_alternations, $6::uuid as swap_id,
         $7::uuid[] as faculty
), work_weeks as (
  select a.person_id, date_trunc('week', b.date)::date as week, bool_or(a.rotation = 'FMIT') as fmit
  from assignment a
  join block b on b.id = a.block_id
  join person p on p.id = a.person_id and p.kind = 'faculty'
  cross join params
  where b.date between params.first_week - params.window_days and params.last_week + 6 + params.b2b_days
    and (params.faculty is null or a.person_id = any(params.faculty))
  group by 1, 2
), fmit_weeks as (
  select person_id, week from work_weeks where fmit
), leave_overlap as (
  select distinct on (f.person_id, f.week)
         'LEAVE_FMIT_OVERLAP'::text as type, 'CRITICAL'::text as severity, f.person_id, f.week, ab.id as absence_id,
         format('FMIT week %s overlaps a blocking %s absence (%s to %s)', f.week, ab.type, ab.start_date, ab.end_date) as description
  from fmit_weeks f
  join absence ab on ab.person_id = f.person_id and ab.blocking
   and ab.start_date <= f.week + 6 and ab.end_date >= f.week
  order by f.person_id, f.week, ab.start_date, ab.id
), back_to_back as (
  select 'BACK_TO_BACK'::text, 'WARNING'::text, later.person_id, later.week, null::uuid,
         format('FMIT weeks %s and %s are %s days apart (less than %s)', earlier.week, later.week,
                later.week - earlier.week, (select b2b_days from params))
  from fmit_weeks later
  join fmit_weeks earlier on earlier.person_id = later.person_id
   and earlier.week < later.week and later.week - earlier.week < (select b2b_days from params)
), switches as (
  select person_id, week,
         case when lag(fmit) over w is not null and lag(fmit) over w <> fmit then 1 else 0 end as switched
  from work_weeks
  window w as (partition by person_id order by week)
), alternation as (
  select person_id, week,
         sum(switched) over (partition by person_id order by week
           range between make_interval(days => (select window_days from params) - 7) preceding and current row) as switches
  from switches
), alternating as (
  select 'EXCESSIVE_ALTERNATING'::text, 'INFO'::text, person_id, week, null::uuid,
         format('%s switches between FMIT and other services in the %s weeks up to %s', switches,
                (select window_days from params) / 7, week)
  from (select *, lag(switches) over (partition by person_id order by week) as before from alternation) a
  where switches > (select max_alternations from params)
    and coalesce(before, 0) <= (select max_alternations from params)
), call_cascade as (
  select distinct on (f.person_id, f.week)
         'CALL_CASCADE'::text, 'WARNING'::text, f.person_id, f.week, null::uuid,
         format('the %s call on %s is held by someone other than the FMIT faculty member', c.call_type, c.date)
  from fmit_weeks f
  join call_assignment c on c.date in (f.week + 4, f.week + 5)
  -- Against every FMIT holder of the week, not only the faculty this scan is limited to.
  where not exists (
    select 1 from assignment a2 join block b2 on b2.id = a2.block_id
    where a2.person_id = c.person_id and a2.rotation = 'FMIT' and b2.date between f.week and f.week + 6)
  order by f.person_id, f.week, c.date
), candidates as (
  select * from leave_overlap
  union all select * from back_to_back
  union all select * from alternating
  union all select * from call_cascade
)
insert into conflict_alert (id, faculty_id, type, severity, week_start, absence_id, swap_id, status, description, created_at)
select gen_random_uuid(), c.person_id, c.type, c.severity, c.week, c.absence_id, (select swap_id from params),
       'NEW', c.description, now()
from candidates c
where c.week between $8::date and $9::date
on conflict (type, faculty_id, week_start) where status in ('NEW', 'ACKNOWLEDGED', 'IGNORED') do nothing
returning id`;

export const COPIED_STATEMENTS: readonly CopiedStatement[] = [
  {
    name: 'idempotency lookup',
    file: 'src/coordination/idempotency-store.ts',
    constant: 'LOOKUP_SQL',
    text: LOOKUP_SQL,
  },
  {
    name: 'idempotency claim',
    file: 'src/coordination/idempotency-store.ts',
    constant: 'CLAIM_SQL',
    text: CLAIM_SQL,
  },
  {
    name: 'idempotency complete',
    file: 'src/coordination/idempotency-store.ts',
    constant: 'COMPLETE_SQL',
    text: COMPLETE_SQL,
  },
  {
    name: 'lock faculty weeks',
    file: 'src/schedule/faculty-week-locks.ts',
    constant: 'LOCK_SQL',
    text: LOCK_FACULTY_WEEKS_SQL,
  },
  {
    name: 'fence faculty weeks',
    file: 'src/schedule/faculty-week-locks.ts',
    constant: 'FENCE_SQL',
    text: FENCE_SQL,
  },
  {
    name: 'schedule facts',
    file: 'src/swaps/schedule-facts-reader.ts',
    constant: 'FACTS_SQL',
    text: FACTS_SQL,
  },
  {
    name: 'detect conflicts',
    file: 'src/conflicts/conflict-detector.ts',
    constant: 'DETECT_SQL',
    text: DETECT_SQL,
  },
];

// What MikroORM sends for the service's em.find(..., { lockMode: PESSIMISTIC_WRITE }).
export const LOCK_ASSIGNMENTS_SQL = `
select id, person_id, rotation, version from assignment
where id = any($1::uuid[]) order by id for update`;

export const LOCK_CALLS_SQL = `
select c.id, c.date::text as date, c.person_id, c.call_type, c.version
from call_assignment c
join unnest($1::uuid[], $2::date[]) as k(person_id, date) on c.person_id = k.person_id and c.date = k.date
order by c.id
for update of c`;

// The service's flush: the record insert, then one versioned update per table.
// MikroORM checks the versions with a select before each update; here the
// version is in the update's WHERE and the row count is checked instead.
export const INSERT_RECORD_SQL = `
insert into swap_record (id, source_faculty_id, source_week, target_faculty_id, target_week,
  swap_type, status, reason, requested_at, requested_by, executed_at, executed_by,
  rolled_back_at, rolled_back_by, rollback_reason, moves, warnings, fencing_token, version)
values ($1, $2, $3, $4, $5, $6, 'EXECUTED', $7, $8, $9, $8, $9, null, null, null, $10, $11, $12, 1)`;

export const MOVE_CALLS_SQL = `
update call_assignment c set person_id = m.person_id, version = c.version + 1
from unnest($1::uuid[], $2::uuid[], $3::int[]) as m(id, person_id, version)
where c.id = m.id and c.version = m.version`;

export const MOVE_ASSIGNMENTS_SQL = `
update assignment a set person_id = m.person_id, version = a.version + 1
from unnest($1::uuid[], $2::uuid[], $3::int[]) as m(id, person_id, version)
where a.id = m.id and a.version = m.version`;

// ConflictDetector.detect loads the alerts it created (never, on the bench schedule).
export const READ_ALERTS_SQL = `
select * from conflict_alert where id = any($1::uuid[]) order by week_start, id`;
