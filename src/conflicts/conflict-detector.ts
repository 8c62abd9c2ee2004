import type { EntityManager } from '@mikro-orm/postgresql';
import { preparedStatement, runPrepared } from '../db/prepared-statement';
import { addDays } from '../domain/calendar';
import type { ScheduleChange } from '../write-path/write-hooks';
import { ConflictAlert } from './conflict-alert.entity';

export interface DetectionSettings {
  /** FMIT weeks of one person closer than this (Monday to Monday) are back to back. */
  backToBackDays: number;
  /** More switches than this between FMIT and other work, within the window, is excessive. */
  maxAlternations: number;
  alternationWindowWeeks: number;
}

// Every rule is one branch of the candidates query; the insert skips those
// already open (or ignored), so detection can run any number of times.
// Parameters: $1 first week, $2 last week, $3 back-to-back days, $4 alternation
// window (days), $5 max alternations, $6 causing swap id, $7 faculty filter
// (null: all).
const DETECT = preparedStatement<{ id: string }>(
  'conflicts.detect',
  `
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
), fmit_holders as (
  -- Everyone holding FMIT in the weeks alerts are raised for, not only the
  -- faculty this scan is limited to.
  select distinct a.person_id, date_trunc('week', b.date)::date as week
  from assignment a
  join block b on b.id = a.block_id
  cross join params
  where a.rotation = 'FMIT' and b.date between params.first_week and params.last_week + 6
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
  -- An anti-join against the window's FMIT holders: a correlated NOT EXISTS
  -- walked the call holder's whole FMIT history for every call.
  select distinct on (f.person_id, f.week)
         'CALL_CASCADE'::text, 'WARNING'::text, f.person_id, f.week, null::uuid,
         format('the %s call on %s is held by someone other than the FMIT faculty member', c.call_type, c.date)
  from fmit_weeks f
  cross join params
  join call_assignment c on c.date in (f.week + 4, f.week + 5)
  left join fmit_holders h on h.person_id = c.person_id and h.week = f.week
  where h.person_id is null and f.week between params.first_week and params.last_week
  order by f.person_id, f.week, c.date, c.id
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
where c.week between $1::date and $2::date
on conflict (type, faculty_id, week_start) where status in ('NEW', 'ACKNOWLEDGED', 'IGNORED') do nothing
returning id`,
);

/**
 * Scans the schedule for conflicts and raises the alerts that are not already
 * open. It runs inside the caller's transaction: for DetectConflicts, and, as
 * the schedule-change hook, inside every swap and rollback for the weeks they
 * touched.
 */
export class ConflictDetector {
  constructor(private readonly settings: DetectionSettings) {}

  /**
   * Raises alerts for conflicts in weeks `firstWeek`..`lastWeek`, of the given
   * faculty only (all when omitted); returns the alerts created.
   */
  async detect(
    em: EntityManager,
    firstWeek: string,
    lastWeek: string,
    scope: { causedBySwap?: string; faculty?: readonly string[] } = {},
  ): Promise<ConflictAlert[]> {
    const created = await runPrepared(em, DETECT, [
      firstWeek,
      lastWeek,
      this.settings.backToBackDays,
      this.settings.alternationWindowWeeks * 7,
      this.settings.maxAlternations,
      scope.causedBySwap ?? null,
      scope.faculty ?? null,
    ]);
    if (created.length === 0) return [];
    return em.find(
      ConflictAlert,
      { id: { $in: created.map((c) => c.id) } },
      { orderBy: { weekStart: 'asc', id: 'asc' } },
    );
  }

  /**
   * The schedule-change hook: detection for the weeks a swap touched and their
   * neighbours (back-to-back FMIT spans two weeks), for the faculty involved.
   */
  async afterScheduleChange(em: EntityManager, change: ScheduleChange): Promise<void> {
    const weeks = [...change.weeks].sort();
    await this.detect(em, addDays(weeks[0]!, -7), addDays(weeks[weeks.length - 1]!, 7), {
      causedBySwap: change.swapId,
      faculty: change.facultyIds,
    });
  }
}
