/** The lock could not be had within the wait budget: others hold it. */
export class LockAcquireTimeoutError extends Error {
  override name = 'LockAcquireTimeoutError';
  constructor(
    readonly keys: readonly string[],
    readonly attempts: number,
    readonly waitedMs: number,
  ) {
    super(
      `could not lock ${keys.join(', ')} after ${attempts} attempts in ${Math.round(waitedMs)} ms`,
    );
  }
}

/** A lease stopped being ours while work ran under it (expired, or an extension failed). */
export class LockLostError extends Error {
  override name = 'LockLostError';
  constructor(
    readonly keys: readonly string[],
    readonly why: string,
    options?: ErrorOptions,
  ) {
    super(`lost the lock on ${keys.join(', ')}: ${why}`, options);
  }
}

/** Release or extension of a lock that this owner does not hold (any more). */
export class LockNotHeldError extends Error {
  override name = 'LockNotHeldError';
  constructor(
    readonly keys: readonly string[],
    readonly heldCount: number,
  ) {
    super(`released a lock it no longer held: ${heldCount} of ${keys.length} keys were still ours`);
  }
}
