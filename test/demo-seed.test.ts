import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DemoSeedSummary,
  isDatabaseEmpty,
  seedDemoProgram,
} from '../src/dev/demo-seed-writer';
import { createOrm } from '../src/db/orm';
import { isBlockingAbsence, type AbsenceType } from '../src/schedule/absence-policy';
import { createTestDatabase, type TestDatabase } from './support/test-database';

const TODAY = '2026-11-27';

// Written out here rather than imported, so the test checks the seed against the
// program's rules as stated, not against whatever the code happens to say.
const CLINIC_LIMIT: Record<string, number> = {
  pd: 0,
  dept_chief: 1,
  apd: 2,
  oic: 2,
  core: 4,
  sports_med: 0,
  adjunct: 0,
};

interface Seeded {
  db: TestDatabase;
  orm: MikroORM;
  summary: DemoSeedSummary;
  elapsedMs: number;
}

async function seededDatabase(): Promise<Seeded> {
  const db = await createTestDatabase();
  const orm = await createOrm({ clientUrl: db.url, poolMax: 2 });
  const startedAt = performance.now();
  const summary = await seedDemoProgram(orm.em.fork(), { today: TODAY });
  return { db, orm, summary, elapsedMs: performance.now() - startedAt };
}

describe('seedDemoProgram', () => {
  let seeded: Seeded;
  const sql = <T>(query: string, params: unknown[] = []) =>
    seeded.orm.em.fork().execute<T[]>(query, params);

  beforeAll(async () => {
    seeded = await seededDatabase();
  });
  afterAll(async () => {
    await seeded?.orm.close();
    await seeded?.db.drop();
  });

  it('covers the academic year containing today in whole weeks, quickly', async () => {
    expect(seeded.summary).toMatchObject({
      faculty: 12,
      residents: 24,
      firstDay: '2026-06-29',
      lastDay: '2027-07-04',
      // 53 weeks of 7 days, two half-days each.
      blocks: 53 * 7 * 2,
    });
    expect(seeded.elapsedMs).toBeLessThan(5_000);
    const [span] = await sql<{ first: string; last: string; days: number; blocks: number }>(
      `select min(date)::text as first, max(date)::text as last,
              count(distinct date)::int as days, count(*)::int as blocks from block`,
    );
    expect(span).toEqual({ first: '2026-06-29', last: '2027-07-04', days: 371, blocks: 742 });
    const [rows] = await sql<{ assignments: number; calls: number; absences: number }>(
      `select (select count(*) from assignment)::int as assignments,
              (select count(*) from call_assignment)::int as calls,
              (select count(*) from absence)::int as absences`,
    );
    expect(rows).toEqual({
      assignments: seeded.summary.assignments,
      calls: seeded.summary.calls,
      absences: seeded.summary.absences,
    });
  });

  it('creates the faculty roles and resident classes of the program', async () => {
    const rows = await sql<{ kind: string; grp: string; n: number }>(
      `select kind, coalesce(faculty_role, 'pgy' || pgy_level) as grp, count(*)::int as n
         from person group by 1, 2 order by 1, 2`,
    );
    expect(rows).toEqual([
      { kind: 'faculty', grp: 'adjunct', n: 1 },
      { kind: 'faculty', grp: 'apd', n: 1 },
      { kind: 'faculty', grp: 'core', n: 6 },
      { kind: 'faculty', grp: 'dept_chief', n: 1 },
      { kind: 'faculty', grp: 'oic', n: 1 },
      { kind: 'faculty', grp: 'pd', n: 1 },
      { kind: 'faculty', grp: 'sports_med', n: 1 },
      { kind: 'resident', grp: 'pgy1', n: 8 },
      { kind: 'resident', grp: 'pgy2', n: 8 },
      { kind: 'resident', grp: 'pgy3', n: 8 },
    ]);
    const [names] = await sql<{ distinct_names: number }>(
      'select count(distinct name)::int as distinct_names from person',
    );
    expect(names?.distinct_names).toBe(36);
  });

  it('puts exactly one eligible faculty member on FMIT for all 14 blocks of every week', async () => {
    const weeks = await sql<{
      week: string;
      people: number;
      blocks: number;
      role: string;
      roles: number;
    }>(
      `select date_trunc('week', b.date)::date::text as week,
              count(distinct a.person_id)::int as people, count(*)::int as blocks,
              min(p.faculty_role) as role, count(distinct a.role)::int as roles
         from assignment a join block b on b.id = a.block_id join person p on p.id = a.person_id
        where a.rotation = 'FMIT' and p.kind = 'faculty' and a.role = 'primary'
        group by 1 order by 1`,
    );
    expect(weeks).toHaveLength(53);
    for (const w of weeks) {
      expect(w, w.week).toMatchObject({ people: 1, blocks: 14 });
      expect(['pd', 'apd', 'oic', 'dept_chief', 'core'], w.week).toContain(w.role);
    }
    const [other] = await sql<{ n: number }>(
      `select count(*)::int as n from assignment a join person p on p.id = a.person_id
        where a.rotation = 'FMIT' and (p.kind = 'faculty') and a.role <> 'primary'`,
    );
    expect(other?.n).toBe(0);
    // Every FMIT block also carries one PGY-1 and one senior resident.
    const teams = await sql<{ pgy1: number; seniors: number; n: number }>(
      `select pgy1, seniors, count(*)::int as n from (
         select a.block_id, count(*) filter (where p.pgy_level = 1)::int as pgy1,
                count(*) filter (where p.pgy_level >= 2)::int as seniors
           from assignment a join person p on p.id = a.person_id
          where a.rotation = 'FMIT' and p.kind = 'resident' group by a.block_id) t
        group by 1, 2`,
    );
    expect(teams).toEqual([{ pgy1: 1, seniors: 1, n: 742 }]);
  });

  it('never gives anyone FMIT in two consecutive weeks', async () => {
    const backToBack = await sql<{ person_id: string }>(
      `with fmit as (
         select distinct a.person_id, date_trunc('week', b.date)::date as week
           from assignment a join block b on b.id = a.block_id join person p on p.id = a.person_id
          where a.rotation = 'FMIT' and p.kind = 'faculty')
       select x.person_id from fmit x join fmit y
         on y.person_id = x.person_id and y.week = x.week + 7`,
    );
    expect(backToBack).toEqual([]);
  });

  it('meets the supervision ratio in every block', async () => {
    const shortfalls = await sql<{ date: string; half: string }>(
      `select b.date::text as date, b.half from block b
         left join assignment a on a.block_id = b.id
         left join person p on p.id = a.person_id
        group by b.id
       having count(distinct a.person_id) filter (
                where p.kind = 'faculty' and a.role in ('primary', 'supervising'))
            < ceil(count(*) filter (where p.pgy_level = 1) / 2.0
                 + count(*) filter (where p.pgy_level >= 2) / 4.0)`,
    );
    expect(shortfalls).toEqual([]);
    // The check above must have had residents to judge outside FMIT too.
    const [clinic] = await sql<{ residents: number; inpatient: number }>(
      `select count(*) filter (where a.rotation = 'clinic')::int as residents,
              count(*) filter (where a.rotation = 'inpatient')::int as inpatient
         from assignment a join person p on p.id = a.person_id where p.kind = 'resident'`,
    );
    expect(clinic?.residents).toBeGreaterThan(1000);
    expect(clinic?.inpatient).toBeGreaterThan(0);
  });

  it('keeps every faculty member within the weekly clinic limit of their role, off FMIT weeks', async () => {
    const weeks = await sql<{ role: string; week: string; clinic: number; fmit: number }>(
      `select p.faculty_role as role, date_trunc('week', b.date)::date::text as week,
              count(*) filter (where a.rotation = 'clinic')::int as clinic,
              count(*) filter (where a.rotation = 'FMIT')::int as fmit
         from assignment a join block b on b.id = a.block_id join person p on p.id = a.person_id
        where p.kind = 'faculty' group by p.id, 2`,
    );
    expect(weeks.some((w) => w.clinic > 0)).toBe(true);
    for (const w of weeks) {
      expect(w.clinic, `${w.role} in ${w.week}`).toBeLessThanOrEqual(CLINIC_LIMIT[w.role]!);
      if (w.fmit > 0) expect(w.clinic, `${w.role} on FMIT in ${w.week}`).toBe(0);
    }
    const weekend = await sql<{ n: number }>(
      `select count(*)::int as n from assignment a join block b on b.id = a.block_id
        where a.rotation <> 'FMIT' and extract(isodow from b.date) > 5`,
    );
    expect(weekend[0]?.n).toBe(0);
  });

  it('gives Friday and Saturday call to the FMIT faculty member and weeknights to core faculty off FMIT', async () => {
    const days = await sql<{
      date: string;
      dow: number;
      call_type: string;
      role: string;
      is_fmit: boolean;
      calls: number;
    }>(
      `with fmit as (
         select distinct a.person_id, date_trunc('week', b.date)::date as week
           from assignment a join block b on b.id = a.block_id join person p on p.id = a.person_id
          where a.rotation = 'FMIT' and p.kind = 'faculty')
       select c.date::text as date, extract(isodow from c.date)::int as dow, c.call_type,
              p.faculty_role as role,
              exists (select 1 from fmit f where f.person_id = c.person_id
                         and f.week = date_trunc('week', c.date)::date) as is_fmit,
              count(*) over (partition by c.date)::int as calls
         from call_assignment c join person p on p.id = c.person_id order by c.date`,
    );
    expect(days).toHaveLength(371);
    for (const d of days) {
      expect(d.calls, d.date).toBe(1);
      if (d.dow === 5 || d.dow === 6) {
        expect(d, d.date).toMatchObject({ call_type: 'weekend', is_fmit: true });
      } else {
        expect(d, d.date).toMatchObject({ call_type: 'overnight', is_fmit: false, role: 'core' });
      }
    }
  });

  it('records absences whose blocking flag follows the policy, with faculty away only from unscheduled weeks', async () => {
    const absences = await sql<{
      kind: string;
      type: AbsenceType;
      start: string;
      end: string;
      blocking: boolean;
    }>(
      `select p.kind, x.type, x.start_date::text as start, x.end_date::text as end, x.blocking
         from absence x join person p on p.id = x.person_id`,
    );
    expect(absences.length).toBeGreaterThanOrEqual(6);
    expect(absences.length).toBeLessThanOrEqual(10);
    expect(new Set(absences.map((a) => a.type)).size).toBeGreaterThanOrEqual(5);
    expect(absences.some((a) => a.blocking)).toBe(true);
    expect(absences.some((a) => !a.blocking)).toBe(true);
    for (const a of absences) {
      expect(a.blocking, `${a.type} ${a.start}..${a.end}`).toBe(
        isBlockingAbsence(a.type, a.start, a.end),
      );
    }
    const clashes = await sql<{ n: number }>(
      `select count(*)::int as n from absence x join person p on p.id = x.person_id
        where p.kind = 'faculty' and (
          exists (select 1 from assignment a join block b on b.id = a.block_id
                   where a.person_id = x.person_id
                     and b.date between date_trunc('week', x.start_date)::date
                                    and date_trunc('week', x.end_date)::date + 6)
          or exists (select 1 from call_assignment c
                   where c.person_id = x.person_id
                     and c.date between date_trunc('week', x.start_date)::date
                                    and date_trunc('week', x.end_date)::date + 6))`,
    );
    expect(clashes[0]?.n).toBe(0);
  });

  it('creates no faculty-week or swap rows', async () => {
    const [rows] = await sql<{ weeks: number; swaps: number }>(
      `select (select count(*) from faculty_week)::int as weeks,
              (select count(*) from swap_record)::int as swaps`,
    );
    expect(rows).toEqual({ weeks: 0, swaps: 0 });
  });

  it('refuses to seed a database that already holds data, and writes nothing', async () => {
    const em = seeded.orm.em.fork();
    expect(await isDatabaseEmpty(em)).toBe(false);
    await expect(seedDemoProgram(em, { today: TODAY })).rejects.toThrow(/already holds/);
    const [people] = await sql<{ n: number }>('select count(*)::int as n from person');
    expect(people?.n).toBe(36);
  });

  it('builds the same schedule shape in another database', async () => {
    const other = await seededDatabase();
    try {
      const shape = (orm: MikroORM) =>
        orm.em.fork().execute<Array<{ week: string; name: string }>>(
          `select distinct date_trunc('week', b.date)::date::text as week, p.name
             from assignment a join block b on b.id = a.block_id join person p on p.id = a.person_id
            where a.rotation = 'FMIT' order by 1, 2`,
        );
      expect(await shape(other.orm)).toEqual(await shape(seeded.orm));
      expect(other.summary).toEqual(seeded.summary);
    } finally {
      await other.orm.close();
      await other.db.drop();
    }
  });
});

describe('isDatabaseEmpty', () => {
  it('is true for a freshly migrated database', async () => {
    const db = await createTestDatabase();
    const orm = await createOrm({ clientUrl: db.url, poolMax: 1 });
    try {
      expect(await isDatabaseEmpty(orm.em.fork())).toBe(true);
    } finally {
      await orm.close();
      await db.drop();
    }
  });
});
