/**
 * The floor's SQL, written for the bench (none of it comes from src/): the
 * fewest statements that do a swap's work, each sent as a named prepared
 * statement, so PostgreSQL parses and plans it once per connection. Whether
 * they still do the service's work is for the run's checks to say: the final
 * schedule, the records (the same swap record and stored answer) and the
 * detection probe (the same alerts).
 */

/**
 * Claims idempotency key `$1`/`$2`, locks the faculty weeks `$5`/`$6` in id
 * order, and fences the written ones (`$7`/`$8`) with token `$9` of grant
 * `$10`, unless another grant holds a newer token or the same one. Counts say
 * whether each part did all it should.
 */
export const CLAIM_LOCK_FENCE = {
  name: 'floor_claim_lock_fence',
  text: `
with claim as (
  insert into idempotency_record (scope, request_id, fingerprint, expires_at)
  values ($1, $2, $3, now() + make_interval(secs => $4::float8 / 1000))
  on conflict do nothing
  returning 1
), locked as (
  select fw.id, fw.person_id, fw.week_start, fw.fencing_token, fw.fencing_owner
  from faculty_week fw join unnest($5::uuid[], $6::date[]) k(person_id, week_start) using (person_id, week_start)
  order by fw.id for update of fw
), fenced as (
  update faculty_week fw set fencing_token = $9, fencing_owner = $10
  from locked l join unnest($7::uuid[], $8::date[]) w(person_id, week_start) using (person_id, week_start)
  where fw.id = l.id
    and (coalesce(l.fencing_token, 0) < $9::bigint or (l.fencing_token = $9::bigint and l.fencing_owner = $10))
  returning 1
)
select (select count(*) from claim)::int as claimed, (select count(*) from locked)::int as locked,
       (select count(*) from fenced)::int as fenced`,
};

/**
 * What judgeSwap reads, and the versions of what moves, after the weeks are
 * locked: people `$1`; transfers' givers `$2` and weeks `$3`. Assignments are
 * read within dates (each week and a week either side), never a person's
 * whole history.
 */
export const READ_FACTS = {
  name: 'floor_read_facts',
  text: `
with t as (
  select * from unnest($2::uuid[], $3::date[]) as t(giver, week)
), work as not materialized (
  select a.id, a.block_id as "blockId", b.date as "blockDate", b.half as "blockHalf", a.person_id as "personId",
         p.kind as "personKind", p.pgy_level as "pgyLevel", a.role, a.rotation, a.version
  from block b join assignment a on a.block_id = b.id join person p on p.id = a.person_id
), moving as (
  select a.block_id from t join block b on b.date between t.week and t.week + 6
  join assignment a on a.block_id = b.id and a.person_id = t.giver
)
select
  (select json_agg(json_build_object('id', id, 'kind', kind, 'facultyRole', faculty_role, 'pgyLevel', pgy_level))
     from person where id = any($1::uuid[])) as people,
  (select coalesce(json_agg(w), '[]') from work w where w."personId" = any($1::uuid[])
     and w."blockDate" between (select min(week) - 7 from t) and (select max(week) + 13 from t)
     and exists (select 1 from t where w."blockDate" between t.week - 7 and t.week + 13)) as faculty,
  (select coalesce(json_agg(w), '[]') from work w where w."blockId" in (select block_id from moving)) as rosters,
  (select coalesce(json_agg(json_build_object('personId', person_id, 'startDate', start_date,
      'endDate', end_date, 'type', type)), '[]') from absence
     where blocking and person_id = any($1::uuid[])
       and exists (select 1 from t where start_date <= t.week + 13 and end_date >= t.week - 7)) as absences,
  (select coalesce(json_agg(json_build_object('id', c.id, 'date', c.date, 'personId', c.person_id,
      'callType', c.call_type, 'version', c.version) order by c.id), '[]')
     from t join call_assignment c on c.person_id = t.giver and c.date in (t.week + 4, t.week + 5)) as calls`,
};

/**
 * Inserts record `$3`..`$14`, moves assignments `$15`..`$17` and calls
 * `$18`..`$20` (ids, new holders, versions seen) where they still have the
 * version seen, and stores answer `$21` under key `$1`/`$2`, saying how long
 * the key has left by the database's clock.
 */
export const WRITE_SWAP = {
  name: 'floor_write_swap',
  text: `
with record as (
  insert into swap_record (id, source_faculty_id, source_week, target_faculty_id, target_week, swap_type, status,
    reason, requested_at, requested_by, executed_at, executed_by, moves, warnings, fencing_token)
  values ($3, $4, $5, $6, $7, $8, 'EXECUTED', $9, $10, $11, $10, $11, $12, $13, $14)
  returning 1
), moved as (
  update assignment r set person_id = m.person_id, version = r.version + 1
  from unnest($15::uuid[], $16::uuid[], $17::int[]) as m(id, person_id, seen)
  where r.id = m.id and r.version = m.seen
  returning 1
), called as (
  update call_assignment r set person_id = m.person_id, version = r.version + 1
  from unnest($18::uuid[], $19::uuid[], $20::int[]) as m(id, person_id, seen)
  where r.id = m.id and r.version = m.seen
  returning 1
), answer as (
  update idempotency_record set response = $21 where scope = $1 and request_id = $2
  returning greatest(0, extract(epoch from expires_at - clock_timestamp()) * 1000)::float8 as ttl_ms
)
select (select count(*) from record)::int as recorded, (select count(*) from moved)::int as moved,
       (select count(*) from called)::int as called, (select ttl_ms from answer) as ttl_ms`,
};

/**
 * Conflict detection over weeks `$1`..`$2` (first and last Monday): `$3`
 * back-to-back days, `$4` alternation window in days, `$5` most switches
 * allowed, `$6` the swap that caused the scan (or null), `$7` the faculty to
 * scan (null: all). Work is read from before the window's start (alternation)
 * to past its end (back to back); alerts are raised inside it only, each that
 * is not open yet. Ends in the CTE `raised`, one row per alert raised.
 */
const DETECT_CTES = `
with setting as (
  select $1::date as first_week, $2::date as last_week, $3::int as gap_days,
         $4::int as span_days, $5::int as most_switches, $7::uuid[] as faculty
), week_work as (
  select a.person_id, date_trunc('week', b.date)::date as week, bool_or(a.rotation = 'FMIT') as fmit
  from setting s, block b join assignment a on a.block_id = b.id join person p on p.id = a.person_id
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
), fmit_holder as (
  select distinct a.person_id, date_trunc('week', b.date)::date as week
  from setting s, block b join assignment a on a.block_id = b.id
  where a.rotation = 'FMIT' and b.date between s.first_week and s.last_week + 6
), stray_call as (
  select distinct on (w.person_id, w.week) 'CALL_CASCADE', 'WARNING', w.person_id, w.week, null::uuid,
         format('the %s call on %s is held by someone other than the FMIT faculty member', c.call_type, c.date)
  from week_work w join call_assignment c on c.date in (w.week + 4, w.week + 5)
  left join fmit_holder h on h.person_id = c.person_id and h.week = w.week
  where w.fmit and h.person_id is null
  order by w.person_id, w.week, c.date
), raised as (
  insert into conflict_alert (id, faculty_id, type, severity, week_start, absence_id, swap_id, status, description, created_at)
  select gen_random_uuid(), r.person_id, r.type, r.severity, r.week, r.absence_id, $6::uuid, 'NEW', r.description, now()
  from setting s, (
    select * from overlap union all select * from too_close
    union all select * from alternating union all select * from stray_call) r
  where r.week between s.first_week and s.last_week
  on conflict (type, faculty_id, week_start) where status in ('NEW', 'ACKNOWLEDGED', 'IGNORED') do nothing
  returning type, severity, faculty_id, week_start::text as week, absence_id, description
)`;

/** Detection alone (the probe's): the alerts it raised. */
export const DETECT = {
  name: 'floor_detect',
  text: `${DETECT_CTES} select * from raised`,
};

/**
 * Detection for swap `$6`, then its audit row (`$8`..`$10`: actor, request
 * id, fingerprint), sealed onto the chain by the migration's
 * audit_append: the transaction's last statement, so the chain's head stays
 * locked for the COMMIT alone.
 */
export const DETECT_AND_AUDIT = {
  name: 'floor_detect_audit',
  text: `${DETECT_CTES}
select (select count(*) from raised)::int as raised,
       audit_append($8, null, 'bench', 'ExecuteSwap', $9, $10, 'OK', null, false, array[$6::uuid], '{}'::uuid[], '') as audited`,
};
