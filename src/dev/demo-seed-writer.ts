/**
 * Writes the demo program into an empty database through MikroORM. What the
 * program is lives in demo-roster.ts and demo-year-planner.ts; this file only
 * guards the database and inserts the plan.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { Absence } from '../schedule/absence.entity';
import { Assignment } from '../schedule/assignment.entity';
import { Block } from '../schedule/block.entity';
import { CallAssignment } from '../schedule/call-assignment.entity';
import { Person } from '../schedule/person.entity';
import { planDemoProgram } from './demo-year-planner';

/** What {@link seedDemoProgram} wrote. */
export interface DemoSeedSummary {
  faculty: number;
  residents: number;
  blocks: number;
  assignments: number;
  calls: number;
  absences: number;
  /** First and last scheduled day (ISO dates): a Monday and a Sunday. */
  firstDay: string;
  lastDay: string;
}

/** What {@link seedDemoProgram} plans from. */
export interface DemoSeedOptions {
  /** ISO date; the demo covers the academic year that contains it. */
  today: string;
  /**
   * Uniform numbers in [0, 1) that shape the schedule. Defaults to a PRNG with
   * a fixed seed, so every demo database has the same schedule and people;
   * see {@link planDemoProgram}.
   */
  random?: () => number;
}

/** The seeder of several processes started at once must not run twice. */
const SEED_LOCK_KEY = 'swap-service:demo-seed';
/** Rows per INSERT: far below PostgreSQL's 65,535 bind parameters per statement. */
const INSERT_CHUNK = 1_000;

/** True when no schedule data exists yet, so the demo may be seeded. */
export async function isDatabaseEmpty(em: EntityManager): Promise<boolean> {
  const rows = await em.execute<Array<{ has_data: boolean }>>(
    `select exists (select 1 from person) or exists (select 1 from block)
        or exists (select 1 from assignment) or exists (select 1 from call_assignment)
        or exists (select 1 from absence) as has_data`,
  );
  return rows[0]?.has_data === false;
}

/**
 * Seeds a demo residency program into an empty database: 12 faculty, 24
 * residents and one academic year of half-day blocks, FMIT weeks, clinic,
 * inpatient, calls and a few absences. The schedule breaks none of the swap
 * rules (one FMIT faculty per week and never two weeks running, supervision
 * ratios, weekly clinic limits, faculty not scheduled while away), so every
 * conflict a demo shows is one the demo made. Runs in one transaction and
 * throws, writing nothing, when the database already holds data.
 */
export async function seedDemoProgram(
  em: EntityManager,
  options: DemoSeedOptions,
): Promise<DemoSeedSummary> {
  const plan = planDemoProgram(options.today, options.random);
  return em.transactional(async (tx) => {
    await tx.execute('select pg_advisory_xact_lock(hashtext(?))', [SEED_LOCK_KEY]);
    if (!(await isDatabaseEmpty(tx))) {
      throw new Error(
        'refusing to seed the demo program: the database already holds schedule data',
      );
    }
    await insertChunked(tx, Person, plan.people);
    await insertChunked(tx, Block, plan.blocks);
    await insertChunked(tx, Assignment, plan.assignments);
    await insertChunked(tx, CallAssignment, plan.calls);
    await insertChunked(tx, Absence, plan.absences);
    return {
      faculty: plan.people.filter((p) => p.kind === 'faculty').length,
      residents: plan.people.filter((p) => p.kind === 'resident').length,
      blocks: plan.blocks.length,
      assignments: plan.assignments.length,
      calls: plan.calls.length,
      absences: plan.absences.length,
      firstDay: plan.firstDay,
      lastDay: plan.lastDay,
    };
  });
}

async function insertChunked<T extends object>(
  em: EntityManager,
  entity: new () => T,
  rows: readonly object[],
): Promise<void> {
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    // Rows are built to match the table exactly; insertMany skips the unit of work.
    await em.insertMany(entity, rows.slice(i, i + INSERT_CHUNK));
  }
}
