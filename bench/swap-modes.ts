import { type ChannelCredentials, credentials, Metadata } from '@grpc/grpc-js';
import pino from 'pino';
import { CONFIG_ENV_NAMES, loadConfig } from '../src/config';
import { createRedisClient } from '../src/coordination/redis-client';
import { ConflictServiceClient } from '../src/generated/swap/v1/conflict';
import { SwapServiceClient } from '../src/generated/swap/v1/swap';
import { startService } from '../src/main';
import type { BenchIdentity } from './bench-identity';
import type { BenchMode, BenchOptions } from './bench-options';
import { BENCH_CLIENT_SPIFFE_ID, type BenchPki } from './bench-pki';
import type { ExecuteSwap } from './load-runner';
import type { OtlpSink } from './otlp-sink';
import { createFloorPool, FloorSwap } from './floor-swap';
import { startServiceProcess } from './service-process';

const DEADLINE_MS = 30_000;
/**
 * TLS's server name indication takes no addresses: the secure client names
 * the server `localhost` (in its certificate, beside 127.0.0.1), and dials
 * 127.0.0.1 all the same. Harmless for a plaintext channel.
 */
const CHANNEL_OPTIONS = { 'grpc.ssl_target_name_override': 'localhost' };

/** One way of executing swaps, started and ready. */
export interface SwapMode {
  name: BenchMode;
  /** Recorded as requested_by, so the checks can tell which mode did what. */
  actor: string;
  execute: ExecuteSwap;
  /** Clients of the service behind the mode; absent for `floor`. */
  clients: ServiceClients | undefined;
  /** The service's process, when it is a child of this one. */
  pid: number | undefined;
  stop(): Promise<void>;
}

export interface ServiceClients {
  swaps: SwapServiceClient;
  conflicts: ConflictServiceClient;
  /** Call metadata that proves the mode's actor (its bearer token). */
  metadata(): Metadata;
  deadline(): { deadline: Date };
}

/** Where the modes keep their data. */
export interface ModeSetting {
  databaseUrl: string;
  /** Prefix of every Redis key of the run (locks, fencing counter, replay cache). */
  keyPrefix: string;
  /** Where each child-process mode exports its traces and metrics. */
  sinks: ReadonlyMap<BenchMode, OtlpSink>;
  /** The tokens each service mode authenticates with. */
  identity: BenchIdentity;
  /** The certificates of `service-secure`; made only when it runs. */
  pki: BenchPki | undefined;
}

/** The modes whose service runs in a child process, started as production starts it. */
export function inChildProcess(name: BenchMode): boolean {
  return name !== 'floor' && name !== 'service';
}

/**
 * Starts `name`: the floor (`floor`, by hand over pg and ioredis, configured
 * like `service-redis`), the service in this process through its composition
 * root (`service`, for --profile-dir and the statement census), or the
 * service in a child process as production runs it (every other mode).
 *
 * `service-secure` is `service-redis` serving TLS that requires a client
 * certificate (GRPC_TLS_CLIENT_CA_FILE) beside the same JWKS; its client
 * presents the certificate and sends its bearer token on every call, on
 * connections the warm-up has already opened (no handshake is measured). The
 * service's authenticator lets a verified certificate name the principal over
 * any token beside it, so the mode's actor is the certificate's SPIFFE ID,
 * and the token's `sub` (`bench-service-secure`) differs from it on purpose:
 * the records then show which of the two the service went by.
 */
export async function startMode(
  name: BenchMode,
  options: BenchOptions,
  setting: ModeSetting,
): Promise<SwapMode> {
  const actor = name === 'service-secure' ? BENCH_CLIENT_SPIFFE_ID : `bench-${name}`;
  const env = serviceEnv(name, options, setting);
  if (name === 'floor') {
    const config = loadConfig(env);
    const pool = createFloorPool(setting.databaseUrl, options.poolMax);
    // Like the service's own client: fail fast, no offline queue, so it must be ready first.
    const redis = createRedisClient(config.redis, pino({ level: 'silent' }))!;
    if (redis.status !== 'ready') await new Promise((ready) => redis.once('ready', ready));
    const floor = new FloorSwap(pool, redis, config);
    return {
      name,
      actor,
      execute: (request) => floor.execute(request, actor),
      clients: undefined,
      pid: undefined,
      stop: async () => {
        await pool.end();
        redis.disconnect();
      },
    };
  }
  const service = inChildProcess(name)
    ? await startServiceProcess(name, env, options.profileDir)
    : await startService(loadConfig(env));
  const transport =
    name === 'service-secure' ? pkiOf(setting).credentials() : credentials.createInsecure();
  const clients = serviceClients(
    service.port,
    transport,
    await setting.identity.token(`bench-${name}`),
  );
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

function pkiOf(setting: ModeSetting): BenchPki {
  if (!setting.pki) throw new Error('service-secure needs the bench certificates (setting.pki)');
  return setting.pki;
}

function serviceClients(
  port: number,
  transport: ChannelCredentials,
  token: string,
): ServiceClients {
  const address = `127.0.0.1:${port}`;
  return {
    swaps: new SwapServiceClient(address, transport, CHANNEL_OPTIONS),
    conflicts: new ConflictServiceClient(address, transport, CHANNEL_OPTIONS),
    metadata: () => {
      const metadata = new Metadata();
      metadata.set('authorization', `Bearer ${token}`);
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
    ...setting.identity.env,
    ...(name !== 'service' && { REDIS_URL: options.redisUrl, LOCK_KEY_PREFIX: setting.keyPrefix }),
    ...(name === 'service-secure' && pkiOf(setting).env),
    // `prepared` (the default) is the lean write path; `orm` today's pure MikroORM one.
    SCHEDULE_WRITES: name === 'service-orm' ? 'orm' : 'prepared',
  };
  if (!inChildProcess(name)) return common;
  const sink = setting.sinks.get(name);
  if (!sink) throw new Error(`${name} needs its OTLP sink (setting.sinks)`);
  const inherited = Object.entries(process.env).filter(
    ([variable]) => !CONFIG_ENV_NAMES.includes(variable) && !variable.startsWith('OTEL_'),
  );
  return {
    ...Object.fromEntries(inherited),
    ...common,
    // Production would refuse to serve this plaintext bench client (no
    // GRPC_TLS_CERT_FILE); the telemetry bootstrap runs the same either way,
    // since an OTLP endpoint is set.
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    OTEL_SERVICE_NAME: 'swap-service-bench',
    OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
    // Full sampling: every span of every swap is exported.
    ...(name === 'telemetry-off'
      ? { OTEL_SDK_DISABLED: 'true' }
      : { OTEL_TRACES_SAMPLER: 'always_on' }),
  };
}
