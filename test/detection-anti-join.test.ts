import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ConflictDetector, type DetectionSettings } from '../src/conflicts/conflict-detector';
import { createOrm } from '../src/db/orm';
import { addDays } from '../src/domain/calendar';
import { connect, truncateAll } from './support/sql-fixtures';
import { createTestDatabase, type TestDatabase } from './support/test-database';

/**
 * The detection statement as it was before CALL_CASCADE became an anti-join:
 * its NOT EXISTS walks the call holder's whole FMIT history. It is the oracle
 * the service's statement must agree with, alert for alert, on every rule.
 * Parameters: first week, last week, back-to-back days, alternation window
 * (days), max alternations, faculty filter (null: all).
 */
const ORACLE_SQL = `
with params as (
  select $1::date as first_week, $2::date as last_week, $3::int as b2b_days,
         $4::int as window_days, $5::int as max_alternations, null::uuid as swap_id,
         $6::uuid[] as faculty
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
select c.type, c.severity, c.person_id as "facultyId", c.week::text as week, c.absence_id as "absenceId", c.description
from candidates c
where c.week between $1::date and $2::date`;

/** A Monday; every generated date is a day offset from it. */
const BASE = '2031-01-06';
const DAYS = 10 * 7;
const PEOPLE = 5;
/** Person 4 is a resident: an FMIT holder for CALL_CASCADE, never scanned for alerts. */
const RESIDENT = 4;

const WEEKS = DAYS / 7;
/**
 * Per person, week after week: FMIT all week (F), only Monday to Wednesday (E)
 * or Thursday to Sunday (L), other work (C), or nothing (_). Part weeks put FMIT
 * on either side of a scan's edge when the scan starts or ends mid-week.
 */
const WEEK_DAYS: Record<string, number[]> = {
  F: [0, 1, 2, 3, 4, 5, 6],
  E: [0, 1, 2],
  L: [3, 4, 5, 6],
  C: [0, 1, 2, 3, 4, 5, 6],
  _: [],
};
const rotations = fc.array(
  fc.array(fc.constantFrom('F', 'F', 'E', 'L', 'C', '_'), { minLength: WEEKS, maxLength: WEEKS }),
  { minLength: PEOPLE, maxLength: PEOPLE },
);
/** Single half-days laid over the weeks, so a week's edges and mixed weeks are tried too. */
const halfDays = fc.array(
  fc.record({
    person: fc.nat(PEOPLE - 1),
    day: fc.nat(DAYS - 1),
    rotation: fc.constantFrom('FMIT', 'clinic'),
  }),
  { maxLength: 8 },
);
/**
 * Thursday to Sunday of every week, each with a call or none. One call a day:
 * the rule names the first call it finds, and two on one day leave the choice
 * between them to the plan.
 */
const CALL_DAYS = [3, 4, 5, 6];
const calls = fc.array(
  fc.option(
    fc.record({
      person: fc.nat(PEOPLE - 1),
      type: fc.constantFrom('overnight', 'weekend', 'backup'),
    }),
    { freq: 2 },
  ),
  { minLength: WEEKS * CALL_DAYS.length, maxLength: WEEKS * CALL_DAYS.length },
);
const absences = fc.array(
  fc.record({
    person: fc.nat(PEOPLE - 1),
    start: fc.nat(DAYS - 1),
    length: fc.nat(9),
    blocking: fc.boolean(),
  }),
  { maxLength: 4 },
);
const scans = fc.record({
  // Any day, not only Mondays: the windows' edges then fall mid-week.
  firstDay: fc.nat(DAYS - 1),
  weeks: fc.nat(8),
  faculty: fc.option(fc.uniqueArray(fc.nat(PEOPLE - 1), { minLength: 1, maxLength: 3 })),
  settings: fc.record({
    backToBackDays: fc.integer({ min: 7, max: 22 }),
    maxAlternations: fc.integer({ min: 0, max: 3 }),
    alternationWindowWeeks: fc.integer({ min: 1, max: 6 }),
  }),
});

let db: TestDatabase;
let orm: MikroORM;
let client: pg.Client;
beforeAll(async () => {
  db = await createTestDatabase();
  orm = await createOrm({ clientUrl: db.url, poolMax: 2 });
  client = await connect(db.url);
});
afterAll(async () => {
  await client?.end();
  await orm?.close();
  await db?.drop();
});

/** Writes one generated schedule, in place of whatever the last run left. */
interface Schedule {
  rotations: ReadonlyArray<readonly string[]>;
  halfDays: ReadonlyArray<{ person: number; day: number; rotation: string }>;
  calls: ReadonlyArray<{ person: number; type: string } | null>;
  absences: ReadonlyArray<{ person: number; start: number; length: number; blocking: boolean }>;
}

/** Writes one generated schedule, in place of whatever the last run left. */
async function plant(people: readonly string[], schedule: Schedule): Promise<void> {
  await truncateAll(client);
  await client.query(
    `insert into person (id, name, kind, faculty_role, pgy_level)
     select id, 'P' || n, case when n = $2 then 'resident' else 'faculty' end,
            case when n = $2 then null else 'core' end, case when n = $2 then 2 end
     from unnest($1::uuid[]) with ordinality as t(id, n)`,
    [people, RESIDENT + 1],
  );
  await client.query(
    `insert into block (id, date, half)
     select gen_random_uuid(), $1::date + d, half from generate_series(0, $2 - 1) d, unnest(array['AM', 'PM']) half`,
    [BASE, DAYS],
  );
  // A half-day replaces the week's rotation in its block.
  const held = new Map<string, { person: string; day: number; half: string; rotation: string }>();
  for (const [p, weeks] of schedule.rotations.entries())
    for (const [w, kind] of weeks.entries())
      for (const day of WEEK_DAYS[kind]!.map((d) => w * 7 + d))
        for (const half of ['AM', 'PM'])
          held.set(`${p}/${day}/${half}`, {
            person: people[p]!,
            day,
            half,
            rotation: kind === 'C' ? 'clinic' : 'FMIT',
          });
  for (const h of schedule.halfDays)
    held.set(`${h.person}/${h.day}/PM`, { ...h, person: people[h.person]!, half: 'PM' });
  const rows = [...held.values()];
  await client.query(
    `insert into assignment (id, block_id, person_id, role, rotation)
     select gen_random_uuid(), b.id, t.person, 'primary', t.rotation
     from unnest($2::uuid[], $3::int[], $4::text[], $5::text[]) as t(person, day, half, rotation)
     join block b on b.date = $1::date + t.day and b.half = t.half`,
    [
      BASE,
      rows.map((r) => r.person),
      rows.map((r) => r.day),
      rows.map((r) => r.half),
      rows.map((r) => r.rotation),
    ],
  );
  const calls = schedule.calls.flatMap((c, i) =>
    c
      ? [{ ...c, day: Math.floor(i / CALL_DAYS.length) * 7 + CALL_DAYS[i % CALL_DAYS.length]! }]
      : [],
  );
  await client.query(
    `insert into call_assignment (id, date, person_id, call_type)
     select gen_random_uuid(), $1::date + t.day, t.person, t.type
     from unnest($2::int[], $3::uuid[], $4::text[]) as t(day, person, type)`,
    [BASE, calls.map((c) => c.day), calls.map((c) => people[c.person]), calls.map((c) => c.type)],
  );
  await client.query(
    `insert into absence (id, person_id, start_date, end_date, type, blocking)
     select gen_random_uuid(), t.person, $1::date + t.start, $1::date + t.start + t.length,
            case when t.blocking then 'tdy' else 'conference' end, t.blocking
     from unnest($2::uuid[], $3::int[], $4::int[], $5::bool[]) as t(person, start, length, blocking)`,
    [
      BASE,
      schedule.absences.map((a) => people[a.person]),
      schedule.absences.map((a) => a.start),
      schedule.absences.map((a) => a.length),
      schedule.absences.map((a) => a.blocking),
    ],
  );
}

type Alert = {
  type: string;
  severity: string;
  facultyId: string;
  week: string;
  absenceId: string | null;
  description: string;
};
const keyOf = (a: Alert) => [a.type, a.facultyId, a.week].join(' | ');
const shape = (a: Alert) =>
  [a.type, a.severity, a.facultyId, a.week, a.absenceId ?? '-', a.description].join(' | ');

it('raises exactly the alerts of the NOT EXISTS rule on generated schedules', async () => {
  const people = Array.from({ length: PEOPLE }, () => randomUUID());
  const raised = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(rotations, halfDays, calls, absences, scans, async (r, h, c, ab, scan) => {
      await plant(people, { rotations: r, halfDays: h, calls: c, absences: ab });
      const firstWeek = addDays(BASE, scan.firstDay);
      const lastWeek = addDays(firstWeek, 7 * scan.weeks);
      const faculty = scan.faculty?.map((i) => people[i]!);
      const settings: DetectionSettings = scan.settings;

      const oracle = await client.query<Alert>(ORACLE_SQL, [
        firstWeek,
        lastWeek,
        settings.backToBackDays,
        settings.alternationWindowWeeks * 7,
        settings.maxAlternations,
        faculty ?? null,
      ]);
      const created = await orm.em
        .fork()
        .transactional((em) =>
          new ConflictDetector(settings).detect(em, firstWeek, lastWeek, faculty && { faculty }),
        );
      const service = created.map((alert) => ({ ...alert, week: alert.weekStart }));

      // The insert keeps one candidate per (rule, person, week); where a rule has
      // several (BACK_TO_BACK names each earlier week), which one is the plan's choice.
      const candidates = new Map<string, string[]>();
      for (const alert of oracle.rows)
        candidates.set(keyOf(alert), [...(candidates.get(keyOf(alert)) ?? []), shape(alert)]);
      expect(service.map(keyOf).sort()).toEqual([...candidates.keys()].sort());
      for (const alert of service) expect(candidates.get(keyOf(alert))).toContain(shape(alert));
      for (const alert of oracle.rows) raised.set(alert.type, (raised.get(alert.type) ?? 0) + 1);
    }),
    { numRuns: 80 },
  );
  // The schedules were rich enough to raise every rule's alert, CALL_CASCADE above all.
  expect([...raised.keys()].sort()).toEqual([
    'BACK_TO_BACK',
    'CALL_CASCADE',
    'EXCESSIVE_ALTERNATING',
    'LEAVE_FMIT_OVERLAP',
  ]);
});
