/**
 * How long one call may take, and whether it has been abandoned. Transport
 * derives it from the gRPC deadline; every layer below spends from it, so no
 * retry, lock wait or SQL statement outlives the caller's patience.
 */
export interface CallBudget {
  /** Epoch milliseconds after which the caller no longer waits. */
  readonly deadline: number;
  /** Fires when the caller cancels, or when a lock the call depends on is lost. */
  readonly signal: AbortSignal;
}

export function remainingMs(budget: CallBudget, now = Date.now()): number {
  return budget.deadline - now;
}

/** A budget for work that no caller waits on (CLI, seed, tests). */
export function budgetOf(
  ms: number,
  signal: AbortSignal = new AbortController().signal,
): CallBudget {
  return { deadline: Date.now() + ms, signal };
}
