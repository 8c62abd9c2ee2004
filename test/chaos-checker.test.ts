import { describe, expect, it } from 'vitest';
import { type CheckName, CHECKS, checkHistory } from './chaos/checker';
import type { AttemptRecord, EndRecord, HistoryRecord, StartRecord } from './chaos/history';
import { movesDigest } from './chaos/moves-digest';

/**
 * The chaos checker on hand-made histories: a clean one passes every check,
 * and each anomaly fails the check that looks for it (and only that one).
 */

const P = 'person-p';
const Q = 'person-q';
const R1 = '00000000-0000-4000-8000-000000000001';
const R2 = '00000000-0000-4000-8000-000000000002';
const R3 = '00000000-0000-4000-8000-000000000003';
const R7 = '00000000-0000-4000-8000-000000000007';
const S1 = 'swap-1';
const MOVES = {
  a: [{ id: 'a1', from: P, to: Q, version: 2 }],
  c: [{ id: 'c1', from: P, to: Q, version: 2 }],
};
const DIGEST = movesDigest(MOVES.a, MOVES.c);

function attempt(
  fields: Partial<AttemptRecord> & Pick<AttemptRecord, 'opId' | 'method' | 'status'>,
): AttemptRecord {
  return {
    kind: 'attempt',
    requestId: null,
    request: {},
    replica: 0,
    start: 0,
    end: 1,
    reason: '',
    message: '',
    replayed: false,
    ...fields,
  };
}

/**
 * P holds a1 and c1; ExecuteSwap R1 moves both to Q (its first attempt is
 * UNAVAILABLE, its retry commits, a duplicate replays the same bytes);
 * RollbackSwap R2 moves them back; ExecuteSwap R3 is refused.
 */
function cleanHistory(): { start: StartRecord; attempts: AttemptRecord[]; end: EndRecord } {
  const start: StartRecord = {
    kind: 'start',
    assignments: [{ id: 'a1', personId: P, version: 1 }],
    calls: [{ id: 'c1', personId: P, version: 1 }],
  };
  const swapEffect = { swapId: S1, swapStatus: 'EXECUTED', movesHash: DIGEST };
  const attempts = [
    attempt({ opId: 1, requestId: R1, method: 'ExecuteSwap', status: 'UNAVAILABLE', replica: 0 }),
    attempt({
      opId: 1,
      requestId: R1,
      method: 'ExecuteSwap',
      status: 'OK',
      replica: 1,
      responseHash: 'h1',
      effect: swapEffect,
    }),
    attempt({
      opId: 1,
      requestId: R1,
      method: 'ExecuteSwap',
      status: 'OK',
      replica: 2,
      replayed: true,
      responseHash: 'h1',
      effect: swapEffect,
    }),
    attempt({ opId: 2, method: 'GetSwap', status: 'OK', responseHash: 'g' }),
    attempt({
      opId: 3,
      requestId: R2,
      method: 'RollbackSwap',
      status: 'OK',
      responseHash: 'h2',
      effect: { swapId: S1, swapStatus: 'ROLLED_BACK' },
    }),
    attempt({
      opId: 4,
      requestId: R3,
      method: 'ExecuteSwap',
      status: 'FAILED_PRECONDITION',
      reason: 'NO_ASSIGNMENTS',
    }),
  ];
  const end: EndRecord = {
    kind: 'end',
    assignments: [{ id: 'a1', personId: P, version: 3 }],
    calls: [{ id: 'c1', personId: P, version: 3 }],
    swaps: [
      {
        id: S1,
        status: 'ROLLED_BACK',
        reason: `chaos ${R1}`,
        rollbackReason: `chaos ${R2}`,
        movesHash: DIGEST,
        assignmentMoves: MOVES.a,
        callMoves: MOVES.c,
      },
    ],
    committedAudit: [
      { method: 'ExecuteSwap', requestId: R1 },
      { method: 'RollbackSwap', requestId: R2 },
    ],
    idempotencyKeys: [R1, R2],
    conflicts: [],
    invariants: { doubleBooked: 0, blocksWithoutOneFaculty: 0 },
    leaks: { idleInTransaction: 0, pgLocks: [], redisLockKeys: [] },
  };
  return { start, attempts, end };
}

type History = ReturnType<typeof cleanHistory>;

function failedChecks(history: History): string[] {
  const records: HistoryRecord[] = [history.start, ...history.attempts, history.end];
  return checkHistory(records)
    .filter((r) => !r.passed)
    .map((r) => r.name);
}

function withAnomaly(change: (h: History) => void): string[] {
  const history = cleanHistory();
  change(history);
  return failedChecks(history);
}

const anomalies: [CheckName, string, (h: History) => void][] = [
  [
    'no INTERNAL or UNKNOWN',
    'an attempt answered INTERNAL',
    (h) => h.attempts.push(attempt({ opId: 9, method: 'ListSwaps', status: 'INTERNAL' })),
  ],
  [
    'no INTERNAL or UNKNOWN',
    'an attempt answered UNKNOWN',
    (h) => h.attempts.push(attempt({ opId: 9, method: 'GetSwap', status: 'UNKNOWN' })),
  ],
  [
    'no INTERNAL or UNKNOWN',
    'an AutoResolve result FAILED with an internal error',
    (h) =>
      h.attempts.push(
        attempt({
          opId: 9,
          requestId: '00000000-0000-4000-8000-000000000008',
          method: 'AutoResolve',
          status: 'OK',
          effect: {
            results: [
              { conflictId: 'k', outcome: 'FAILED', swapId: '', message: 'internal error' },
            ],
          },
        }),
      ),
  ],
  [
    'per-row move chains',
    'a row changed holder with no swap to say so (a lost update)',
    (h) => (h.end.assignments[0]!.personId = Q),
  ],
  [
    'per-row move chains',
    'a call moved by a swap whose version skips one',
    (h) => (h.end.swaps[0]!.callMoves = [{ id: 'c1', from: P, to: Q, version: 3 }]),
  ],
  [
    'exactly one effect per request_id',
    'the audit trail has two commits of one request_id',
    (h) => h.end.committedAudit.push({ method: 'ExecuteSwap', requestId: R1 }),
  ],
  [
    'exactly one effect per request_id',
    'two stored swaps carry one request_id (the second moved nothing)',
    (h) =>
      h.end.swaps.push({
        ...h.end.swaps[0]!,
        id: 'swap-2',
        status: 'EXECUTED',
        rollbackReason: null,
        assignmentMoves: [],
        callMoves: [],
        movesHash: movesDigest([], []),
      }),
  ],
  [
    'exactly one effect per request_id',
    'an OK answer names a swap that is not stored',
    (h) => (h.attempts[1]!.effect = { swapId: 'swap-lost', movesHash: DIGEST }),
  ],
  [
    'byte-identical replays',
    'a replay whose bytes differ from the first answer',
    (h) => (h.attempts[2]!.responseHash = 'h1-different'),
  ],
  [
    'byte-identical replays',
    'an AutoResolve retry whose outcomes differ from the first answer',
    (h) => {
      const needsHuman = { conflictId: 'k1', outcome: 'NEEDS_HUMAN', swapId: '', message: '' };
      const again = { ...needsHuman, outcome: 'RESOLVED', swapId: 'swap-k1' };
      for (const [hash, result] of [
        ['r1', needsHuman],
        ['r2', again],
      ] as const) {
        h.attempts.push(
          attempt({
            opId: 7,
            requestId: R7,
            method: 'AutoResolve',
            status: 'OK',
            responseHash: hash,
            effect: { results: [result] },
          }),
        );
      }
    },
  ],
  [
    'no change under a refused id',
    'a refused request whose idempotency key is stored',
    (h) => h.end.idempotencyKeys.push(R3),
  ],
  [
    'no change under a refused id',
    'a retry of a committed request refused IDEMPOTENCY_KEY_REUSED',
    (h) =>
      h.attempts.push(
        attempt({
          opId: 1,
          requestId: R1,
          method: 'ExecuteSwap',
          status: 'INVALID_ARGUMENT',
          reason: 'IDEMPOTENCY_KEY_REUSED',
        }),
      ),
  ],
  [
    'no change under a refused id',
    'a refused request that the audit trail records as committed',
    (h) => h.end.committedAudit.push({ method: 'ExecuteSwap', requestId: R3 }),
  ],
  ['schedule invariants', 'a double-booked block', (h) => (h.end.invariants.doubleBooked = 1)],
  [
    'schedule invariants',
    'a block left without its faculty member',
    (h) => (h.end.invariants.blocksWithoutOneFaculty = 1),
  ],
  [
    'schedule invariants',
    'an assignment row gone (counts changed)',
    (h) => {
      h.start.assignments.push({ id: 'a2', personId: Q, version: 1 });
    },
  ],
  [
    'no leaked connections or locks',
    'a connection idle in transaction',
    (h) => (h.end.leaks.idleInTransaction = 1),
  ],
  [
    'no leaked connections or locks',
    'a row lock still held',
    (h) => h.end.leaks.pgLocks.push('4242 relation RowExclusiveLock assignment'),
  ],
  [
    'no leaked connections or locks',
    'a Redis lock key left',
    (h) => h.end.leaks.redisLockKeys.push('{chaos}:lock:fw:x:2027-01-04'),
  ],
  [
    'every mutation settled',
    'a mutation that never got a final answer',
    (h) =>
      h.attempts.push(
        attempt({
          opId: 9,
          requestId: '00000000-0000-4000-8000-000000000009',
          method: 'AcknowledgeConflict',
          status: 'DEADLINE_EXCEEDED',
        }),
      ),
  ],
];

describe('the chaos history checker', () => {
  it('passes a clean history on every check', () => {
    expect(failedChecks(cleanHistory())).toEqual([]);
  });

  it.each(anomalies)('%s fails on %s', (check, _what, change) => {
    expect(withAnomaly(change)).toEqual([check]);
  });

  it('has an anomaly for every check', () => {
    expect(new Set(anomalies.map(([check]) => check))).toEqual(new Set(CHECKS));
  });
});
