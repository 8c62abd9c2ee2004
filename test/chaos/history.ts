import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';

/**
 * The history of one chaos run, as JSON lines: the schedule at the start,
 * every attempt of every call and how it ended, every fault injected, and the
 * database and Redis as they were found at the end. The checker reads nothing
 * else, so a saved history can be checked again offline.
 */

/** A row's holder and version. */
export interface RowState {
  id: string;
  personId: string;
  version: number;
}

/** What a call's OK answer committed, in the few fields the checker compares. */
export interface Effect {
  swapId?: string;
  swapStatus?: string;
  /** Hash of the answer's moved rows, to compare with the stored record's. */
  movesHash?: string;
  conflictId?: string;
  conflictStatus?: string;
  /** AutoResolve: each conflict's outcome. */
  results?: { conflictId: string; outcome: string; swapId: string; message: string }[];
}

/** One attempt of one call on one replica. */
export interface AttemptRecord {
  kind: 'attempt';
  /** The logical operation; its attempts share it (and the request_id, when it has one). */
  opId: number;
  requestId: string | null;
  method: string;
  request: unknown;
  replica: number;
  /** Milliseconds since the run started. */
  start: number;
  end: number;
  /** A gRPC status name, or `CLIENT_ERROR` when the call failed without one. */
  status: string;
  reason: string;
  message: string;
  replayed: boolean;
  /** SHA-256 of the response bytes exactly as received (OK only). */
  responseHash?: string;
  effect?: Effect;
}

/** One injected fault. */
export interface FaultRecord {
  kind: 'fault';
  fault: string;
  target: string;
  start: number;
  end: number;
  error?: string;
}

/** The schedule before the first call. */
export interface StartRecord {
  kind: 'start';
  assignments: RowState[];
  calls: RowState[];
}

/** A swap record as stored. */
export interface StoredSwap {
  id: string;
  status: string;
  reason: string;
  rollbackReason: string | null;
  movesHash: string;
  assignmentMoves: { id: string; from: string; to: string; version: number }[];
  callMoves: { id: string; from: string; to: string; version: number }[];
}

/** The database and Redis once every call had settled, read with the replicas still up. */
export interface EndRecord {
  kind: 'end';
  assignments: RowState[];
  calls: RowState[];
  swaps: StoredSwap[];
  /** The ids of committed (not replayed) mutating calls, from the audit trail. */
  committedAudit: { method: string; requestId: string }[];
  /** The request ids of every stored idempotency key. */
  idempotencyKeys: string[];
  conflicts: { id: string; status: string; resolutionSwapId: string | null }[];
  invariants: {
    doubleBooked: number;
    /** Blocks of the chaos schedule that do not have exactly one faculty member. */
    blocksWithoutOneFaculty: number;
  };
  leaks: {
    idleInTransaction: number;
    /** Each session idle in transaction: pid, whose it is, for how long, and its last statement. */
    idleSessions?: string[];
    /** Locks held by sessions other than the reader's, seen twice a second apart. */
    pgLocks: string[];
    redisLockKeys: string[];
  };
}

/** Figures that are not checks: replica memory. */
export interface ReplicaRecord {
  kind: 'replicas';
  maxRssMb: number[];
  restarts: number[];
}

export type HistoryRecord = AttemptRecord | FaultRecord | StartRecord | EndRecord | ReplicaRecord;

/** Appends records to a JSON-lines file as they happen. */
export class HistoryWriter {
  private readonly stream: WriteStream;

  constructor(readonly file: string) {
    this.stream = createWriteStream(file, { flags: 'w' });
  }

  write(record: HistoryRecord): void {
    this.stream.write(`${JSON.stringify(record)}\n`);
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) =>
      this.stream.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
  }
}

/** Every record of a saved history, in order. */
export function readHistory(file: string): HistoryRecord[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, i) => {
      try {
        return JSON.parse(line) as HistoryRecord;
      } catch (error) {
        throw new Error(`${file}:${i + 1}: not a JSON line`, { cause: error });
      }
    });
}
