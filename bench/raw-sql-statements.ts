/**
 * The statements of the raw-SQL baseline, written for the bench: one per step
 * that the service's ExecuteSwap asks of PostgreSQL, in pg's `$n` style. None
 * comes from src/. Whether they still do the service's work is for the run's
 * checks to say: the statement census (the same steps in the same order), the
 * record comparison (the same swap record and stored answer) and the detection
 * probe (the same alerts).
 */

export const LOOKUP_ANSWER_SQL = `
select response from idempotency_record
where scope = $1 and request_id = $2 and response is not null and expires_at > now()`;

export const CLAIM_KEY_SQL = `
insert into idempotency_record (scope, request_id, fingerprint, expires_at)
values ($1, $2, $3, now() + make_interval(secs => $4::float8 / 1000))
on conflict do nothing`;

/** Also says how long the key has left, by the database's clock, for the replay cache. */
export const STORE_ANSWER_SQL = `
update idempotency_record set response = $3 where scope = $1 and request_id = $2
returning greatest(0, extract(epoch from expires_at - clock_timestamp()) * 1000)::float8 as ttl_ms`;

/**
 * The call's audit row, sealed onto the chain by the migration's audit_append.
 * The transaction's last statement: the chain's head stays locked until COMMIT.
 */
export const APPEND_AUDIT_SQL = `
select audit_append($1, null, $2, 'ExecuteSwap', $3, $4, 'OK', null, false, $5::uuid[], '{}'::uuid[], '')`;

export const SET_TIMEOUTS_SQL = `select set_config('lock_timeout', $1, true), set_config('statement_timeout', $1, true)`;

/** The (person, week) pairs of `$1` and `$2`, as a row source. */
const WEEKS_OF_PARAMS = `(select * from unnest($1::uuid[], $2::date[]))`;

export const LOCK_WEEKS_SQL = `
select id from faculty_week where (person_id, week_start) in ${WEEKS_OF_PARAMS}
order by id for update`;

/**
 * Writes token `$3` and grant `$4` on the weeks unless one holds a newer token,
 * or the same token from another grant; fewer rows than weeks means fenced out.
 */
export const FENCE_WEEKS_SQL = `
update faculty_week set fencing_token = $3, fencing_owner = $4
where (person_id, week_start) in ${WEEKS_OF_PARAMS}
  and (coalesce(fencing_token, 0) < $3::bigint or (fencing_token = $3::bigint and fencing_owner = $4))`;

/**
 * What the swap rules read, in one round trip: the two people, their work in
 * each swapped week and the week either side, every assignment in the blocks
 * that change hands, and the receivers' blocking absences. `$1`..`$3` are the
 * transfers (giver, receiver, week).
 */
export const READ_FACTS_SQL = `
with transfer as (
  select * from unnest($1::uuid[], $2::uuid[], $3::date[]) as t(giver, receiver, week)
), work as not materialized (
  select a.id, a.block_id as "blockId", b.date as "blockDate", b.half as "blockHalf",
         a.person_id as "personId", p.kind as "personKind", p.pgy_level as "pgyLevel", a.role, a.rotation
  from assignment a join block b on b.id = a.block_id join person p on p.id = a.person_id
)
select
  (select json_agg(json_build_object('id', p.id, 'kind', p.kind, 'role', p.faculty_role))
     from person p where p.id in (select giver from transfer)) as people,
  (select coalesce(json_agg(w), '[]') from work w where exists (
     select 1 from transfer t where w."personId" in (t.giver, t.receiver)
       and w."blockDate" between t.week - 7 and t.week + 13)) as nearby,
  (select coalesce(json_agg(w), '[]') from work w where w."blockId" in (
     select g."blockId" from work g join transfer t on g."personId" = t.giver
      and g."blockDate" between t.week and t.week + 6)) as rosters,
  (select coalesce(json_agg(ab), '[]') from absence ab where ab.blocking and exists (
     select 1 from transfer t where ab.person_id = t.receiver
       and ab.start_date <= t.week + 6 and ab.end_date >= t.week)) as absences`;

export const LOCK_ASSIGNMENTS_SQL = `
select id, person_id, version from assignment where id = any($1::uuid[]) order by id for update`;

export const LOCK_CALLS_SQL = `
select id, date::text as date, person_id, call_type, version from call_assignment
where (person_id, date) in ${WEEKS_OF_PARAMS} order by id for update`;

export const INSERT_RECORD_SQL = `
insert into swap_record (id, source_faculty_id, source_week, target_faculty_id, target_week,
  swap_type, status, reason, requested_at, requested_by, executed_at, executed_by, moves, warnings, fencing_token)
values ($1, $2, $3, $4, $5, 'ONE_TO_ONE', 'EXECUTED', $6, $7, $8, $7, $8, $9, '[]', $10)`;

/** Hands rows `$1` to people `$2` where they still have versions `$3`. */
export function moveRowsSql(table: 'assignment' | 'call_assignment'): string {
  return `
update ${table} r set person_id = m.person_id, version = r.version + 1
from unnest($1::uuid[], $2::uuid[], $3::int[]) as m(id, person_id, seen)
where r.id = m.id and r.version = m.seen`;
}

/**
 * Conflict detection over weeks `$1`..`$2` (first and last Monday), raising
 * each alert that is not open yet and returning those it raised. `$3`
 * back-to-back days, `$4` alternation window in days, `$5` most switches
 * allowed, `$6` the swap that caused the scan (or null), `$7` the faculty to
 * scan (null: all). Work is read from before the window's start (alternation)
 * to past its end (back to back); alerts are raised inside it only.
 */
export const DETECT_SQL = `
with setting as (
  select $1::date as first_week, $2::date as last_week, $3::int as gap_days,
         $4::int as span_days, $5::int as most_switches, $7::uuid[] as faculty
), week_work as (
  select a.person_id, date_trunc('week', b.date)::date as week, bool_or(a.rotation = 'FMIT') as fmit
  from setting s, assignment a
  join block b on b.id = a.block_id
  join person p on p.id = a.person_id
  where p.kind = 'faculty' and (s.faculty is null or a.person_id = any(s.faculty))
    and b.date between s.first_week - s.span_days and s.last_week + 6 + s.gap_days
  group by 1, 2
), overlap as (
  select distinct on (w.person_id, w.week) 'LEAVE_FMIT_OVERLAP' as type, 'CRITICAL' as severity,
         w.person_id, w.week, ab.id as absence_id,
         format('FMIT week %s overlaps a blocking %s absence (%s to %s)', w.week, ab.type, ab.start_date, ab.end_date) as description
  from week_work w join absence ab on ab.person_id = w.person_id
  where w.fmit and ab.blocking and ab.start_date <= w.week + 6 and ab.end_date >= w.week
  order by w.person_id, w.week, ab.start_date, ab.id
), too_close as (
  select 'BACK_TO_BACK', 'WARNING', w2.person_id, w2.week, null::uuid,
         format('FMIT weeks %s and %s are %s days apart (less than %s)', w1.week, w2.week, w2.week - w1.week, s.gap_days)
  from setting s, week_work w1 join week_work w2 on w2.person_id = w1.person_id and w2.week > w1.week
  where w1.fmit and w2.fmit and w2.week - w1.week < s.gap_days
), flip as (
  select person_id, week, coalesce(fmit <> lag(fmit) over (partition by person_id order by week), false)::int as flipped
  from week_work
), flip_sum as (
  select person_id, week, sum(flipped) over (partition by person_id order by week
           range between make_interval(days => $4::int - 7) preceding and current row) as flips
  from flip
), alternating as (
  select 'EXCESSIVE_ALTERNATING', 'INFO', f.person_id, f.week, null::uuid,
         format('%s switches between FMIT and other services in the %s weeks up to %s', f.flips, s.span_days / 7, f.week)
  from setting s, (select *, lag(flips) over (partition by person_id order by week) as flips_before from flip_sum) f
  where f.flips > s.most_switches and coalesce(f.flips_before, 0) <= s.most_switches
), stray_call as (
  select distinct on (w.person_id, w.week) 'CALL_CASCADE', 'WARNING', w.person_id, w.week, null::uuid,
         format('the %s call on %s is held by someone other than the FMIT faculty member', c.call_type, c.date)
  from week_work w join call_assignment c on c.date in (w.week + 4, w.week + 5)
  where w.fmit and not exists (
    select 1 from assignment a join block b on b.id = a.block_id
    where a.person_id = c.person_id and a.rotation = 'FMIT' and b.date between w.week and w.week + 6)
  order by w.person_id, w.week, c.date
)
insert into conflict_alert (id, faculty_id, type, severity, week_start, absence_id, swap_id, status, description, created_at)
select gen_random_uuid(), r.person_id, r.type, r.severity, r.week, r.absence_id, $6::uuid, 'NEW', r.description, now()
from setting s, (
  select * from overlap union all select * from too_close
  union all select * from alternating union all select * from stray_call) r
where r.week between s.first_week and s.last_week
on conflict (type, faculty_id, week_start) where status in ('NEW', 'ACKNOWLEDGED', 'IGNORED') do nothing
returning type, severity, faculty_id, week_start::text as week, absence_id, description`;
