import v8 from 'node:v8';
import { createHash, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import pg from 'pg';
import type { Config } from '../src/config';
import { RedisLock } from '../src/coordination/redis-lock';
import type { LockRedisClient } from '../src/coordination/redis-lock-scripts';
import { addDays } from '../src/domain/calendar';
import {
  ExecuteSwapRequest,
  type MovedAssignment,
  type MovedCall,
  Swap,
  SwapStatus,
  SwapType,
} from '../src/generated/swap/v1/swap';
import type { SwapRecord } from '../src/swaps/swap-record.entity';
import * as sql from './raw-sql-statements';
import { CALL_DAYS } from './swap-pairs';

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

/** One direction of a ONE_TO_ONE swap: the giver's work in `week` goes to the receiver. */
interface Transfer {
  giver: string;
  receiver: string;
  week: string;
}

/** The facts READ_FACTS_SQL returns that this path looks at. */
interface Facts {
  people: Array<{ id: string; kind: string }> | null;
  nearby: Array<{
    id: string;
    blockDate: string;
    blockHalf: string;
    personId: string;
    rotation: string;
  }>;
  absences: unknown[];
}

type Db = pg.PoolClient;

/**
 * ExecuteSwap (ONE_TO_ONE, as the bench sends it) by hand over pg and ioredis,
 * doing what `service-redis` does for one call, in the same order: replay-cache
 * GET, committed-answer lookup, the Redis lock (our RedisLock, on the service's
 * key prefix, so the fencing counter is shared), then one transaction that
 * claims the idempotency key, locks the faculty weeks, reads the facts, fences
 * the weeks, locks and moves the rows under version checks, inserts the record,
 * runs conflict detection over the swap's weeks, stores the answer and appends
 * the audit row; then the release and the cache SET. No ORM, no gRPC, no
 * circuit breaker, no retries, no telemetry, and no rule engine: the facts are
 * read as the service reads them, but only a few checks are made of them (the
 * bench schedule breaks no rule).
 */
export class RawSqlSwap {
  private readonly lock: RedisLock;

  constructor(
    private readonly pool: pg.Pool,
    private readonly redis: LockRedisClient,
    private readonly config: Config,
  ) {
    this.lock = new RedisLock(redis, {
      ttlMs: config.locks.ttlMs,
      keyPrefix: config.redis.keyPrefix,
    });
  }

  async execute(request: ExecuteSwapRequest, actor: string): Promise<void> {
    const key = [`${actor}:ExecuteSwap`, request.requestId];
    const fingerprint = createHash('sha256')
      .update(ExecuteSwapRequest.encode({ ...request, requestId: '' }).finish())
      .digest('hex');
    const cacheKey = `{${this.config.redis.keyPrefix}}:bench-sql:${key.join(':')}`;
    // Every request id is fresh, so both always miss; they are the service's round trips.
    if (
      (await this.redis.get(cacheKey)) ||
      (await this.pool.query(sql.LOOKUP_ANSWER_SQL, key)).rowCount
    )
      fail(`request ${request.requestId} was already answered`);

    const transfers: Transfer[] = [
      {
        giver: request.sourceFacultyId,
        receiver: request.targetFacultyId,
        week: request.sourceWeek,
      },
      {
        giver: request.targetFacultyId,
        receiver: request.sourceFacultyId,
        week: request.targetWeek,
      },
    ];
    // The weeks that change hands, of both people; the transaction also locks
    // the receivers' neighbouring weeks, which the back-to-back rule reads.
    const changed = transfers.flatMap((t) => [
      [t.giver, t.week],
      [t.receiver, t.week],
    ]);
    const neighbours = transfers.flatMap((t) =>
      [-7, 7].map((d) => [t.receiver, addDays(t.week, d)]),
    );
    const lease = await this.lock.acquire(
      changed.map(([person, week]) => `fw:${person}:${week}`),
      Date.now() + this.config.locks.waitMs,
    );
    let answer: { response: Buffer; ttlMs: number };
    try {
      answer = await this.inTransaction(async (db) => {
        const retentionMs = this.config.idempotency.retentionMs;
        await expectRows(db, 1, sql.CLAIM_KEY_SQL, [...key, fingerprint, retentionMs]);
        // The service would create missing lock rows; the bench seeds them all.
        const locked = [...changed, ...neighbours];
        await expectRows(db, locked.length, sql.LOCK_WEEKS_SQL, columnsOf(locked));
        // Fenced as it locks, as the service's write context does, before the facts are read.
        const token = lease.fencingToken;
        await expectRows(db, changed.length, sql.FENCE_WEEKS_SQL, [
          ...columnsOf(changed),
          token,
          lease.owner,
        ]);
        const facts = await readFacts(db, transfers);
        const swap = await this.move(db, request, actor, transfers, facts, token);
        // As the service does after a swap: the swapped weeks and a week either side.
        const [first, last] = [request.sourceWeek, request.targetWeek].sort();
        await db.query(sql.DETECT_SQL, [
          ...detectionSettingsOf(this.config, addDays(first!, -7), addDays(last!, 7)),
          swap.id,
          [request.sourceFacultyId, request.targetFacultyId],
        ]);
        // Stored as the service stores its answer: the swap record, structured-clone serialized.
        const response = v8.serialize(recordOf(swap, token));
        const stored = await db.query<{ ttl_ms: number }>(sql.STORE_ANSWER_SQL, [...key, response]);
        await db.query(sql.APPEND_AUDIT_SQL, [
          actor,
          'bench',
          request.requestId,
          fingerprint,
          [swap.id],
        ]);
        return { response, ttlMs: stored.rows[0]?.ttl_ms ?? 0 };
      });
    } finally {
      await lease.release();
    }
    // Not awaited, as in the service: the cache write never delays the reply.
    const cached = JSON.stringify({ f: fingerprint, r: answer.response.toString('base64') });
    void this.redis
      .set(cacheKey, cached, 'PX', Math.max(1, Math.floor(answer.ttlMs)))
      .catch(() => undefined);
  }

  /** Locks and moves the weeks' assignments and calls; inserts and returns the record. */
  private async move(
    db: Db,
    request: ExecuteSwapRequest,
    actor: string,
    transfers: readonly Transfer[],
    facts: Facts,
    fencingToken: string,
  ): Promise<Swap> {
    const holding = (t: Transfer, person: string, date: string) =>
      person === t.giver && date >= t.week && date <= addDays(t.week, 6);
    const planned = new Map(
      transfers.flatMap((t) =>
        facts.nearby
          .filter((w) => holding(t, w.personId, w.blockDate))
          .map((w) => [w.id, { ...w, to: t.receiver }]),
      ),
    );
    const rows = await db.query<{ id: string; person_id: string; version: number }>(
      sql.LOCK_ASSIGNMENTS_SQL,
      [[...planned.keys()]],
    );
    const movedAssignments = rows.rows.map((row): MovedAssignment => {
      const work = planned.get(row.id)!;
      if (row.person_id !== work.personId) fail(`assignment ${row.id} changed hands`);
      return {
        assignmentId: row.id,
        blockDate: work.blockDate,
        blockHalf: work.blockHalf,
        rotation: work.rotation,
        fromPersonId: work.personId,
        toPersonId: work.to,
        version: row.version + 1,
      };
    });
    if (movedAssignments.length !== planned.size) fail('an assignment is gone');

    const callDays = transfers.flatMap((t) => CALL_DAYS.map((d) => [t.giver, addDays(t.week, d)]));
    const calls = await db.query<{
      id: string;
      date: string;
      person_id: string;
      call_type: string;
      version: number;
    }>(sql.LOCK_CALLS_SQL, columnsOf(callDays));
    const movedCalls = calls.rows.map((call): MovedCall => {
      const t = transfers.find((x) => holding(x, call.person_id, call.date))!;
      const { id: callId, date, call_type: callType, version } = call;
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
    const { sourceFacultyId, sourceWeek, targetFacultyId, targetWeek, swapType, reason } = request;
    const swap = Swap.fromPartial({
      ...{ sourceFacultyId, sourceWeek, targetFacultyId, targetWeek, swapType, reason },
      id: randomUUID(),
      status: SwapStatus.SWAP_STATUS_EXECUTED,
      requestedAt: now,
      requestedBy: actor,
      executedAt: now,
      executedBy: actor,
      movedAssignments,
      movedCalls,
      version: 1,
    });
    // In the order of the service's flush: the insert, then the versioned updates.
    await db.query(sql.INSERT_RECORD_SQL, [
      swap.id,
      swap.sourceFacultyId,
      swap.sourceWeek,
      swap.targetFacultyId,
      swap.targetWeek,
      swap.reason,
      now,
      actor,
      JSON.stringify({ assignments: movedAssignments, calls: movedCalls }),
      fencingToken,
    ]);
    for (const [table, moved] of [
      ['call_assignment', movedCalls.map((m) => [m.callId, m.toPersonId, m.version] as const)],
      [
        'assignment',
        movedAssignments.map((m) => [m.assignmentId, m.toPersonId, m.version] as const),
      ],
    ] as const) {
      await expectRows(db, moved.length, sql.moveRowsSql(table), [
        moved.map((m) => m[0]),
        moved.map((m) => m[1]),
        moved.map((m) => m[2] - 1),
      ]);
    }
    return swap;
  }

  private async inTransaction<T>(work: (db: Db) => Promise<T>): Promise<T> {
    const db = await this.pool.connect();
    let open = false;
    try {
      await db.query('begin transaction isolation level read committed');
      open = true;
      await db.query(sql.SET_TIMEOUTS_SQL, [`${this.config.transactions.timeoutCeilingMs}ms`]);
      const result = await work(db);
      open = false;
      await db.query('commit');
      return result;
    } catch (error) {
      if (open) await db.query('rollback').catch(() => undefined);
      throw error;
    } finally {
      db.release();
    }
  }
}

/** The facts, and in place of the rules a few checks: both faculty, work to give, nobody away. */
async function readFacts(db: Db, transfers: readonly Transfer[]): Promise<Facts> {
  const { rows } = await db.query<Facts>(sql.READ_FACTS_SQL, [
    transfers.map((t) => t.giver),
    transfers.map((t) => t.receiver),
    transfers.map((t) => t.week),
  ]);
  const facts = rows[0]!;
  if (facts.people?.length !== 2 || facts.people.some((p) => p.kind !== 'faculty'))
    fail('both people must be faculty');
  if (facts.absences.length > 0) fail('a receiver is away');
  if (transfers.some((t) => !facts.nearby.some((w) => w.personId === t.giver)))
    fail('a giver has no work to give');
  return facts;
}

/** The first five parameters of DETECT_SQL: the weeks and the service's thresholds. */
export function detectionSettingsOf(config: Config, firstWeek: string, lastWeek: string) {
  const { backToBackDays, alternationWindowWeeks, maxAlternations } = config.conflicts;
  return [firstWeek, lastWeek, backToBackDays, alternationWindowWeeks * 7, maxAlternations];
}

/** Runs `text`; a row count other than `expected` means a row was missing or had moved on. */
async function expectRows(
  db: Db,
  expected: number,
  text: string,
  values: unknown[],
): Promise<void> {
  const { rowCount } = await db.query(text, values);
  if (rowCount !== expected)
    fail(`expected ${expected} rows, got ${rowCount ?? 0}: ${text.trim().slice(0, 40)}…`);
}

/** (person, date) pairs as the two arrays the statements unnest. */
function columnsOf(pairs: ReadonlyArray<readonly string[]>): [string[], string[]] {
  return [pairs.map((p) => p[0]!), pairs.map((p) => p[1]!)];
}

/** Something the bench never sets up happened: a replayed key, a stale row, a refused swap. */
export class RawSwapError extends Error {
  override name = 'RawSwapError';
}

function fail(why: string): never {
  throw new RawSwapError(why);
}

/** The swap as the service's ExecuteSwap answers it before mapping: its record. */
function recordOf(
  swap: Swap,
  fencingToken: string,
): Omit<SwapRecord, 'version'> & { version: number } {
  return {
    id: swap.id,
    sourceFacultyId: swap.sourceFacultyId,
    sourceWeek: swap.sourceWeek,
    targetFacultyId: swap.targetFacultyId,
    targetWeek: swap.targetWeek || null,
    swapType: swap.swapType === SwapType.SWAP_TYPE_ABSORB ? 'ABSORB' : 'ONE_TO_ONE',
    status: 'EXECUTED',
    reason: swap.reason,
    requestedAt: swap.requestedAt!,
    requestedBy: swap.requestedBy,
    executedAt: swap.executedAt ?? null,
    executedBy: swap.executedBy,
    rolledBackAt: null,
    rolledBackBy: null,
    rollbackReason: null,
    moves: { assignments: swap.movedAssignments, calls: swap.movedCalls },
    warnings: swap.warnings,
    fencingToken,
    version: swap.version,
  };
}
