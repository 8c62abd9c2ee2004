import type { EntityManager } from '@mikro-orm/postgresql';
import { sqlArray } from '../db/sql-array';
import type { FacultyWeekKey } from '../schedule/faculty-week-key';

// Locks the existing rows for the keys, in id order. The rows are only locked,
// never changed here, so they are not loaded as entities.
const LOCK_SQL = `
select fw.person_id as "personId", fw.week_start as "week"
from faculty_week fw
join unnest(?::uuid[], ?::date[]) as k(person_id, week_start)
  on fw.person_id = k.person_id and fw.week_start = k.week_start
order by fw.id
for update of fw`;

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
 * Returns the keys now locked (unknown people have none).
 */
export async function lockFacultyWeeks(
  em: EntityManager,
  keys: readonly FacultyWeekKey[],
): Promise<FacultyWeekKey[]> {
  const unique = dedupe(keys);
  const locked = await lockExisting(em, unique);
  if (locked.length === unique.length) return locked;

  const have = new Set(locked.map((k) => keyOf(k)));
  const missing = unique.filter((k) => !have.has(keyOf(k)));
  await em.execute(CREATE_MISSING_SQL, [
    sqlArray(missing.map((k) => k.personId)),
    sqlArray(missing.map((k) => k.week)),
  ]);
  // Locking these after the others breaks the global order only on the first
  // write to a week; a deadlock that causes is retried like any other.
  return [...locked, ...(await lockExisting(em, missing))];
}

function lockExisting(
  em: EntityManager,
  keys: readonly FacultyWeekKey[],
): Promise<FacultyWeekKey[]> {
  return em.execute<FacultyWeekKey[]>(LOCK_SQL, [
    sqlArray(keys.map((k) => k.personId)),
    sqlArray(keys.map((k) => k.week)),
  ]);
}

function dedupe(keys: readonly FacultyWeekKey[]): FacultyWeekKey[] {
  return [...new Map(keys.map((k) => [keyOf(k), k])).values()];
}

function keyOf(key: FacultyWeekKey): string {
  return `${key.personId}|${key.week}`;
}

// Records the grant's token and owner on the weeks (already locked by this
// transaction) unless another grant got there first: one with a newer token,
// or one with the same token (a Redis failover lost the counter and handed the
// token out twice) but another owner. The grant that wrote a week may write it
// again (a later item, a retried attempt). Returns the weeks that refused it.
const FENCE_SQL = `
with ours as (
  select ?::bigint as token, ?::text as owner
), wanted as (
  select fw.id, fw.person_id, fw.week_start, fw.fencing_token, fw.fencing_owner
  from faculty_week fw
  join unnest(?::uuid[], ?::date[]) as k(person_id, week_start)
    on fw.person_id = k.person_id and fw.week_start = k.week_start
), fenced as (
  update faculty_week fw set fencing_token = ours.token, fencing_owner = ours.owner
  from wanted w, ours
  where fw.id = w.id
    and (w.fencing_token is null
      or w.fencing_token < ours.token
      or (w.fencing_token = ours.token and w.fencing_owner = ours.owner))
  returning fw.id
)
select w.person_id as "personId", w.week_start as "week", w.fencing_token::text as "token"
from wanted w where w.id not in (select id from fenced)`;

/** A week that another lock grant, newer or tied with ours, has already written. */
export interface FencedOut extends FacultyWeekKey {
  token: string;
}

/** The lock grant a write runs under, as its fence records it. */
export interface FencingGrant {
  /** The grant's fencing token. */
  token: string;
  /** Names the one grant (its random lock owner), so tied tokens are told apart. */
  owner: string;
}

/**
 * Writes the grant's token and owner on `keys`, which this transaction has
 * locked, and returns the weeks another grant has already written with a newer
 * token, or with the same token (the write must then be refused).
 */
export async function fenceFacultyWeeks(
  em: EntityManager,
  keys: readonly FacultyWeekKey[],
  grant: FencingGrant,
): Promise<FencedOut[]> {
  const unique = dedupe(keys);
  return em.execute<FencedOut[]>(FENCE_SQL, [
    grant.token,
    grant.owner,
    sqlArray(unique.map((k) => k.personId)),
    sqlArray(unique.map((k) => k.week)),
  ]);
}
