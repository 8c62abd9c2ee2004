/** Counts kept by the {@link TransactionRunner}, read by `stats()` and exported as metrics. */
export interface TransactionStats {
  /** Units of work started (each may take several attempts). */
  started: number;
  committed: number;
  /** Attempts rolled back, for any reason. */
  rolledBack: number;
  /** Attempts retried, by the reason they failed. */
  retries: Record<string, number>;
  /** Units of work that failed because every attempt hit a retryable error. */
  exhausted: number;
  deadlineExceeded: number;
  /** Wall time of whole units of work, from start to commit or final failure. */
  durationMs: { count: number; total: number; max: number };
}

export function emptyTransactionStats(): TransactionStats {
  return {
    started: 0,
    committed: 0,
    rolledBack: 0,
    retries: {},
    exhausted: 0,
    deadlineExceeded: 0,
    durationMs: { count: 0, total: 0, max: 0 },
  };
}
