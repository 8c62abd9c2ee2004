import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import pg from 'pg';
import { addDays, isoDateOf } from '../src/domain/calendar';
import type { Clock } from '../src/domain/clock';
import type { PersonFacts, ScheduleFacts } from '../src/swaps/schedule-facts';
import { type SwapCommand, transfersOf } from '../src/swaps/swap-command';
import { facultyWeeksOf } from '../src/swaps/swap-executor';
import { judgeSwap } from '../src/swaps/swap-rules';

// The ORM talks to PostgreSQL through its own copy of pg (8.20 under
// @mikro-orm/postgresql, while the root one is 8.23); the baseline uses that
// same copy, so the comparison is not also a comparison of driver versions.
const ormPg = createRequire(require.resolve('@mikro-orm/postgresql'))('pg') as typeof pg;

/** A pg.Pool from the driver copy the ORM uses. */
export function createRawPool(url: string, max: number): pg.Pool {
  return new ormPg.Pool({ connectionString: url, max, idleTimeoutMillis: 30_000 });
}

/** The pg Client classes in this process, for counting statements. */
export function pgClientClasses(): Array<typeof pg.Client> {
  return [...new Set([ormPg.Client, pg.Client])];
}

// The text of FACTS_SQL in src/swaps/schedule-facts-reader.ts, with pg's
// numbered placeholders; keep the two in step.
const FACTS_SQL = `
with wanted as (
  select unnest($1::uuid[]) as person_id
), windows as (
  select unnest($2::date[]) as first_day, unnest($3::date[]) as last_day
), moving_blocks as (
  select a.block_id
  from assignment a join block b on b.id = a.block_id
  join unnest($4::uuid[], $5::date[]) as t(giver, week) on a.person_id = t.giver
  where b.date between t.week and t.week + 6
), facts as not materialized (
  select a.id, a.block_id as "blockId", b.date as "blockDate", b.half as "blockHalf",
         a.person_id as "personId", p.kind as "personKind", p.pgy_level as "pgyLevel",
         a.role, a.rotation
  from assignment a join block b on b.id = a.block_id join person p on p.id = a.person_id
)
select
  (select coalesce(json_agg(json_build_object('id', p.id, 'kind', p.kind,
      'facultyRole', p.faculty_role, 'pgyLevel', p.pgy_level)), '[]')
     from person p where p.id in (select person_id from wanted)) as people,
  (select coalesce(json_agg(f), '[]') from facts f
     where f."personId" in (select person_id from wanted)
       and exists (select 1 from windows w where f."blockDate" between w.first_day and w.last_day)) as "facultyAssignments",
  (select coalesce(json_agg(f), '[]') from facts f
     where f."blockId" in (select block_id from moving_blocks)) as "affectedBlockRosters",
  (select coalesce(json_agg(json_build_object('personId', ab.person_id, 'startDate', ab.start_date,
      'endDate', ab.end_date, 'type', ab.type)), '[]')
     from absence ab
     where ab.blocking and ab.person_id in (select person_id from wanted)
       and exists (select 1 from windows w where ab.start_date <= w.last_day and ab.end_date >= w.first_day)) as "blockingAbsences"
`;

const LOCK_FACULTY_WEEKS_SQL = `
select fw.id, fw.version
from faculty_week fw
join unnest($1::uuid[], $2::date[]) as k(person_id, week_start)
  on fw.person_id = k.person_id and fw.week_start = k.week_start
order by fw.id
for update of fw`;

const LOCK_ASSIGNMENTS_SQL = `
select id, person_id, rotation, version from assignment
where id = any($1::uuid[]) order by id for update`;

const LOCK_CALLS_SQL = `
select c.id, c.date::text as date, c.person_id, c.call_type, c.version
from call_assignment c
join unnest($1::uuid[], $2::date[]) as k(person_id, date) on c.person_id = k.person_id and c.date = k.date
order by c.id
for update of c`;

// One statement per table, each row guarded by the version it was read at.
const MOVE_ASSIGNMENTS_SQL = `
update assignment a set person_id = m.person_id, version = a.version + 1
from unnest($1::uuid[], $2::uuid[], $3::int[]) as m(id, person_id, version)
where a.id = m.id and a.version = m.version`;

const MOVE_CALLS_SQL = `
update call_assignment c set person_id = m.person_id, version = c.version + 1
from unnest($1::uuid[], $2::uuid[], $3::int[]) as m(id, person_id, version)
where c.id = m.id and c.version = m.version`;

const INSERT_RECORD_SQL = `
insert into swap_record (id, source_faculty_id, source_week, target_faculty_id, target_week,
  swap_type, status, reason, requested_at, requested_by, executed_at, executed_by,
  rolled_back_at, rolled_back_by, rollback_reason, moves, warnings, fencing_token, version)
values ($1, $2, $3, $4, $5, $6, 'EXECUTED', $7, $8, $9, $8, $9, null, null, null, $10, $11, null, 1)`;

const CASCADING_CALL_DAYS = [4, 5];
const NEIGHBOUR_DAYS = 7;

export interface RawSwapSettings {
  /** lock_timeout and statement_timeout of each transaction. */
  timeoutMs: number;
  shortNoticeDays: number;
}

/**
 * The ExecuteSwap transaction written by hand over pg: the same rows locked in
 * the same order, the same facts query and rules, the same rows changed under
 * version checks and the same record inserted, with no ORM and no gRPC.
 */
export class RawSqlSwap {
  constructor(
    private readonly pool: pg.Pool,
    private readonly clock: Clock,
    private readonly settings: RawSwapSettings,
  ) {}

  async execute(command: SwapCommand, actor: string): Promise<void> {
    const client = await this.pool.connect();
    let open = false;
    try {
      await client.query('begin transaction isolation level read committed');
      open = true;
      const timeout = `${this.settings.timeoutMs}ms`;
      await client.query(
        `select set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`,
        [timeout, timeout],
      );
      await this.work(client, command, actor);
      open = false;
      await client.query('commit');
    } catch (error) {
      if (open) await client.query('rollback').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  private async work(client: pg.PoolClient, command: SwapCommand, actor: string): Promise<void> {
    const transfers = transfersOf(command);
    const keys = dedupe(facultyWeeksOf(transfers));
    const locked = await client.query(LOCK_FACULTY_WEEKS_SQL, [
      keys.map((k) => k.personId),
      keys.map((k) => k.week),
    ]);
    if (locked.rowCount !== keys.length)
      throw new StaleRowsError('faculty_week', keys.length, locked.rowCount);

    const now = this.clock.now();
    const facts = await readFacts(client, command);
    const verdict = judgeSwap(command, facts, {
      today: isoDateOf(now),
      shortNoticeDays: this.settings.shortNoticeDays,
    });
    if (verdict.errors.length > 0) {
      throw new Error(`swap rejected: ${verdict.errors.map((e) => e.reason).join(', ')}`);
    }

    const planned = new Map(verdict.moves.map((m) => [m.assignment.id, m]));
    const rows = await client.query<{
      id: string;
      person_id: string;
      rotation: string;
      version: number;
    }>(LOCK_ASSIGNMENTS_SQL, [[...planned.keys()]]);
    if (rows.rowCount !== planned.size)
      throw new StaleRowsError('assignment', planned.size, rows.rowCount);
    const assignmentMoves = rows.rows.map((row) => {
      const move = planned.get(row.id)!;
      if (row.person_id !== move.assignment.personId) throw new StaleRowsError('assignment', 1, 0);
      return {
        assignmentId: row.id,
        blockDate: move.assignment.blockDate,
        blockHalf: move.assignment.blockHalf,
        rotation: row.rotation,
        fromPersonId: move.assignment.personId,
        toPersonId: move.to,
        version: row.version + 1,
      };
    });

    const callKeys = transfers.flatMap((t) =>
      CASCADING_CALL_DAYS.map((d) => ({ personId: t.giver, date: addDays(t.week, d) })),
    );
    const calls = await client.query<{
      id: string;
      date: string;
      person_id: string;
      call_type: string;
      version: number;
    }>(LOCK_CALLS_SQL, [callKeys.map((k) => k.personId), callKeys.map((k) => k.date)]);
    const callMoves = calls.rows.map((call) => {
      const transfer = transfers.find(
        (t) => t.giver === call.person_id && call.date >= t.week && call.date <= addDays(t.week, 6),
      )!;
      return {
        callId: call.id,
        date: call.date,
        callType: call.call_type,
        fromPersonId: transfer.giver,
        toPersonId: transfer.receiver,
        version: call.version + 1,
      };
    });

    await updateVersioned(
      client,
      MOVE_ASSIGNMENTS_SQL,
      'assignment',
      assignmentMoves.map((m) => [m.assignmentId, m.toPersonId, m.version - 1]),
    );
    await updateVersioned(
      client,
      MOVE_CALLS_SQL,
      'call_assignment',
      callMoves.map((m) => [m.callId, m.toPersonId, m.version - 1]),
    );
    await client.query(INSERT_RECORD_SQL, [
      randomUUID(),
      command.sourceFacultyId,
      command.sourceWeek,
      command.targetFacultyId,
      command.targetWeek,
      command.swapType,
      command.reason,
      now,
      actor,
      JSON.stringify({ assignments: assignmentMoves, calls: callMoves }),
      JSON.stringify(verdict.warnings),
    ]);
  }
}

/** A row was missing or had moved on since it was read. */
export class StaleRowsError extends Error {
  override name = 'StaleRowsError';
  constructor(table: string, expected: number, got: number | null) {
    super(`${table}: expected ${expected} rows, got ${got ?? 0}`);
  }
}

interface FactsRow {
  people: PersonFacts[];
  facultyAssignments: ScheduleFacts['facultyAssignments'];
  affectedBlockRosters: ScheduleFacts['affectedBlockRosters'];
  blockingAbsences: ScheduleFacts['blockingAbsences'];
}

async function readFacts(client: pg.PoolClient, command: SwapCommand): Promise<ScheduleFacts> {
  const transfers = transfersOf(command);
  const { rows } = await client.query(FACTS_SQL, [
    [command.sourceFacultyId, command.targetFacultyId],
    transfers.map((t) => addDays(t.week, -NEIGHBOUR_DAYS)),
    transfers.map((t) => addDays(t.week, 6 + NEIGHBOUR_DAYS)),
    transfers.map((t) => t.giver),
    transfers.map((t) => t.week),
  ]);
  const row = rows[0] as FactsRow | undefined;
  if (!row) throw new Error('the facts query returned no row');
  return {
    people: new Map(row.people.map((p) => [p.id, p])),
    facultyAssignments: row.facultyAssignments,
    affectedBlockRosters: row.affectedBlockRosters,
    blockingAbsences: row.blockingAbsences,
  };
}

async function updateVersioned(
  client: pg.PoolClient,
  sql: string,
  table: string,
  rows: Array<[string, string, number]>,
): Promise<void> {
  if (rows.length === 0) return;
  const result = await client.query(sql, [
    rows.map((r) => r[0]),
    rows.map((r) => r[1]),
    rows.map((r) => r[2]),
  ]);
  if (result.rowCount !== rows.length)
    throw new StaleRowsError(table, rows.length, result.rowCount);
}

function dedupe<K extends { personId: string; week: string }>(keys: readonly K[]): K[] {
  return [...new Map(keys.map((k) => [`${k.personId}|${k.week}`, k])).values()];
}
