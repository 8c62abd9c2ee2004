import { createHash, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import v8 from 'node:v8';
import pg from 'pg';
import type { Config } from '../src/config';
import { RedisLock } from '../src/coordination/redis-lock';
import type { LockRedisClient } from '../src/coordination/redis-lock-scripts';
import { addDays } from '../src/domain/calendar';
import { type ProgramClock, programClock, systemClock } from '../src/domain/clock';
import { type ExecuteSwapRequest, SwapType } from '../src/generated/swap/v1/swap';
import { lockNameOf } from '../src/schedule/faculty-week-key';
import type { AbsenceFact, AssignmentFact, PersonFacts } from '../src/swaps/schedule-facts';
import {
  neighbourWeeksOf,
  type SwapCommand,
  touchedWeeksOf,
  transfersOf,
} from '../src/swaps/swap-command';
import type { CallMove, SwapRecord } from '../src/swaps/swap-record.entity';
import { judgeSwap } from '../src/swaps/swap-rules';
import * as sql from './floor-statements';

// The ORM talks to PostgreSQL through its own copy of pg (under
// @mikro-orm/postgresql); the floor uses that same copy, so the comparison is
// not also a comparison of driver versions.
const ormPg = createRequire(require.resolve('@mikro-orm/postgresql'))('pg') as typeof pg;

/** A pg.Pool from the driver copy the ORM uses. */
export function createFloorPool(url: string, max: number): pg.Pool {
  return new ormPg.Pool({ connectionString: url, max, idleTimeoutMillis: 30_000 });
}

/** The pg Client classes in this process, for counting statements. */
export function pgClientClasses(): Array<typeof pg.Client> {
  return [...new Set([ormPg.Client, pg.Client])];
}

/** What READ_FACTS returns: judgeSwap's facts, with the versions of what moves. */
interface FactsRow {
  people: PersonFacts[] | null;
  faculty: Array<AssignmentFact & { version: number }>;
  rosters: AssignmentFact[];
  absences: AbsenceFact[];
  calls: Array<{ id: string; date: string; personId: string; callType: string; version: number }>;
}

type Statement = { name: string; text: string };

/**
 * ExecuteSwap (as the bench sends it) as lean as it can be written, doing
 * the service's work for one call: one Redis lock grant on the weeks that
 * change (its fencing token written on them), then one transaction of six
 * round trips: BEGIN (with the timeouts); claim the idempotency key, lock the
 * eight faculty weeks in id order and fence the four written ones; read the
 * facts; [judgeSwap in Node]; insert the record, move the 28 assignments and
 * 4 calls under version checks and store the answer; run conflict detection
 * over the same weeks and append the audit row; COMMIT. Every statement but
 * BEGIN and COMMIT is a named prepared statement. No ORM, no gRPC, no replay
 * cache (the key is claimed in PostgreSQL either way), no retries.
 */
export class FloorSwap {
  private readonly lock: RedisLock;
  private readonly clock: ProgramClock;
  private readonly begin: string;

  constructor(
    private readonly pool: pg.Pool,
    redis: LockRedisClient,
    private readonly config: Config,
  ) {
    this.lock = new RedisLock(redis, {
      ttlMs: config.locks.ttlMs,
      keyPrefix: config.redis.keyPrefix,
    });
    this.clock = programClock(systemClock, config.timeZone);
    const ms = config.transactions.timeoutCeilingMs;
    this.begin = `begin isolation level read committed; set local lock_timeout = ${ms}; set local statement_timeout = ${ms}`;
  }

  async execute(request: ExecuteSwapRequest, actor: string): Promise<void> {
    const { sourceFacultyId, sourceWeek, targetFacultyId, targetWeek, reason } = request;
    const command: SwapCommand = {
      ...{ sourceFacultyId, sourceWeek, targetFacultyId, reason },
      targetWeek: targetWeek || null,
      swapType: request.swapType === SwapType.SWAP_TYPE_ABSORB ? 'ABSORB' : 'ONE_TO_ONE',
    };
    const transfers = transfersOf(command);
    const written = touchedWeeksOf(transfers);
    const locked = [...written, ...neighbourWeeksOf(transfers)];
    const people = [command.sourceFacultyId, command.targetFacultyId];
    const key = [JSON.stringify([actor, null, 'ExecuteSwap']), request.requestId];
    const fingerprint = createHash('sha256').update(JSON.stringify(command)).digest('hex');
    const lease = await this.lock.acquire(
      written.map(lockNameOf),
      Date.now() + this.config.locks.waitMs,
    );
    const db = await this.pool.connect().catch(async (error: unknown) => {
      await lease.release();
      throw error;
    });
    try {
      await db.query(this.begin);
      try {
        const token = lease.fencingToken;
        const [claim] = await run(db, sql.CLAIM_LOCK_FENCE, [
          ...key,
          fingerprint,
          this.config.idempotency.retentionMs,
          ...columnsOf(locked),
          ...columnsOf(written),
          token,
          lease.owner,
        ]);
        expect(claim, { claimed: 1, locked: locked.length, fenced: written.length });
        const [facts] = await run<FactsRow>(db, sql.READ_FACTS, [
          people,
          transfers.map((t) => t.giver),
          transfers.map((t) => t.week),
        ]);
        const verdict = judgeSwap(
          command,
          {
            people: new Map((facts!.people ?? []).map((p) => [p.id, p])),
            facultyAssignments: facts!.faculty,
            affectedBlockRosters: facts!.rosters,
            blockingAbsences: facts!.absences,
            // The rules never read calls; the floor moves them by person and day.
            cascadingCalls: [],
          },
          { today: this.clock.today(), shortNoticeDays: this.config.swaps.shortNoticeDays },
        );
        if (verdict.errors.length > 0) fail(verdict.errors.map((e) => e.reason).join(', '));
        const assignments = verdict.moves.map(({ assignment: a, to }) => ({
          assignmentId: a.id,
          blockDate: a.blockDate,
          blockHalf: a.blockHalf,
          rotation: a.rotation,
          fromPersonId: a.personId,
          toPersonId: to,
          version: (a as AssignmentFact & { version: number }).version + 1,
        }));
        const calls = facts!.calls.map((c): CallMove => {
          const t = transfers.find(
            (x) => x.giver === c.personId && c.date >= x.week && c.date <= addDays(x.week, 6),
          )!;
          const { id: callId, date, callType, version } = c;
          return {
            callId,
            date,
            callType,
            fromPersonId: t.giver,
            toPersonId: t.receiver,
            version: version + 1,
          };
        });
        const now = new Date();
        const record: Omit<SwapRecord, 'version'> & { version: number } = {
          ...command,
          id: randomUUID(),
          status: 'EXECUTED',
          requestedAt: now,
          requestedBy: actor,
          executedAt: now,
          executedBy: actor,
          rolledBackAt: null,
          rolledBackBy: null,
          rollbackReason: null,
          moves: { assignments, calls },
          warnings: verdict.warnings,
          fencingToken: token,
          version: 1,
        };
        const [write] = await run(db, sql.WRITE_SWAP, [
          ...key,
          record.id,
          record.sourceFacultyId,
          record.sourceWeek,
          record.targetFacultyId,
          record.targetWeek,
          record.swapType,
          record.reason,
          now,
          actor,
          JSON.stringify(record.moves),
          JSON.stringify(record.warnings),
          token,
          ...[assignments.map((m) => m.assignmentId), assignments.map((m) => m.toPersonId)],
          assignments.map((m) => m.version - 1),
          ...[calls.map((m) => m.callId), calls.map((m) => m.toPersonId)],
          calls.map((m) => m.version - 1),
          v8.serialize(record),
        ]);
        expect(write, { recorded: 1, moved: assignments.length, called: calls.length });
        const weeks = transfers.map((t) => t.week).sort();
        await run(db, sql.DETECT_AND_AUDIT, [
          ...detectionParams(this.config, addDays(weeks[0]!, -7), addDays(weeks.at(-1)!, 7)),
          record.id,
          people,
          actor,
          request.requestId,
          fingerprint,
        ]);
        await db.query('commit');
      } catch (error) {
        await db.query('rollback').catch(() => undefined);
        throw error;
      }
    } finally {
      db.release();
      await lease.release();
    }
  }
}

/** The floor's detection alone, over `firstWeek`..`lastWeek` for everyone: the alerts it raised. */
export async function detectAlerts(
  db: pg.ClientBase,
  config: Config,
  firstWeek: string,
  lastWeek: string,
) {
  return run<{
    type: string;
    severity: string;
    faculty_id: string;
    week: string;
    absence_id: string | null;
    description: string;
  }>(db, sql.DETECT, [...detectionParams(config, firstWeek, lastWeek), null, null]);
}

/** The first five parameters of the detection statements: the weeks and the service's thresholds. */
function detectionParams(config: Config, firstWeek: string, lastWeek: string) {
  const { backToBackDays, alternationWindowWeeks, maxAlternations } = config.conflicts;
  return [firstWeek, lastWeek, backToBackDays, alternationWindowWeeks * 7, maxAlternations];
}

async function run<Row = Record<string, number>>(
  db: pg.ClientBase,
  statement: Statement,
  values: unknown[],
): Promise<Row[]> {
  return (await db.query<Row & pg.QueryResultRow>({ ...statement, values })).rows;
}

/** Counts other than wanted mean a row was missing, had moved on, or was fenced by another grant. */
function expect(row: Record<string, number> | undefined, wanted: Record<string, number>): void {
  const off = Object.keys(wanted).filter((k) => row?.[k] !== wanted[k]);
  if (off.length > 0) fail(`expected ${JSON.stringify(wanted)}, got ${JSON.stringify(row)}`);
}

/** (person, week) keys as the two arrays the statements unnest. */
function columnsOf(keys: ReadonlyArray<{ personId: string; week: string }>): [string[], string[]] {
  return [keys.map((k) => k.personId), keys.map((k) => k.week)];
}

/** Something the bench never sets up happened: a replayed key, a stale row, a refused swap. */
export class FloorSwapError extends Error {
  override name = 'FloorSwapError';
}

function fail(why: string): never {
  throw new FloorSwapError(why);
}
