import type { TransactionRunner } from '../db/transaction-runner';
import { addDays, mondayOf } from '../domain/calendar';
import type { CallContext } from '../domain/call-context';
import type { ProgramClock } from '../domain/clock';
import { InvalidArgumentError, NotFoundError } from '../domain/errors';
import { FMIT_ROTATION } from './assignment.entity';

/** A faculty member and their next FMIT weeks. */
export interface FacultySummary {
  id: string;
  name: string;
  role: string;
  /** Mondays (ISO dates) of FMIT weeks at or after the week asked for, at most {@link FMIT_WEEKS_LISTED}. */
  fmitWeeks: string[];
}

/** One day of one person's schedule; empty strings where nothing is held. */
export interface ScheduleDay {
  date: string;
  am: string;
  pm: string;
  call: string;
  absence: string;
  absenceBlocking: boolean;
}

export interface ScheduleWeek {
  /** The Monday. */
  week: string;
  days: ScheduleDay[];
}

export const FMIT_WEEKS_LISTED = 4;
export const MAX_SCHEDULE_WEEKS = 26;
const DEFAULT_SCHEDULE_WEEKS = 4;

/**
 * Read-only views of the schedule (ListFaculty, GetFacultySchedule): who the
 * faculty are and what one of them holds week by week, so a person or a tool
 * can choose a swap through the API instead of the database.
 */
export class ScheduleQueries {
  constructor(
    private readonly transactions: TransactionRunner,
    private readonly clock: ProgramClock,
  ) {}

  /** Every faculty member by name, with their FMIT weeks from `weekFrom` (default: this week). */
  async listFaculty(weekFrom: string | undefined, call: CallContext): Promise<FacultySummary[]> {
    const from = weekFrom ?? this.currentWeek();
    return this.transactions.transactionally(
      call.budget,
      async (em) => {
        const people = await em.execute<Array<{ id: string; name: string; role: string }>>(
          `select id, name, faculty_role as role from person where kind = 'faculty' order by name, id`,
        );
        const weeks = await em.execute<Array<{ person: string; week: string }>>(
          `select a.person_id as person, (b.date - (extract(isodow from b.date)::int - 1))::text as week
             from assignment a join block b on b.id = a.block_id
            where a.rotation = ? and b.date >= ?
            group by 1, 2 order by 2`,
          [FMIT_ROTATION, from],
        );
        const byPerson = new Map<string, string[]>();
        for (const { person, week } of weeks) {
          const list = byPerson.get(person) ?? [];
          if (list.length < FMIT_WEEKS_LISTED) list.push(week);
          byPerson.set(person, list);
        }
        return people.map((p) => ({ ...p, fmitWeeks: byPerson.get(p.id) ?? [] }));
      },
      { readOnly: true },
    );
  }

  /** One faculty member's schedule for `weeks` weeks from `weekFrom` (default: this week). */
  async facultySchedule(
    facultyId: string,
    weekFrom: string | undefined,
    weeks: number,
    call: CallContext,
  ): Promise<{ faculty: FacultySummary; weeks: ScheduleWeek[] }> {
    const count = weeks === 0 ? DEFAULT_SCHEDULE_WEEKS : weeks;
    if (!Number.isInteger(count) || count < 1 || count > MAX_SCHEDULE_WEEKS) {
      throw new InvalidArgumentError(
        'weeks',
        `must be between 1 and ${MAX_SCHEDULE_WEEKS}, got ${weeks}`,
        'INVALID_RANGE',
      );
    }
    const first = weekFrom ?? this.currentWeek();
    const last = addDays(first, count * 7 - 1);
    return this.transactions.transactionally(
      call.budget,
      async (em) => {
        const [person] = await em.execute<Array<{ id: string; name: string; role: string }>>(
          `select id, name, faculty_role as role from person where id = ? and kind = 'faculty'`,
          [facultyId],
        );
        if (!person) {
          throw new NotFoundError('FACULTY_NOT_FOUND', `no faculty member with id ${facultyId}`, {
            faculty_id: facultyId,
          });
        }
        const blocks = await em.execute<Array<{ date: string; half: string; rotation: string }>>(
          `select b.date::text as date, b.half, a.rotation
             from assignment a join block b on b.id = a.block_id
            where a.person_id = ? and b.date between ? and ?`,
          [facultyId, first, last],
        );
        const calls = await em.execute<Array<{ date: string; callType: string }>>(
          `select date::text as date, call_type as "callType" from call_assignment
            where person_id = ? and date between ? and ? order by date, call_type`,
          [facultyId, first, last],
        );
        const absences = await em.execute<
          Array<{ startDate: string; endDate: string; type: string; blocking: boolean }>
        >(
          `select start_date::text as "startDate", end_date::text as "endDate", type, blocking
             from absence where person_id = ? and start_date <= ? and end_date >= ?
            order by start_date`,
          [facultyId, last, first],
        );
        const days = new Map<string, ScheduleDay>();
        const result: ScheduleWeek[] = [];
        for (let w = 0; w < count; w++) {
          const monday = addDays(first, w * 7);
          const week: ScheduleWeek = { week: monday, days: [] };
          for (let d = 0; d < 7; d++) {
            const date = addDays(monday, d);
            const day = { date, am: '', pm: '', call: '', absence: '', absenceBlocking: false };
            days.set(date, day);
            week.days.push(day);
          }
          result.push(week);
        }
        for (const b of blocks) {
          const day = days.get(b.date);
          if (day && b.half === 'AM') day.am = b.rotation;
          if (day && b.half === 'PM') day.pm = b.rotation;
        }
        for (const c of calls) {
          const day = days.get(c.date);
          if (day) day.call = day.call ? `${day.call},${c.callType}` : c.callType;
        }
        for (const a of absences) {
          for (const day of days.values()) {
            if (day.date >= a.startDate && day.date <= a.endDate) {
              day.absence = a.type;
              day.absenceBlocking = a.blocking;
            }
          }
        }
        const fmitWeeks = result
          .filter((w) => w.days.some((d) => d.am === FMIT_ROTATION || d.pm === FMIT_ROTATION))
          .map((w) => w.week)
          .slice(0, FMIT_WEEKS_LISTED);
        return { faculty: { ...person, fmitWeeks }, weeks: result };
      },
      { readOnly: true },
    );
  }

  /** The week of the program's today (PROGRAM_TIME_ZONE), as for the swap rules. */
  private currentWeek(): string {
    return mondayOf(this.clock.today());
  }
}
