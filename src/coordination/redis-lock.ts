import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockAcquireTimeoutError, LockLostError, LockNotHeldError } from '../domain/errors';
import { type LockRedisClient, lockCommands } from './redis-lock-scripts';

export interface RedisLockOptions {
  /** Lease length; the lease extends itself every ttl/3 while held. */
  ttlMs: number;
  /** Key prefix, used as the hash tag that keeps all keys in one Cluster slot. */
  keyPrefix: string;
  retryBaseMs?: number;
  retryMaxMs?: number;
  random?: () => number;
}

/**
 * A lease on several keys at once. Its `signal` fires with a LockLostError as
 * soon as the lease can no longer be trusted, so work under it can stop before
 * it commits.
 */
export class RedisLease {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private released = false;
  /** The extension under way, if any: release waits for it, so it cannot land afterwards. */
  private extending: Promise<void> | undefined;
  /** Epoch ms past which the lease no longer extends itself; see {@link stopExtendingAt}. */
  private extendUntil = Number.POSITIVE_INFINITY;

  constructor(
    private readonly lock: RedisLock,
    /** The Redis keys, sorted. */
    readonly keys: readonly string[],
    /** The random owner token stored in every key: it names this one grant. */
    readonly owner: string,
    /**
     * The writer's fencing token, from a counter that increases with every grant.
     * A Redis that lost the counter can repeat a token; the owner tells such
     * grants apart.
     */
    readonly fencingToken: string,
    ttlMs: number,
  ) {
    this.timer = setInterval(
      () => {
        if (this.extending) return;
        if (Date.now() >= this.extendUntil) {
          this.lose('its holder outlived the time it was granted for', undefined);
          return;
        }
        this.extending = this.extend()
          .catch((error: unknown) =>
            this.lose(error instanceof LockLostError ? error.why : 'extension failed', error),
          )
          .finally(() => (this.extending = undefined));
      },
      Math.max(1, Math.floor(ttlMs / 3)),
    );
    // A lease must never keep the process alive on its own.
    this.timer.unref();
  }

  /** Fires with a LockLostError when the lease is lost. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /**
   * The lease stops extending itself at `epochMs` (the holder's budget, plus a
   * grace): a holder stuck past it loses the lease (its signal fires), and the
   * keys expire a ttl later at the latest, so no stuck call holds them for good.
   */
  stopExtendingAt(epochMs: number): void {
    this.extendUntil = epochMs;
  }

  /** Pushes the expiry out by a full ttl; fails (and aborts) if any key is no longer ours. */
  async extend(): Promise<void> {
    if (this.released) return;
    const ok = await this.lock.extendKeys(this.keys, this.owner);
    if (!ok) {
      const error = new LockLostError(this.keys, 'a key expired or was taken by another owner');
      this.lose(error.why, error);
      throw error;
    }
  }

  /** Releases every key still ours; throws LockNotHeldError if some were not. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    // An extension that fails after the work is done says nothing about the
    // work: let it finish first (lose() ignores it once released).
    await this.extending;
    const count = await this.lock.releaseKeys(this.keys, this.owner);
    if (count !== this.keys.length) throw new LockNotHeldError(this.keys, count);
  }

  private lose(why: string, cause: unknown): void {
    clearInterval(this.timer);
    if (this.released) return;
    if (!this.controller.signal.aborted)
      this.controller.abort(new LockLostError(this.keys, why, { cause }));
  }
}

/**
 * A distributed lock on Redis: `SET key token NX PX ttl` for every key in one
 * script (all or nothing), owner-only release and extension, a fencing token
 * from a counter on every grant, and blocking acquisition with exponential
 * backoff and full jitter that never waits past the caller's limit.
 */
export class RedisLock {
  private readonly commands;
  private readonly counterKey: string;
  private fencingFloor = 0n;

  constructor(
    client: LockRedisClient,
    private readonly options: RedisLockOptions,
  ) {
    this.commands = lockCommands(client);
    this.counterKey = `{${options.keyPrefix}}:fencing`;
  }

  /** The Redis key for a lock name; the prefix is a hash tag. */
  keyOf(name: string): string {
    return `{${this.options.keyPrefix}}:lock:${name}`;
  }

  /** One attempt: the lease, or undefined when any key is held by someone else. */
  async tryAcquire(names: readonly string[]): Promise<RedisLease | undefined> {
    const keys = [...new Set(names.map((n) => this.keyOf(n)))].sort();
    const owner = randomUUID();
    const token = await this.commands.swapLockAcquire(
      keys.length + 1,
      ...keys,
      this.counterKey,
      owner,
      this.options.ttlMs,
      this.fencingFloor.toString(),
    );
    if (!token) return undefined;
    this.raiseFencingFloor(String(token));
    return new RedisLease(this, keys, owner, String(token), this.options.ttlMs);
  }

  /**
   * Retries until the lease is granted or `waitUntil` (epoch ms) passes, then
   * throws LockAcquireTimeoutError. Redis errors are thrown at once.
   */
  async acquire(
    names: readonly string[],
    waitUntil: number,
    signal?: AbortSignal,
  ): Promise<RedisLease> {
    const started = Date.now();
    const base = this.options.retryBaseMs ?? 5;
    const max = this.options.retryMaxMs ?? 200;
    const random = this.options.random ?? Math.random;
    for (let attempt = 1; ; attempt++) {
      const lease = await this.tryAcquire(names);
      if (lease) return lease;
      const left = waitUntil - Date.now();
      const delay = Math.round(random() * Math.min(max, base * 2 ** (attempt - 1)));
      if (left <= 0 || signal?.aborted) {
        throw new LockAcquireTimeoutError(names, attempt, Date.now() - started);
      }
      await sleep(Math.min(delay, left), undefined, signal ? { signal } : undefined).catch(
        () => undefined,
      );
    }
  }

  /**
   * Tokens below this are never handed out. The database reports the highest
   * token it has recorded, so a Redis that lost its counter resumes above it.
   */
  raiseFencingFloor(token: string): void {
    const value = BigInt(token);
    if (value > this.fencingFloor) this.fencingFloor = value;
  }

  /** @internal */
  async extendKeys(keys: readonly string[], owner: string): Promise<boolean> {
    return (
      (await this.commands.swapLockExtend(keys.length, ...keys, owner, this.options.ttlMs)) === 1
    );
  }

  /** @internal */
  async releaseKeys(keys: readonly string[], owner: string): Promise<number> {
    return this.commands.swapLockRelease(keys.length, ...keys, owner);
  }
}
