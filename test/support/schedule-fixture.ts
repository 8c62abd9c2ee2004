import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { addDays } from '../../src/domain/calendar';
import { isBlockingAbsence, type AbsenceType } from '../../src/schedule/absence-policy';
import type { FacultyRole } from '../../src/schedule/person.entity';

export interface AssignOptions {
  rotation?: string;
  role?: 'primary' | 'supervising' | 'backup';
  /** Days of the week (0 = Monday) to assign; default all seven. */
  days?: number[];
  halves?: ('AM' | 'PM')[];
}

/**
 * Builds small schedules straight into a test database with plain SQL, so a
 * test states exactly the rows it needs. Blocks are created on demand.
 */
export class ScheduleFixture {
  private constructor(readonly db: pg.Pool) {}

  static async connect(url: string): Promise<ScheduleFixture> {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    // An idle client can be ended under the pool (a database dropped WITH
    // (FORCE) while the pool is still closing it); pg-pool then emits 'error',
    // which would otherwise be an uncaught exception. The pool discards it.
    pool.on('error', () => undefined);
    await pool.query('select 1');
    return new ScheduleFixture(pool);
  }

  async close(): Promise<void> {
    await this.db.end();
  }

  async faculty(
    role: FacultyRole = 'core',
    name = `Dr ${role} ${randomUUID().slice(0, 4)}`,
  ): Promise<string> {
    const id = randomUUID();
    await this.db.query(
      `insert into person (id, name, kind, faculty_role) values ($1, $2, 'faculty', $3)`,
      [id, name, role],
    );
    return id;
  }

  async resident(pgyLevel: 1 | 2 | 3): Promise<string> {
    const id = randomUUID();
    await this.db.query(
      `insert into person (id, name, kind, pgy_level) values ($1, $2, 'resident', $3)`,
      [id, `Resident ${id.slice(0, 4)}`, pgyLevel],
    );
    return id;
  }

  /** The block for a date and half, created if missing. */
  async block(date: string, half: 'AM' | 'PM'): Promise<string> {
    const { rows } = await this.db.query<{ id: string }>(
      `insert into block (id, date, half) values ($1, $2, $3)
       on conflict (date, half) do update set date = excluded.date returning id`,
      [randomUUID(), date, half],
    );
    return rows[0]!.id;
  }

  /** Assigns `personId` to blocks of the week starting `week`; returns the assignment ids. */
  async assignWeek(personId: string, week: string, options: AssignOptions = {}): Promise<string[]> {
    const ids: string[] = [];
    for (const day of options.days ?? [0, 1, 2, 3, 4, 5, 6]) {
      for (const half of options.halves ?? ['AM', 'PM']) {
        ids.push(await this.assign(personId, addDays(week, day), half, options));
      }
    }
    return ids;
  }

  async assign(
    personId: string,
    date: string,
    half: 'AM' | 'PM',
    options: AssignOptions = {},
  ): Promise<string> {
    const blockId = await this.block(date, half);
    const id = randomUUID();
    await this.db.query(
      `insert into assignment (id, block_id, person_id, role, rotation) values ($1, $2, $3, $4, $5)`,
      [id, blockId, personId, options.role ?? 'primary', options.rotation ?? 'FMIT'],
    );
    return id;
  }

  async call(
    personId: string,
    date: string,
    callType: 'overnight' | 'weekend' | 'backup' = 'weekend',
  ): Promise<string> {
    const id = randomUUID();
    await this.db.query(
      `insert into call_assignment (id, date, person_id, call_type) values ($1, $2, $3, $4)`,
      [id, date, personId, callType],
    );
    return id;
  }

  async absence(
    personId: string,
    startDate: string,
    endDate: string,
    type: AbsenceType,
  ): Promise<string> {
    const id = randomUUID();
    await this.db.query(
      `insert into absence (id, person_id, start_date, end_date, type, blocking) values ($1, $2, $3, $4, $5, $6)`,
      [id, personId, startDate, endDate, type, isBlockingAbsence(type, startDate, endDate)],
    );
    return id;
  }

  /** Every assignment and call, as (id, person, version) rows in id order: a snapshot to compare. */
  async snapshot(): Promise<{ assignments: unknown[]; calls: unknown[] }> {
    const assignments = await this.db.query(
      `select id, block_id, person_id, role, rotation from assignment order by id`,
    );
    const calls = await this.db.query(
      `select id, date, person_id, call_type from call_assignment order by id`,
    );
    return { assignments: assignments.rows, calls: calls.rows };
  }

  /** Blocks where one person holds more than one assignment, or that lost all faculty. */
  async invariantBreaches(): Promise<{ doubleBooked: number; swapCount: number }> {
    const double = await this.db.query<{ n: number }>(
      `select count(*)::int as n from (select block_id, person_id from assignment group by 1, 2 having count(*) > 1) x`,
    );
    const swaps = await this.db.query<{ n: number }>(`select count(*)::int as n from swap_record`);
    return { doubleBooked: double.rows[0]!.n, swapCount: swaps.rows[0]!.n };
  }
}
