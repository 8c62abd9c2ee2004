import type { Redis } from 'ioredis';
import Redlock, { ExecutionError, ResourceLockedError } from 'redlock';
import { Mutex } from 'redis-semaphore';
import { RedisLock } from '../src/coordination/redis-lock';

/** Gives back what one attempt took. */
export type Release = () => Promise<void>;

/** One lock library, driven the same way as the others. */
export interface LockContender {
  readonly name: string;
  /** How it holds several keys at once, and anything else that shapes its numbers. */
  readonly notes: string;
  /**
   * One attempt, no waiting: every key or none. Resolves to the release, or to
   * undefined when some key is held by someone else.
   */
  tryLock(names: readonly string[]): Promise<Release | undefined>;
}

/**
 * Our RedisLock: one script takes every key and a fencing token; the lease
 * starts its extension timer (ttl/3) and its AbortController. `tryAcquire` is
 * one attempt; `acquire`, which the service calls, only loops around it.
 */
export function ourContender(client: Redis, keyPrefix: string, ttlMs: number): LockContender {
  const lock = new RedisLock(client, { ttlMs, keyPrefix });
  return {
    name: 'ours',
    notes:
      'one Lua script sets every key (all or nothing) and bumps the fencing counter; tryAcquire, no retry',
    async tryLock(names) {
      const lease = await lock.tryAcquire(names);
      return lease && (() => lease.release());
    },
  };
}

/** node-redlock v5 on a single Redis, no retries: `acquire(keys, ttl)`, `lock.release()`. */
export function redlockContender(client: Redis, keyPrefix: string, ttlMs: number): LockContender {
  const redlock = new Redlock([client], { retryCount: 0 });
  const keyOf = (name: string) => `{${keyPrefix}}:redlock:${name}`;
  return {
    name: 'redlock',
    notes: 'one Lua script checks every key, then sets them all; retryCount 0',
    async tryLock(names) {
      try {
        const lock = await redlock.acquire(names.map(keyOf), ttlMs);
        return async () => void (await lock.release());
      } catch (error) {
        if (await wasHeldElsewhere(error)) return undefined;
        throw error;
      }
    },
  };
}

/** A refusal means a vote against because a key was taken, not a Redis failure. */
async function wasHeldElsewhere(error: unknown): Promise<boolean> {
  if (!(error instanceof ExecutionError)) return false;
  const stats = await Promise.all(error.attempts);
  return stats.every((s) =>
    [...s.votesAgainst.values()].every((e) => e instanceof ResourceLockedError),
  );
}

/**
 * redis-semaphore's Mutex, one per key: it has no multi-key mutex
 * (MultiSemaphore takes several permits of one semaphore key), so several keys
 * are taken one after another in sorted order and released together. No
 * refresh timer (`refreshInterval: 0`), a single attempt per key.
 */
export function semaphoreContender(client: Redis, keyPrefix: string, ttlMs: number): LockContender {
  const options = {
    lockTimeout: ttlMs,
    acquireTimeout: ttlMs,
    acquireAttemptsLimit: 1,
    // After a refused SET it still sleeps this long before giving up; 0 is the least.
    retryInterval: 0,
    refreshInterval: 0,
  };
  return {
    name: 'redis-semaphore',
    notes:
      'no multi-key mutex (MultiSemaphore is permits of one key): one Mutex (SET NX PX) per key in sorted order, ' +
      'released together; a refused tryAcquire still sleeps retryInterval (0: one timer tick)',
    async tryLock(names) {
      const held: Mutex[] = [];
      for (const name of [...new Set(names)].sort()) {
        const mutex = new Mutex(client, `{${keyPrefix}}:semaphore:${name}`, options);
        if (!(await mutex.tryAcquire())) {
          await Promise.all(held.map((m) => m.release()));
          return undefined;
        }
        held.push(mutex);
      }
      return async () => void (await Promise.all(held.map((m) => m.release())));
    },
  };
}
