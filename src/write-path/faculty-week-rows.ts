import type { EntityManager } from '@mikro-orm/postgresql';
import { preparedStatement, runPrepared } from '../db/prepared-statement';
import type { FacultyWeekKey } from '../schedule/faculty-week-key';

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

/** Which faculty weeks a write locks, and which of them it changes. */
export interface FacultyWeekLocks {
  /** The weeks the change writes: locked, and fenced with the call's grant. */
  written: readonly FacultyWeekKey[];
  /** Weeks the rules read but the change leaves alone (neighbouring weeks): locked only. */
  read?: readonly FacultyWeekKey[];
}

interface LockedWeek extends FacultyWeekKey {
  /** The newer (or tied) token that refused our grant; null when the week is ours to write. */
  refusedBy: string | null;
}

// Locks the existing rows for the keys FOR UPDATE, in id order, and, in the
// same statement, records the grant's token and owner on the written ones
// unless another grant got there first: one with a newer token, or one with
// the same token (a Redis failover lost the counter and handed the token out
// twice) but another owner. The grant that wrote a week may write it again (a
// later item, a retried attempt). The update reads what the lock read: the
// newest committed row, since a lock that waited rereads it. $1/$2/$3 the
// keys and whether each is written, $4/$5 the grant (null on advisory locks).
const LOCK_AND_FENCE = preparedStatement<LockedWeek>(
  'faculty_week_lock_and_fence',
  `
with locked as (
  select fw.id, fw.person_id, fw.week_start, fw.fencing_token, fw.fencing_owner, k.written
  from faculty_week fw
  join unnest($1::uuid[], $2::date[], $3::bool[]) as k(person_id, week_start, written)
    on fw.person_id = k.person_id and fw.week_start = k.week_start
  order by fw.id
  for update of fw
), fenced as (
  update faculty_week fw set fencing_token = $4::bigint, fencing_owner = $5::text
  from locked l
  where fw.id = l.id and l.written and $4::bigint is not null
    and (l.fencing_token is null
      or l.fencing_token < $4::bigint
      or (l.fencing_token = $4::bigint and l.fencing_owner = $5::text))
  returning fw.id
)
select l.person_id as "personId", l.week_start::text as "week",
       case when l.written and $4::bigint is not null and l.id not in (select id from fenced)
            then l.fencing_token::text end as "refusedBy"
from locked l`,
);

// Creates the lock rows a write needs on first use. Unknown people are skipped
// (the write then fails validation), so this never trips a foreign key.
const CREATE_MISSING = preparedStatement<never>(
  'faculty_week_create_missing',
  `
insert into faculty_week (id, person_id, week_start)
select gen_random_uuid(), k.person_id, k.week_start
from unnest($1::uuid[], $2::date[]) as k(person_id, week_start)
join person p on p.id = k.person_id
order by k.person_id, k.week_start
on conflict (person_id, week_start) do nothing`,
);

/**
 * Locks the faculty-week rows of `weeks` FOR UPDATE, in id order, inside the
 * transaction of `em`, creating any that do not exist yet, and fences the
 * written ones with `grant` (none on advisory locks, which cannot outlive the
 * transaction). Two writers that share a faculty week are serialized here,
 * before either reads the schedule. Returns the written weeks that another
 * grant, with a newer token or the same one, has already written: the write
 * must then be refused. Unknown people have no rows, and are left out.
 */
export async function lockFacultyWeeks(
  em: EntityManager,
  weeks: FacultyWeekLocks,
  grant: FencingGrant | null,
): Promise<FencedOut[]> {
  const written = new Set(weeks.written.map(keyOf));
  const unique = dedupe([...weeks.written, ...(weeks.read ?? [])]);
  const locked = await lockAndFence(em, unique, written, grant);
  if (locked.length < unique.length) {
    const have = new Set(locked.map(keyOf));
    const missing = unique.filter((k) => !have.has(keyOf(k)));
    await runPrepared(em, CREATE_MISSING, [
      missing.map((k) => k.personId),
      missing.map((k) => k.week),
    ]);
    // Locking these after the others breaks the global order only on the first
    // write to a week; a deadlock that causes is retried like any other.
    locked.push(...(await lockAndFence(em, missing, written, grant)));
  }
  return locked
    .filter((w) => w.refusedBy !== null)
    .map((w) => ({ personId: w.personId, week: w.week, token: w.refusedBy! }));
}

function lockAndFence(
  em: EntityManager,
  keys: readonly FacultyWeekKey[],
  written: ReadonlySet<string>,
  grant: FencingGrant | null,
): Promise<LockedWeek[]> {
  return runPrepared(em, LOCK_AND_FENCE, [
    keys.map((k) => k.personId),
    keys.map((k) => k.week),
    keys.map((k) => written.has(keyOf(k))),
    grant?.token ?? null,
    grant?.owner ?? null,
  ]);
}

function dedupe(keys: readonly FacultyWeekKey[]): FacultyWeekKey[] {
  return [...new Map(keys.map((k) => [keyOf(k), k])).values()];
}

function keyOf(key: FacultyWeekKey): string {
  return `${key.personId}|${key.week}`;
}
