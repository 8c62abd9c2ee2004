/**
 * Every statement the raw-SQL path sends, with pg's numbered placeholders.
 *
 * Those the service writes as SQL text itself are imported from src/ and only
 * renumbered (`?` becomes `$1`, `$2`, …), so the baseline cannot drift from the
 * service's work. The rest are what MikroORM generates for the service (row
 * locks, versioned updates, the record insert), written by hand.
 */
import { DETECT_SQL as DETECT } from '../src/conflicts/conflict-detector';
import {
  CLAIM_SQL as CLAIM,
  COMPLETE_SQL as COMPLETE,
  LOOKUP_SQL as LOOKUP,
} from '../src/coordination/idempotency-store';
import { FENCE_SQL as FENCE, LOCK_SQL as LOCK } from '../src/schedule/faculty-week-locks';
import { FACTS_SQL as FACTS } from '../src/swaps/schedule-facts-reader';

/** knex-style `?` placeholders as pg's `$n`. */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

export const LOOKUP_SQL = numbered(LOOKUP);
export const CLAIM_SQL = numbered(CLAIM);
export const COMPLETE_SQL = numbered(COMPLETE);
export const LOCK_FACULTY_WEEKS_SQL = numbered(LOCK);
export const FENCE_SQL = numbered(FENCE);
export const FACTS_SQL = numbered(FACTS);
export const DETECT_SQL = numbered(DETECT);

// What MikroORM sends for the service's em.find(..., { lockMode: PESSIMISTIC_WRITE }).
export const LOCK_ASSIGNMENTS_SQL = `
select id, person_id, rotation, version from assignment
where id = any($1::uuid[]) order by id for update`;

export const LOCK_CALLS_SQL = `
select c.id, c.date::text as date, c.person_id, c.call_type, c.version
from call_assignment c
join unnest($1::uuid[], $2::date[]) as k(person_id, date) on c.person_id = k.person_id and c.date = k.date
order by c.id
for update of c`;

// The service's flush: the record insert, then one versioned update per table.
// MikroORM checks the versions with a select before each update; here the
// version is in the update's WHERE and the row count is checked instead.
export const INSERT_RECORD_SQL = `
insert into swap_record (id, source_faculty_id, source_week, target_faculty_id, target_week,
  swap_type, status, reason, requested_at, requested_by, executed_at, executed_by,
  rolled_back_at, rolled_back_by, rollback_reason, moves, warnings, fencing_token, version)
values ($1, $2, $3, $4, $5, $6, 'EXECUTED', $7, $8, $9, $8, $9, null, null, null, $10, $11, $12, 1)`;

export const MOVE_CALLS_SQL = `
update call_assignment c set person_id = m.person_id, version = c.version + 1
from unnest($1::uuid[], $2::uuid[], $3::int[]) as m(id, person_id, version)
where c.id = m.id and c.version = m.version`;

export const MOVE_ASSIGNMENTS_SQL = `
update assignment a set person_id = m.person_id, version = a.version + 1
from unnest($1::uuid[], $2::uuid[], $3::int[]) as m(id, person_id, version)
where a.id = m.id and a.version = m.version`;

// ConflictDetector.detect loads the alerts it created (never, on the bench schedule).
export const READ_ALERTS_SQL = `
select * from conflict_alert where id = any($1::uuid[]) order by week_start, id`;
