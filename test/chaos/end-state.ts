import { setTimeout as sleep } from 'node:timers/promises';
import { ADMIN_APPLICATION, type ChaosDatabase } from './chaos-database';
import { scheduleRows } from './chaos-schedule';
import type { EndRecord, StoredSwap } from './history';
import { isStoredRefusal } from '../../src/write-path/write-path';
import { movesDigest } from './moves-digest';
import type { RedisInstance } from './redis-instance';

interface StoredMoves {
  assignments: {
    assignmentId: string;
    fromPersonId: string;
    toPersonId: string;
    version: number;
  }[];
  calls: { callId: string; fromPersonId: string; toPersonId: string; version: number }[];
}

/**
 * Reads what the checker judges at the end of a run, once every call has
 * settled and with the replicas still up (so a leaked session or lock would
 * still be there): the schedule, every swap record, the audit trail's
 * committed calls, the idempotency keys, the invariants, and what is still
 * held in PostgreSQL and Redis.
 */
export async function readEndState(
  database: ChaosDatabase,
  redis: RedisInstance,
  lockKeyPrefix: string,
  firstWeek: string,
  lastWeek: string,
  /** Which replica's proxy a session's client port belongs to. */
  replicaOfPort: (port: number) => number | undefined,
): Promise<EndRecord> {
  const query = <R extends object>(sql: string, values?: unknown[]) =>
    database.query<R>(sql, values);
  const rows = await scheduleRows(query);
  const swaps = await query<{
    id: string;
    status: string;
    reason: string;
    rollback_reason: string | null;
    moves: StoredMoves;
  }>(`select id, status, reason, rollback_reason, moves from swap_record order by id`);
  const stored: StoredSwap[] = swaps.map((s) => {
    const assignmentMoves = s.moves.assignments.map((m) => ({
      id: m.assignmentId,
      from: m.fromPersonId,
      to: m.toPersonId,
      version: m.version,
    }));
    const callMoves = s.moves.calls.map((m) => ({
      id: m.callId,
      from: m.fromPersonId,
      to: m.toPersonId,
      version: m.version,
    }));
    return {
      id: s.id,
      status: s.status,
      reason: s.reason,
      rollbackReason: s.rollback_reason,
      movesHash: movesDigest(assignmentMoves, callMoves),
      assignmentMoves,
      callMoves,
    };
  });
  const committedAudit = await query<{ method: string; requestId: string }>(
    `select method, request_id as "requestId" from audit_event where status = 'OK' and not replayed and request_id is not null`,
  );
  // A key whose answer is a refusal (FAILED_PRECONDITION committed under it) holds no change.
  const keys = (
    await query<{ request_id: string; response: Buffer | null }>(
      `select request_id, response from idempotency_record`,
    )
  ).filter((k) => !k.response || !isStoredRefusal(k.response));
  const conflicts = await query<{ id: string; status: string; resolutionSwapId: string | null }>(
    `select id, status, resolution_swap_id as "resolutionSwapId" from conflict_alert order by id`,
  );
  const [doubled] = await query<{ n: number }>(
    `select count(*)::int as n from (select 1 from assignment group by block_id, person_id having count(*) > 1) x`,
  );
  const [unstaffed] = await query<{ n: number }>(
    `select count(*)::int as n from (
       select b.id from block b
       left join assignment a on a.block_id = b.id
       left join person p on p.id = a.person_id and p.kind = 'faculty'
       where b.date between $1::date and ($2::date + 6)
       group by b.id having count(p.id) <> 1) x`,
    [firstWeek, lastWeek],
  );
  await quiesce(database);
  const idle = await query<{
    pid: number;
    port: number;
    xact_s: number;
    idle_s: number;
    query: string;
  }>(
    `select pid, client_port as port,
       extract(epoch from now() - xact_start)::int as xact_s,
       extract(epoch from now() - state_change)::int as idle_s,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 160) as query
     from pg_stat_activity
     where datname = current_database() and state like 'idle in transaction%'
       and application_name <> $1 and now() - xact_start > $2 * interval '1 ms'`,
    [ADMIN_APPLICATION, LEAK_AGE_MS],
  );
  return {
    kind: 'end',
    ...rows,
    swaps: stored,
    committedAudit,
    idempotencyKeys: keys.map((k) => k.request_id),
    conflicts,
    invariants: { doubleBooked: doubled?.n ?? 0, blocksWithoutOneFaculty: unstaffed?.n ?? 0 },
    leaks: {
      idleInTransaction: idle.length,
      idleSessions: idle.map(
        (s) =>
          `pid ${s.pid} of replica ${replicaOfPort(s.port) ?? '?'}, in a transaction for ${s.xact_s} s, idle for ${s.idle_s} s after: ${s.query}`,
      ),
      pgLocks: await lingeringLocks(database),
      redisLockKeys: await redis.keys(`{${lockKeyPrefix}}:lock:*`),
    },
  };
}

/**
 * Longer than any transaction may last (the service caps every statement and
 * lock wait at TX_TIMEOUT_CEILING_MS, 10 s by default): a transaction older
 * than this is leaked, not slow.
 */
const LEAK_AGE_MS = 30_000;
const QUIESCE_MS = 60_000;

/**
 * Waits (at most a minute) until no replica session is running a statement or
 * has a transaction open: work of calls whose callers gave up can go on for a
 * while after the last answer, and is not a leak.
 */
async function quiesce(database: ChaosDatabase): Promise<void> {
  const until = Date.now() + QUIESCE_MS;
  while (Date.now() < until) {
    const [busy] = await database.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity
       where datname = current_database() and pid <> pg_backend_pid() and application_name <> $1
         and (state = 'active' or xact_start is not null) and now() - coalesce(xact_start, query_start) < $2 * interval '1 ms'`,
      [ADMIN_APPLICATION, LEAK_AGE_MS],
    );
    if ((busy?.n ?? 0) === 0) return;
    await sleep(1000);
  }
}

/** Locks held by replica sessions whose transaction is older than any call's may be. */
async function lingeringLocks(database: ChaosDatabase): Promise<string[]> {
  return (
    await database.query<{ lock: string }>(
      `select concat_ws(' ', l.pid, l.locktype, l.mode, l.relation::regclass, l.objid) as lock
       from pg_locks l join pg_stat_activity a on a.pid = l.pid
       where a.datname = current_database() and l.pid <> pg_backend_pid()
         and a.application_name <> $1 and l.locktype <> 'virtualxid' and l.granted
         and now() - a.xact_start > $2 * interval '1 ms'`,
      [ADMIN_APPLICATION, LEAK_AGE_MS],
    )
  ).map((r) => r.lock);
}
