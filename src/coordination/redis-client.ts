import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { LockRedisClient } from './redis-lock-scripts';

// Fail fast while Redis is away: the circuit breaker, not a queue, decides what happens then.
const FAIL_FAST: RedisOptions = {
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  commandTimeout: 1_000,
  connectTimeout: 2_000,
  retryStrategy: (attempt) => Math.min(100 * attempt, 2_000),
};

/** Where Redis is: one of a URL, Sentinels or Cluster nodes (see the REDIS_* variables). */
export interface RedisSettings {
  url: string | undefined;
  sentinels: { host: string; port: number }[] | undefined;
  sentinelName: string;
  clusterNodes: { host: string; port: number }[] | undefined;
}

/**
 * The Redis client for the configured deployment (standalone, Sentinel or
 * Cluster), or undefined when none is configured.
 */
export function createRedisClient(config: RedisSettings, log: Logger): LockRedisClient | undefined {
  let client: LockRedisClient;
  if (config.clusterNodes) {
    client = new Cluster(config.clusterNodes, {
      enableOfflineQueue: false,
      redisOptions: FAIL_FAST,
    });
  } else if (config.sentinels) {
    client = new Redis({
      ...FAIL_FAST,
      sentinels: config.sentinels,
      name: config.sentinelName,
      // Move to the new master as soon as the sentinels announce it
      // (+switch-master). Otherwise the client stays on the old one for as
      // long as it takes writes (until the sentinels reach it to demote it,
      // or forever if they cannot), and its locks exclude nobody on the new one.
      failoverDetector: true,
    });
  } else if (config.url) {
    client = new Redis(config.url, FAIL_FAST);
  } else {
    return undefined;
  }
  let healthy = true;
  client.on('error', (error: Error) => {
    if (healthy) log.warn({ err: error }, 'redis connection failed');
    healthy = false;
  });
  client.on('ready', () => {
    if (!healthy) log.info('redis connection restored');
    healthy = true;
  });
  return client;
}
