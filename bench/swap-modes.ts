import { credentials, Metadata } from '@grpc/grpc-js';
import pino from 'pino';
import { CONFIG_ENV_NAMES, loadConfig } from '../src/config';
import { createRedisClient } from '../src/coordination/redis-client';
import { ConflictServiceClient } from '../src/generated/swap/v1/conflict';
import { SwapServiceClient } from '../src/generated/swap/v1/swap';
import { startService } from '../src/main';
import type { BenchMode, BenchOptions } from './bench-options';
import type { ExecuteSwap } from './load-runner';
import type { OtlpSink } from './otlp-sink';
import { createRawPool, RawSqlSwap } from './raw-sql-swap';
import { startServiceProcess } from './service-process';

const DEADLINE_MS = 30_000;

/** One way of executing swaps, started and ready. */
export interface SwapMode {
  name: BenchMode;
  /** Recorded as requested_by, so the checks can tell which mode did what. */
  actor: string;
  execute: ExecuteSwap;
  /** Clients of the service behind the mode; absent for `sql`. */
  clients: ServiceClients | undefined;
  /** The service's process, when it is a child of this one. */
  pid: number | undefined;
  stop(): Promise<void>;
}

export interface ServiceClients {
  swaps: SwapServiceClient;
  conflicts: ConflictServiceClient;
  /** Call metadata naming the mode's actor. */
  metadata(): Metadata;
  deadline(): { deadline: Date };
}

/** Where the modes keep their data. */
export interface ModeSetting {
  databaseUrl: string;
  /** Prefix of every Redis key of the run (locks, fencing counter, replay cache). */
  keyPrefix: string;
  /** Where each telemetry mode exports its traces and metrics. */
  sinks: ReadonlyMap<BenchMode, OtlpSink>;
}

/**
 * Starts `name`: the service in this process through its composition root
 * (`service`, `service-redis`), the service in a child process as production
 * runs it (the telemetry modes), or the raw-SQL baseline (`sql`), configured
 * like `service-redis`.
 */
export async function startMode(
  name: BenchMode,
  options: BenchOptions,
  setting: ModeSetting,
): Promise<SwapMode> {
  const actor = `bench-${name}`;
  const env = serviceEnv(name, options, setting);
  if (name === 'sql') {
    const config = loadConfig(env);
    const pool = createRawPool(setting.databaseUrl, options.poolMax);
    // Like the service's own client: fail fast, no offline queue, so it must be ready first.
    const redis = createRedisClient(config.redis, pino({ level: 'silent' }))!;
    if (redis.status !== 'ready') await new Promise((ready) => redis.once('ready', ready));
    const raw = new RawSqlSwap(pool, redis, config);
    return {
      name,
      actor,
      execute: (request) => raw.execute(request, actor),
      clients: undefined,
      pid: undefined,
      stop: async () => {
        await pool.end();
        redis.disconnect();
      },
    };
  }
  const service = name.startsWith('telemetry')
    ? await startServiceProcess(name, env)
    : await startService(loadConfig(env));
  const clients = serviceClients(service.port, actor);
  return {
    name,
    actor,
    execute: (request) =>
      new Promise((resolve, reject) =>
        clients.swaps.executeSwap(request, clients.metadata(), clients.deadline(), (error) =>
          error ? reject(error) : resolve(),
        ),
      ),
    clients,
    pid: 'pid' in service ? service.pid : undefined,
    stop: async () => {
      clients.swaps.close();
      clients.conflicts.close();
      await service.stop();
    },
  };
}

function serviceClients(port: number, actor: string): ServiceClients {
  const address = `127.0.0.1:${port}`;
  return {
    swaps: new SwapServiceClient(address, credentials.createInsecure()),
    conflicts: new ConflictServiceClient(address, credentials.createInsecure()),
    metadata: () => {
      const metadata = new Metadata();
      metadata.set('x-actor', actor);
      return metadata;
    },
    deadline: () => ({ deadline: new Date(Date.now() + DEADLINE_MS) }),
  };
}

/** The service's environment in each mode; a child inherits nothing else that configures it. */
function serviceEnv(
  name: BenchMode,
  options: BenchOptions,
  setting: ModeSetting,
): Record<string, string | undefined> {
  const common = {
    NODE_ENV: 'test',
    DATABASE_URL: setting.databaseUrl,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    GRPC_REFLECTION: 'false',
    LOG_LEVEL: 'silent',
    DB_POOL_MAX: String(options.poolMax),
    DB_MIGRATE_ON_START: 'false',
    SEED_DEMO: 'false',
    // The sweep is no part of a swap's cost, and would show up in a statement census.
    IDEMPOTENCY_SWEEP_INTERVAL_MS: '86400000',
    METRICS_PORT: '0',
    ...(name !== 'service' && { REDIS_URL: options.redisUrl, LOCK_KEY_PREFIX: setting.keyPrefix }),
  };
  const sink = setting.sinks.get(name);
  if (!name.startsWith('telemetry') || !sink) return common;
  const inherited = Object.entries(process.env).filter(
    ([variable]) => !CONFIG_ENV_NAMES.includes(variable) && !variable.startsWith('OTEL_'),
  );
  return {
    ...Object.fromEntries(inherited),
    ...common,
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    OTEL_SERVICE_NAME: 'swap-service-bench',
    OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
    ...(name === 'telemetry-off'
      ? { OTEL_SDK_DISABLED: 'true' }
      : { OTEL_TRACES_SAMPLER: 'always_on' }),
  };
}
