import type { Logger } from 'pino';
import { LockAcquireTimeoutError } from '../domain/errors';
import type { ServiceTelemetry } from '../observability/service-telemetry';
import { CircuitBreaker } from './circuit-breaker';
import { IdempotencyStore } from './idempotency-store';
import type { LockRedisClient } from './redis-lock-scripts';
import { RedisLock } from './redis-lock';
import { ScheduleLocks } from './schedule-locks';

/** What the coordination layer is built from; see the LOCK_* and IDEMPOTENCY_* variables. */
export interface CoordinationSettings {
  locks: {
    ttlMs: number;
    waitMs: number;
    fallback: 'advisory' | 'fail';
    breakerFailureThreshold: number;
    breakerCooldownMs: number;
  };
  keyPrefix: string;
  idempotencyRetentionMs: number;
}

/** The locks and the idempotency store, sharing one Redis client and one breaker. */
export interface Coordination {
  locks: ScheduleLocks;
  idempotency: IdempotencyStore;
  /** Absent without Redis. */
  breaker: CircuitBreaker | undefined;
}

/**
 * Builds the schedule locks and the idempotency store: on Redis behind a
 * circuit breaker when `redis` is given, on PostgreSQL alone otherwise.
 */
export function createCoordination(
  settings: CoordinationSettings,
  deps: {
    redis: LockRedisClient | undefined;
    log: Logger;
    telemetry: ServiceTelemetry;
  },
): Coordination {
  const { redis, log, telemetry } = deps;
  const { locks: lockSettings, keyPrefix } = settings;
  const cache = redis && {
    client: redis,
    breaker: new CircuitBreaker({
      name: 'redis',
      failureThreshold: lockSettings.breakerFailureThreshold,
      cooldownMs: lockSettings.breakerCooldownMs,
      // Contention says nothing about Redis's health.
      isExpected: (error) => error instanceof LockAcquireTimeoutError,
      log,
    }),
  };
  const locks = new ScheduleLocks(
    cache && {
      lock: new RedisLock(cache.client, { ttlMs: lockSettings.ttlMs, keyPrefix }),
      breaker: cache.breaker,
    },
    {
      waitMs: lockSettings.waitMs,
      fallback: lockSettings.fallback,
      retryAfterMs: lockSettings.breakerCooldownMs,
    },
    log,
    telemetry,
  );
  log.info(
    redis ? { locks: 'redis', fallback: lockSettings.fallback } : { locks: 'postgres-advisory' },
    redis
      ? 'locks: Redis, with PostgreSQL advisory locks while Redis is unavailable'
      : 'no Redis configured: locks are PostgreSQL advisory locks',
  );
  const idempotency = new IdempotencyStore(
    { retentionMs: settings.idempotencyRetentionMs, keyPrefix },
    cache,
    log,
  );
  return { locks, idempotency, breaker: cache?.breaker };
}
