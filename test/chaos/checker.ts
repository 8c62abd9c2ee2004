import type {
  AttemptRecord,
  EndRecord,
  HistoryRecord,
  RowState,
  StartRecord,
  StoredSwap,
} from './history';

/**
 * The offline checker of a chaos history. It knows nothing of the run that
 * wrote the history: it reads the schedule at the start, every attempt, and
 * the database and Redis at the end, and judges each property on its own.
 */

/** The verdict of one check: the anomalies it found (the first few in full) and how many. */
export interface CheckResult {
  name: string;
  passed: boolean;
  count: number;
  anomalies: string[];
}

/** The names of the checks, in the order they are reported. */
export const CHECKS = [
  'no INTERNAL or UNKNOWN',
  'per-row move chains',
  'exactly one effect per request_id',
  'byte-identical replays',
  'no change under a refused id',
  'schedule invariants',
  'no leaked connections or locks',
  'every mutation settled',
] as const;
export type CheckName = (typeof CHECKS)[number];

/** Statuses that answer a call for good: it did not and will not take effect. */
const REFUSALS = new Set([
  'INVALID_ARGUMENT',
  'FAILED_PRECONDITION',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'UNAUTHENTICATED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
]);

/** Whether `status` is a final answer (OK or a refusal), not one to retry with the same id. */
export function isDefinite(status: string): boolean {
  return status === 'OK' || REFUSALS.has(status);
}

/** The request id a chaos swap or rollback carries in its reason. */
export const REASON_PREFIX = 'chaos ';

const SHOWN = 20;

class Findings {
  readonly list: string[] = [];
  count = 0;
  add(anomaly: string): void {
    this.count++;
    if (this.list.length < SHOWN) this.list.push(anomaly);
  }
}

/** Runs every check over a history; `skip` names checks to leave out (reported as skipped by the caller). */
export function checkHistory(
  records: readonly HistoryRecord[],
  skip: ReadonlySet<string> = new Set(),
): CheckResult[] {
  const start = records.find((r): r is StartRecord => r.kind === 'start');
  const end = records.find((r): r is EndRecord => r.kind === 'end');
  if (!start || !end) throw new Error('the history has no start or no end record');
  const attempts = records.filter((r): r is AttemptRecord => r.kind === 'attempt');
  const checks: Record<CheckName, () => Findings> = {
    'no INTERNAL or UNKNOWN': () => noInternal(attempts),
    'per-row move chains': () => moveChains(start, end),
    'exactly one effect per request_id': () => oneEffect(attempts, end),
    'byte-identical replays': () => identicalReplays(attempts),
    'no change under a refused id': () => nothingUnderRefusal(attempts, end),
    'schedule invariants': () => invariants(start, end),
    'no leaked connections or locks': () => noLeaks(end),
    'every mutation settled': () => settled(attempts),
  };
  return CHECKS.filter((name) => !skip.has(name)).map((name) => {
    const found = checks[name]();
    return { name, passed: found.count === 0, count: found.count, anomalies: found.list };
  });
}

function noInternal(attempts: readonly AttemptRecord[]): Findings {
  const found = new Findings();
  for (const a of attempts) {
    if (a.status === 'INTERNAL' || a.status === 'UNKNOWN') {
      found.add(
        `${a.method} ${a.requestId ?? `op ${a.opId}`} on replica ${a.replica}: ${a.status} ${a.message}`,
      );
    }
    for (const r of a.effect?.results ?? []) {
      if (r.outcome === 'FAILED' && /internal/i.test(r.message)) {
        found.add(`AutoResolve ${a.requestId} conflict ${r.conflictId}: FAILED ${r.message}`);
      }
    }
  }
  return found;
}

/** A row's moves, stated by the stored swaps: each execution, and its inverse if rolled back. */
interface Move {
  from: string;
  to: string;
  version: number;
  by: string;
}

function movesByRow(
  swaps: readonly StoredSwap[],
  pick: (s: StoredSwap) => StoredSwap['callMoves'],
) {
  const byRow = new Map<string, Move[]>();
  const add = (id: string, move: Move) => {
    const list = byRow.get(id) ?? [];
    list.push(move);
    byRow.set(id, list);
  };
  for (const swap of swaps) {
    for (const m of pick(swap)) {
      add(m.id, { from: m.from, to: m.to, version: m.version, by: `swap ${swap.id}` });
      // A rollback refuses unless the row is still at the version the swap left it at.
      if (swap.status === 'ROLLED_BACK') {
        add(m.id, { from: m.to, to: m.from, version: m.version + 1, by: `rollback of ${swap.id}` });
      }
    }
  }
  return byRow;
}

function moveChains(start: StartRecord, end: EndRecord): Findings {
  const found = new Findings();
  const table = (
    label: string,
    before: readonly RowState[],
    after: readonly RowState[],
    moves: Map<string, Move[]>,
  ) => {
    const finalById = new Map(after.map((r) => [r.id, r]));
    const known = new Set(before.map((r) => r.id));
    for (const id of moves.keys()) {
      if (!known.has(id))
        found.add(`${label} ${id}: moved by a swap but not in the starting schedule`);
    }
    for (const row of before) {
      const last = finalById.get(row.id);
      // A row that is gone is the invariants' finding.
      if (!last) continue;
      let holder = row.personId;
      let version = row.version;
      const chain = [...(moves.get(row.id) ?? [])].sort((a, b) => a.version - b.version);
      let broken = false;
      for (const move of chain) {
        if (move.version !== version + 1 || move.from !== holder) {
          found.add(
            `${label} ${row.id}: at version ${version} held by ${holder}, but ${move.by} moved it from ${move.from} at version ${move.version}`,
          );
          broken = true;
          break;
        }
        holder = move.to;
        version = move.version;
      }
      if (!broken && (last.personId !== holder || last.version !== version)) {
        found.add(
          `${label} ${row.id}: its recorded moves end at ${holder} v${version}, the database has ${last.personId} v${last.version}`,
        );
      }
    }
  };
  table(
    'assignment',
    start.assignments,
    end.assignments,
    movesByRow(end.swaps, (s) => s.assignmentMoves),
  );
  table(
    'call',
    start.calls,
    end.calls,
    movesByRow(end.swaps, (s) => s.callMoves),
  );
  return found;
}

function requestIdIn(reason: string | null): string | undefined {
  return reason?.startsWith(REASON_PREFIX) ? reason.slice(REASON_PREFIX.length) : undefined;
}

function oneEffect(attempts: readonly AttemptRecord[], end: EndRecord): Findings {
  const found = new Findings();
  const audited = new Map<string, number>();
  for (const row of end.committedAudit) {
    const key = `${row.method} ${row.requestId}`;
    audited.set(key, (audited.get(key) ?? 0) + 1);
  }
  for (const [key, n] of audited)
    if (n > 1) found.add(`${key}: committed ${n} times (audit trail)`);

  const swapsByRequest = new Map<string, string[]>();
  const resolutionsByConflict = new Map<string, string[]>();
  for (const swap of end.swaps) {
    const requestId = requestIdIn(swap.reason);
    const conflict = /^resolves conflict (\S+)/.exec(swap.reason)?.[1];
    const [map, key] = requestId
      ? [swapsByRequest, requestId]
      : conflict
        ? [resolutionsByConflict, conflict]
        : [undefined, ''];
    if (!map) {
      found.add(
        `swap ${swap.id}: made by no chaos request and no resolution (reason "${swap.reason}")`,
      );
      continue;
    }
    map.set(key, [...(map.get(key) ?? []), swap.id]);
  }
  for (const [id, swaps] of swapsByRequest) {
    if (swaps.length > 1)
      found.add(`ExecuteSwap ${id}: ${swaps.length} swaps (${swaps.join(', ')})`);
  }
  for (const [id, swaps] of resolutionsByConflict) {
    if (swaps.length > 1)
      found.add(`conflict ${id}: resolved by ${swaps.length} swaps (${swaps.join(', ')})`);
  }

  const stored = new Map(end.swaps.map((s) => [s.id, s]));
  const sent = new Set(attempts.filter((a) => a.method === 'ExecuteSwap').map((a) => a.requestId));
  for (const id of swapsByRequest.keys()) {
    if (!sent.has(id)) found.add(`swap of request ${id}: no such ExecuteSwap was sent`);
  }
  const rollbackOwner = new Map<string, string>();
  for (const a of attempts) {
    if (a.status !== 'OK' || !a.effect?.swapId) continue;
    const swap = stored.get(a.effect.swapId);
    if (a.method === 'ExecuteSwap' || a.method === 'ResolveConflict') {
      if (!swap)
        found.add(
          `${a.method} ${a.requestId}: answered swap ${a.effect.swapId}, which is not stored`,
        );
      else if (swap.movesHash !== a.effect.movesHash) {
        found.add(
          `${a.method} ${a.requestId}: answered moves that differ from stored swap ${swap.id}`,
        );
      }
      if (a.method === 'ExecuteSwap' && swap && requestIdIn(swap.reason) !== a.requestId) {
        found.add(`ExecuteSwap ${a.requestId}: answered swap ${swap.id}, made by ${swap.reason}`);
      }
    }
    if (a.method === 'RollbackSwap') {
      if (!swap || swap.status !== 'ROLLED_BACK') {
        found.add(
          `RollbackSwap ${a.requestId}: OK, but swap ${a.effect.swapId} is ${swap?.status ?? 'not stored'}`,
        );
        continue;
      }
      const owner = requestIdIn(swap.rollbackReason);
      if (owner !== a.requestId) {
        found.add(
          `RollbackSwap ${a.requestId}: OK for swap ${swap.id}, which request ${owner ?? '?'} rolled back`,
        );
      }
      const earlier = rollbackOwner.get(swap.id);
      if (earlier && earlier !== a.requestId) {
        found.add(`swap ${swap.id}: rolled back OK by both ${earlier} and ${a.requestId}`);
      }
      rollbackOwner.set(swap.id, a.requestId ?? '');
    }
  }
  return found;
}

/**
 * Every OK answer to one request_id is the same bytes, AutoResolve's too: it
 * commits its whole answer, every conflict's outcome, under the call's id.
 */
function identicalReplays(attempts: readonly AttemptRecord[]): Findings {
  const found = new Findings();
  const hashes = new Map<string, Set<string>>();
  for (const a of attempts) {
    if (a.status !== 'OK' || !a.requestId || !a.responseHash) continue;
    const key = `${a.method} ${a.requestId}`;
    hashes.set(key, (hashes.get(key) ?? new Set()).add(a.responseHash));
  }
  for (const [key, set] of hashes) {
    if (set.size > 1) found.add(`${key}: ${set.size} different OK answers`);
  }
  return found;
}

function nothingUnderRefusal(attempts: readonly AttemptRecord[], end: EndRecord): Findings {
  const found = new Findings();
  const byId = new Map<string, AttemptRecord[]>();
  for (const a of attempts) {
    if (a.requestId) byId.set(a.requestId, [...(byId.get(a.requestId) ?? []), a]);
  }
  const audited = new Set(end.committedAudit.map((r) => r.requestId));
  const keys = new Set(end.idempotencyKeys);
  const swapOf = new Set<string>();
  for (const s of end.swaps) {
    for (const reason of [s.reason, s.rollbackReason]) {
      const id = requestIdIn(reason);
      if (id) swapOf.add(id);
    }
  }
  for (const [id, list] of byId) {
    const refusal = list.find((a) => REFUSALS.has(a.status));
    if (!refusal) continue;
    const what = `${refusal.method} ${id}, refused ${refusal.status} ${refusal.reason}`;
    if (list.some((a) => a.status === 'OK')) found.add(`${what}: also answered OK`);
    else if (audited.has(id)) found.add(`${what}: committed (audit trail)`);
    else if (keys.has(id)) found.add(`${what}: its idempotency key is stored`);
    else if (swapOf.has(id)) found.add(`${what}: a stored swap names it`);
  }
  return found;
}

function invariants(start: StartRecord, end: EndRecord): Findings {
  const found = new Findings();
  if (end.invariants.doubleBooked > 0)
    found.add(`${end.invariants.doubleBooked} double-booked (block, person)`);
  if (end.invariants.blocksWithoutOneFaculty > 0) {
    found.add(
      `${end.invariants.blocksWithoutOneFaculty} blocks without exactly one faculty member`,
    );
  }
  for (const [label, before, after] of [
    ['assignments', start.assignments, end.assignments],
    ['calls', start.calls, end.calls],
  ] as const) {
    if (before.length !== after.length)
      found.add(`${label}: ${before.length} at the start, ${after.length} at the end`);
    const ids = new Set(after.map((r) => r.id));
    const missing = before.filter((r) => !ids.has(r.id)).length;
    if (missing > 0) found.add(`${label}: ${missing} rows of the start are gone`);
  }
  return found;
}

function noLeaks(end: EndRecord): Findings {
  const found = new Findings();
  if (end.leaks.idleInTransaction > 0)
    found.add(`${end.leaks.idleInTransaction} connections idle in transaction`);
  for (const session of end.leaks.idleSessions ?? []) found.add(`idle in transaction: ${session}`);
  for (const lock of end.leaks.pgLocks) found.add(`PostgreSQL lock still held: ${lock}`);
  for (const key of end.leaks.redisLockKeys) found.add(`Redis lock key left: ${key}`);
  return found;
}

function settled(attempts: readonly AttemptRecord[]): Findings {
  const found = new Findings();
  const last = new Map<number, AttemptRecord>();
  for (const a of attempts) {
    if (!a.requestId) continue;
    const seen = last.get(a.opId);
    if (!seen || a.end >= seen.end) last.set(a.opId, a);
  }
  const definite = new Set<number>();
  for (const a of attempts) if (isDefinite(a.status)) definite.add(a.opId);
  for (const [op, a] of last) {
    if (!definite.has(op))
      found.add(`${a.method} ${a.requestId}: no final answer; last ${a.status} ${a.reason}`);
  }
  return found;
}
