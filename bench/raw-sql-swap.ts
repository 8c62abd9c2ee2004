import { createHash, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import pg from 'pg';
import { RedisLock } from '../src/coordination/redis-lock';
import type { LockRedisClient } from '../src/coordination/redis-lock-scripts';
import type { DetectionSettings } from '../src/conflicts/conflict-detector';
import { addDays, isoDateOf } from '../src/domain/calendar';
import type { Clock } from '../src/domain/clock';
import { ExecuteSwapRequest, ExecuteSwapResponse, SwapType } from '../src/generated/swap/v1/swap';
import { toSwapMessage } from '../src/grpc/swap-messages';
import { lockNameOf } from '../src/schedule/faculty-week-locks';
import type { PersonFacts, ScheduleFacts } from '../src/swaps/schedule-facts';
import { type SwapCommand, transfersOf } from '../src/swaps/swap-command';
import { facultyWeeksOf, touchedWeeksOf } from '../src/swaps/swap-executor';
import type { SwapRecord } from '../src/swaps/swap-record.entity';
import { judgeSwap } from '../src/swaps/swap-rules';
import {
  CLAIM_SQL,
  COMPLETE_SQL,
  DETECT_SQL,
  FACTS_SQL,
  FENCE_SQL,
  INSERT_RECORD_SQL,
  LOCK_ASSIGNMENTS_SQL,
  LOCK_CALLS_SQL,
  LOCK_FACULTY_WEEKS_SQL,
  LOOKUP_SQL,
  MOVE_ASSIGNMENTS_SQL,
  MOVE_CALLS_SQL,
  READ_ALERTS_SQL,
} from './raw-sql-statements';

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

const CASCADING_CALL_DAYS = [4, 5];
const NEIGHBOUR_DAYS = 7;
const METHOD = 'ExecuteSwap';

export interface RawSwapSettings {
  /** lock_timeout and statement_timeout of each transaction. */
  timeoutMs: number;
  shortNoticeDays: number;
  detection: DetectionSettings;
  idempotencyRetentionMs: number;
  /** Shared with `service-redis`: the same lock keys, fencing counter and replay cache. */
  keyPrefix: string;
  lockTtlMs: number;
  lockWaitMs: number;
}

/**
 * ExecuteSwap written by hand over pg and ioredis, doing what `service-redis`
 * does for one call, in the same order: replay-cache GET, committed-key lookup,
 * Redis lock (our RedisLock, for the fencing token), then one transaction that
 * claims the idempotency key, locks the faculty weeks, reads the facts and
 * judges them with the same rules, fences the weeks, locks and moves the same
 * rows under version checks, inserts the record, runs conflict detection for the
 * swap's weeks and stores the response; then the release and the cache SET.
 * No ORM, no gRPC, no circuit breaker, no retries, no telemetry.
 */
export class RawSqlSwap {
  private readonly lock: RedisLock;
  private grants = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly redis: LockRedisClient,
    private readonly clock: Clock,
    private readonly settings: RawSwapSettings,
  ) {
    this.lock = new RedisLock(redis, { ttlMs: settings.lockTtlMs, keyPrefix: settings.keyPrefix });
  }

  /** Redis lock grants so far: one per swap, each writing its fencing token. */
  redisGrants(): number {
    return this.grants;
  }

  async execute(command: SwapCommand, actor: string): Promise<void> {
    const requestId = randomUUID();
    const scope = `${actor}:${METHOD}`;
    const fingerprint = fingerprintOf(command);
    const cacheKey = `{${this.settings.keyPrefix}}:idem:${scope}:${requestId}`;
    // Every request id is fresh, so both always miss; they are the service's round trips.
    if (await this.redis.get(cacheKey)) throw new UnexpectedReplayError(requestId);
    const earlier = await this.pool.query(LOOKUP_SQL, [scope, requestId]);
    if (earlier.rowCount) throw new UnexpectedReplayError(requestId);

    const names = touchedWeeksOf(transfersOf(command)).map(lockNameOf);
    const lease = await this.lock.acquire(names, Date.now() + this.settings.lockWaitMs);
    this.grants++;
    let response: Buffer;
    try {
      response = await this.transaction((client) =>
        this.work(client, command, actor, { scope, requestId, fingerprint }, lease.fencingToken),
      );
    } finally {
      await lease.release();
    }
    // Not awaited, as in the service: the cache write never delays the reply.
    void this.redis
      .set(
        cacheKey,
        JSON.stringify({ f: fingerprint, r: response.toString('base64') }),
        'PX',
        this.settings.idempotencyRetentionMs,
      )
      .catch(() => undefined);
  }

  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
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
      const result = await work(client);
      open = false;
      await client.query('commit');
      return result;
    } catch (error) {
      if (open) await client.query('rollback').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  private async work(
    client: pg.PoolClient,
    command: SwapCommand,
    actor: string,
    key: { scope: string; requestId: string; fingerprint: string },
    fencingToken: string,
  ): Promise<Buffer> {
    const claimed = await client.query(CLAIM_SQL, [
      key.scope,
      key.requestId,
      key.fingerprint,
      `${this.settings.idempotencyRetentionMs} milliseconds`,
    ]);
    if (claimed.rowCount !== 1) throw new UnexpectedReplayError(key.requestId);

    const transfers = transfersOf(command);
    const weeks = dedupe(facultyWeeksOf(transfers));
    const locked = await client.query(LOCK_FACULTY_WEEKS_SQL, [
      weeks.map((k) => k.personId),
      weeks.map((k) => k.week),
    ]);
    // The service would create missing lock rows here; the bench seeds them all.
    if (locked.rowCount !== weeks.length)
      throw new StaleRowsError('faculty_week', weeks.length, locked.rowCount);

    const now = this.clock.now();
    const facts = await readFacts(client, command);
    const verdict = judgeSwap(command, facts, {
      today: isoDateOf(now),
      shortNoticeDays: this.settings.shortNoticeDays,
    });
    if (verdict.errors.length > 0) {
      throw new Error(`swap rejected: ${verdict.errors.map((e) => e.reason).join(', ')}`);
    }

    const touched = dedupe(touchedWeeksOf(transfers));
    const newer = await client.query(FENCE_SQL, [
      touched.map((k) => k.personId),
      touched.map((k) => k.week),
      fencingToken,
      fencingToken,
    ]);
    if (newer.rowCount) throw new Error(`fenced out by a newer lock holder (${fencingToken})`);

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

    const record: SwapRecord = {
      id: randomUUID(),
      sourceFacultyId: command.sourceFacultyId,
      sourceWeek: command.sourceWeek,
      targetFacultyId: command.targetFacultyId,
      targetWeek: command.targetWeek,
      swapType: command.swapType,
      status: 'EXECUTED',
      reason: command.reason,
      requestedAt: now,
      requestedBy: actor,
      executedAt: now,
      executedBy: actor,
      rolledBackAt: null,
      rolledBackBy: null,
      rollbackReason: null,
      moves: { assignments: assignmentMoves, calls: callMoves },
      warnings: verdict.warnings,
      fencingToken,
      version: 1,
    };
    // In the order of the service's flush: insert, then the versioned updates.
    await client.query(INSERT_RECORD_SQL, [
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
      fencingToken,
    ]);
    await updateVersioned(
      client,
      MOVE_CALLS_SQL,
      'call_assignment',
      callMoves.map((m) => [m.callId, m.toPersonId, m.version - 1]),
    );
    await updateVersioned(
      client,
      MOVE_ASSIGNMENTS_SQL,
      'assignment',
      assignmentMoves.map((m) => [m.assignmentId, m.toPersonId, m.version - 1]),
    );

    // detectAround (src/swaps/swap-executor.ts): the swapped weeks and a week either side.
    const swapped = [record.sourceWeek, ...(record.targetWeek ? [record.targetWeek] : [])].sort();
    await detectConflicts(client, this.settings.detection, {
      firstWeek: addDays(swapped[0]!, -7),
      lastWeek: addDays(swapped[swapped.length - 1]!, 7),
      causedBySwap: record.id,
      faculty: [record.sourceFacultyId, record.targetFacultyId],
    });

    const response = Buffer.from(
      ExecuteSwapResponse.encode({ swap: toSwapMessage(record) }).finish(),
    );
    const completed = await client.query(COMPLETE_SQL, [response, key.scope, key.requestId]);
    if (completed.rowCount !== 1) throw new UnexpectedReplayError(key.requestId);
    return response;
  }
}

/** Where, for whom and because of which swap one detection looks. */
export interface DetectionScope {
  firstWeek: string;
  lastWeek: string;
  causedBySwap: string | null;
  /** Null: every faculty member. */
  faculty: readonly string[] | null;
}

/**
 * ConflictDetector.detect over pg: the same statement with the same
 * parameters, then the created alerts read back as the detector does. Returns
 * the alerts created.
 */
export async function detectConflicts(
  client: pg.ClientBase,
  settings: DetectionSettings,
  scope: DetectionScope,
): Promise<Array<{ id: string; type: string }>> {
  const created = await client.query<{ id: string }>(DETECT_SQL, [
    scope.firstWeek,
    scope.lastWeek,
    settings.backToBackDays,
    settings.alternationWindowWeeks * 7,
    settings.maxAlternations,
    scope.causedBySwap,
    scope.faculty,
    scope.firstWeek,
    scope.lastWeek,
  ]);
  if (created.rows.length === 0) return [];
  const alerts = await client.query<{ id: string; type: string }>(READ_ALERTS_SQL, [
    created.rows.map((r) => r.id),
  ]);
  return alerts.rows;
}

/** A row was missing or had moved on since it was read. */
export class StaleRowsError extends Error {
  override name = 'StaleRowsError';
  constructor(table: string, expected: number, got: number | null) {
    super(`${table}: expected ${expected} rows, got ${got ?? 0}`);
  }
}

/** The bench never reuses a request id, so a stored answer means something is wrong. */
export class UnexpectedReplayError extends Error {
  override name = 'UnexpectedReplayError';
  constructor(requestId: string) {
    super(`request ${requestId} was already answered or claimed`);
  }
}

/** As the service fingerprints a request: SHA-256 of it encoded, request id cleared. */
function fingerprintOf(command: SwapCommand): string {
  const canonical = ExecuteSwapRequest.encode({
    sourceFacultyId: command.sourceFacultyId,
    sourceWeek: command.sourceWeek,
    targetFacultyId: command.targetFacultyId,
    targetWeek: command.targetWeek ?? '',
    swapType:
      command.swapType === 'ONE_TO_ONE' ? SwapType.SWAP_TYPE_ONE_TO_ONE : SwapType.SWAP_TYPE_ABSORB,
    reason: command.reason,
    requestId: '',
  }).finish();
  return createHash('sha256').update(canonical).digest('hex');
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
