import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { sqlArray } from '../db/sql-array';
import { FacultyWeek } from './faculty-week.entity';

/** One faculty member's week: the unit that schedule writers lock. */
export interface FacultyWeekKey {
  personId: string;
  week: string;
}

// Creates the lock rows a write needs on first use. Unknown people are skipped
// (the write then fails validation), so this never trips a foreign key.
const CREATE_MISSING_SQL = `
insert into faculty_week (id, person_id, week_start)
select gen_random_uuid(), k.person_id, k.week_start
from unnest(?::uuid[], ?::date[]) as k(person_id, week_start)
join person p on p.id = k.person_id
order by k.person_id, k.week_start
on conflict (person_id, week_start) do nothing`;

/**
 * Locks the faculty-week rows for `keys` FOR UPDATE, in id order, inside the
 * transaction of `em`, creating any that do not exist yet. Two writers that
 * share a faculty week are serialized here, before either reads the schedule.
 */
export async function lockFacultyWeeks(
  em: EntityManager,
  keys: readonly FacultyWeekKey[],
): Promise<FacultyWeek[]> {
  const unique = dedupe(keys);
  const locked = await findForUpdate(em, unique);
  if (locked.length === unique.length) return locked;

  const have = new Set(locked.map((fw) => keyOf(fw.person.id, fw.weekStart)));
  const missing = unique.filter((k) => !have.has(keyOf(k.personId, k.week)));
  await em.execute(CREATE_MISSING_SQL, [
    sqlArray(missing.map((k) => k.personId)),
    sqlArray(missing.map((k) => k.week)),
  ]);
  // Locking these after the others breaks the global order only on the first
  // write to a week; a deadlock that causes is retried like any other.
  return [...locked, ...(await findForUpdate(em, missing))];
}

function findForUpdate(em: EntityManager, keys: readonly FacultyWeekKey[]): Promise<FacultyWeek[]> {
  if (keys.length === 0) return Promise.resolve([]);
  return em.find(
    FacultyWeek,
    { $or: keys.map((k) => ({ person: k.personId, weekStart: k.week })) },
    { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: 'asc' } },
  );
}

function dedupe(keys: readonly FacultyWeekKey[]): FacultyWeekKey[] {
  const byKey = new Map(keys.map((k) => [keyOf(k.personId, k.week), k]));
  return [...byKey.values()];
}

function keyOf(personId: string, week: string): string {
  return `${personId}|${week}`;
}
