import { RedisLease, RedisLock } from '../src/coordination/redis-lock';

/** What the Redis locks of the process have cost so far. */
export interface LockTime {
  /** RedisLock.acquire: the acquire script's round trip (and any retries). */
  acquisitions: number;
  acquireMs: number;
  /** RedisLease.release: the release script's round trip. */
  releases: number;
  releaseMs: number;
  /** Lease extensions by the ttl/3 timer; none are expected in a bench. */
  extensions: number;
}

export interface LockTimer {
  snapshot(): LockTime;
  /** Puts RedisLock and RedisLease back as they were. */
  stop(): void;
}

/**
 * Times every RedisLock.acquire and RedisLease.release in the process, and
 * counts lease extensions, by wrapping the methods (two clock reads per call)
 * until `stop`. Only the `service-redis` mode uses them while it is on.
 */
export function timeRedisLocks(): LockTimer {
  const total: LockTime = {
    acquisitions: 0,
    acquireMs: 0,
    releases: 0,
    releaseMs: 0,
    extensions: 0,
  };
  const lock = RedisLock.prototype;
  const lease = RedisLease.prototype;
  // Taken off the prototypes to be called with the right `this` below.
  /* eslint-disable @typescript-eslint/unbound-method */
  const { acquire } = lock;
  const { release, extend } = lease;
  /* eslint-enable @typescript-eslint/unbound-method */
  lock.acquire = async function (this: RedisLock, ...args) {
    const started = performance.now();
    try {
      return await acquire.apply(this, args);
    } finally {
      total.acquisitions++;
      total.acquireMs += performance.now() - started;
    }
  };
  lease.release = async function (this: RedisLease) {
    const started = performance.now();
    try {
      return await release.call(this);
    } finally {
      total.releases++;
      total.releaseMs += performance.now() - started;
    }
  };
  lease.extend = function (this: RedisLease) {
    total.extensions++;
    return extend.call(this);
  };
  return {
    snapshot: () => ({ ...total }),
    stop: () => {
      lock.acquire = acquire;
      lease.release = release;
      lease.extend = extend;
    },
  };
}

/** The difference between two snapshots. */
export function lockTimeBetween(before: LockTime, after: LockTime): LockTime {
  return {
    acquisitions: after.acquisitions - before.acquisitions,
    acquireMs: after.acquireMs - before.acquireMs,
    releases: after.releases - before.releases,
    releaseMs: after.releaseMs - before.releaseMs,
    extensions: after.extensions - before.extensions,
  };
}

/** Two spans of lock time added together. */
export function addLockTimes(a: LockTime, b: LockTime): LockTime {
  return {
    acquisitions: a.acquisitions + b.acquisitions,
    acquireMs: a.acquireMs + b.acquireMs,
    releases: a.releases + b.releases,
    releaseMs: a.releaseMs + b.releaseMs,
    extensions: a.extensions + b.extensions,
  };
}
