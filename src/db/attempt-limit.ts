/** Why {@link AttemptLimit.within} gave up: the limit passed first. */
export class AttemptLimitExpired extends Error {
  constructor() {
    super('the attempt ran past its limit');
  }
}

/**
 * A point in time by which a database attempt is over, whatever its
 * connection does. `within` races a step against it; at expiry the expiry
 * actions run (destroying the attempt's connection), and every step raced
 * against it rejects with AttemptLimitExpired.
 */
export class AttemptLimit {
  private readonly timer: NodeJS.Timeout;
  private readonly actions: (() => void)[] = [];
  private readonly reached: Promise<never>;
  private fired = false;

  /** `endBy` is epoch milliseconds. */
  constructor(endBy: number) {
    let fire!: () => void;
    this.reached = new Promise<never>((_resolve, reject) => {
      fire = () => reject(new AttemptLimitExpired());
    });
    // Raced against, maybe never; it must not count as unhandled.
    this.reached.catch(() => undefined);
    this.timer = setTimeout(
      () => {
        this.fired = true;
        for (const action of this.actions.splice(0)) action();
        fire();
      },
      Math.max(0, endBy - Date.now()),
    );
    // A limit must never keep the process alive on its own.
    this.timer.unref();
  }

  /** Whether the limit has passed. */
  get expired(): boolean {
    return this.fired;
  }

  /** Runs `action` at expiry (at once if the limit has passed). */
  onExpiry(action: () => void): void {
    if (this.fired) action();
    else this.actions.push(action);
  }

  /** `step`, unless the limit passes first: then AttemptLimitExpired. */
  within<T>(step: Promise<T>): Promise<T> {
    return Promise.race([step, this.reached]);
  }

  /** Cancels the limit: nothing runs at expiry any more. */
  clear(): void {
    clearTimeout(this.timer);
    this.actions.length = 0;
  }
}
