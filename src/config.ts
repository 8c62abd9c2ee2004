import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const hostList = z
  .string()
  .regex(/^[^,:\s]+:\d+(,[^,:\s]+:\d+)*$/, 'must be host:port[,host:port...]')
  .transform((v) =>
    v.split(',').map((hp) => {
      const [host, port] = hp.split(':');
      return { host: host!, port: Number(port) };
    }),
  );

/**
 * Every environment variable the service reads, with its default. This is the
 * only place that knows their names; the deploy manifests are checked against it.
 */
const EnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  GRPC_HOST: z.string().min(1).default('0.0.0.0'),
  GRPC_PORT: int(0, 65535).default(50051),
  GRPC_REFLECTION: bool.default(true),
  /** Closes each client connection after this long, so new replicas get a share of traffic. */
  GRPC_MAX_CONNECTION_AGE_MS: int(0, 86_400_000).default(300_000),
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(10_000),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  DB_POOL_MAX: int(1, 200).default(10),
  EMBEDDED_PG_DIR: z.string().min(1).default('.data/postgres'),
  EMBEDDED_PG_PORT: int(1, 65535).default(54329),
  /** Seed the demo program into an empty database. Defaults to on for the embedded database only. */
  SEED_DEMO: bool.optional(),
  /** Apply pending migrations at start-up. Defaults to off in production, where a Job runs them. */
  DB_MIGRATE_ON_START: bool.optional(),
  TX_MAX_ATTEMPTS: int(1, 20).default(6),
  TX_BACKOFF_BASE_MS: int(1, 10_000).default(5),
  TX_BACKOFF_MAX_MS: int(1, 60_000).default(250),
  /** Ceiling on lock_timeout and statement_timeout, whatever the caller's deadline. */
  TX_TIMEOUT_CEILING_MS: int(100, 600_000).default(10_000),
  /** Budget of a call that arrives without a gRPC deadline. */
  DEFAULT_DEADLINE_MS: int(100, 600_000).default(15_000),
  ROLLBACK_WINDOW_HOURS: z.coerce
    .number()
    .positive()
    .max(24 * 365)
    .default(24),
  SHORT_NOTICE_DAYS: int(0, 365).default(14),
  /** Redis for distributed locks and the replay cache; absent: PostgreSQL advisory locks only. */
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  /** Sentinel deployment: host:port list of sentinels, and the monitored master's name. */
  REDIS_SENTINELS: hostList.optional(),
  REDIS_SENTINEL_NAME: z.string().min(1).default('mymaster'),
  /** Cluster deployment: host:port list of seed nodes. */
  REDIS_CLUSTER_NODES: hostList.optional(),
  /** Prefix of every Redis key; it is also the Cluster hash tag, so multi-key scripts stay in one slot. */
  LOCK_KEY_PREFIX: z
    .string()
    .regex(/^[a-z0-9:_-]+$/)
    .default('swap'),
  LOCK_TTL_MS: int(500, 600_000).default(10_000),
  /** Longest a call waits for its locks (never past its deadline). */
  LOCK_WAIT_MS: int(0, 600_000).default(5_000),
  /** While Redis is down: `advisory` serializes on PostgreSQL advisory locks, `fail` answers UNAVAILABLE. */
  LOCK_FALLBACK: z.enum(['advisory', 'fail']).default('advisory'),
  BREAKER_FAILURE_THRESHOLD: int(1, 1000).default(5),
  BREAKER_COOLDOWN_MS: int(100, 600_000).default(10_000),
  IDEMPOTENCY_RETENTION_HOURS: z.coerce
    .number()
    .positive()
    .max(24 * 365)
    .default(24),
  IDEMPOTENCY_SWEEP_INTERVAL_MS: int(1_000, 86_400_000).default(60_000),
  /** FMIT weeks of one faculty member closer than this (Monday to Monday) raise BACK_TO_BACK. */
  CONFLICT_BACK_TO_BACK_DAYS: int(1, 365).default(14),
  /** More FMIT/other switches than this within the window raise EXCESSIVE_ALTERNATING. */
  CONFLICT_MAX_ALTERNATIONS: int(0, 52).default(4),
  CONFLICT_ALTERNATION_WINDOW_WEEKS: int(2, 52).default(8),
  /** Port of the Prometheus scrape endpoint (/metrics); 0 turns it off. */
  METRICS_PORT: int(0, 65535).default(9464),
});

/** The validated, frozen configuration of one process. */
export interface Config {
  env: 'development' | 'test' | 'production';
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  grpc: {
    host: string;
    port: number;
    reflection: boolean;
    maxConnectionAgeMs: number;
    shutdownGraceMs: number;
  };
  database: {
    /** Absent: start the embedded PostgreSQL. */
    url: string | undefined;
    poolMax: number;
    embeddedDir: string;
    embeddedPort: number;
    seedDemo: boolean;
    migrateOnStart: boolean;
  };
  transactions: {
    maxAttempts: number;
    backoffBaseMs: number;
    backoffMaxMs: number;
    timeoutCeilingMs: number;
    defaultDeadlineMs: number;
  };
  swaps: {
    rollbackWindowMs: number;
    shortNoticeDays: number;
  };
  redis: {
    /** Absent (and no sentinels or cluster): locks are PostgreSQL advisory locks from the start. */
    url: string | undefined;
    sentinels: { host: string; port: number }[] | undefined;
    sentinelName: string;
    clusterNodes: { host: string; port: number }[] | undefined;
    keyPrefix: string;
  };
  locks: {
    ttlMs: number;
    waitMs: number;
    fallback: 'advisory' | 'fail';
    breakerFailureThreshold: number;
    breakerCooldownMs: number;
  };
  idempotency: {
    retentionMs: number;
    sweepIntervalMs: number;
  };
  metrics: {
    /** 0: no Prometheus endpoint. */
    port: number;
  };
  conflicts: {
    backToBackDays: number;
    maxAlternations: number;
    alternationWindowWeeks: number;
  };
}

/** Names of every variable {@link loadConfig} reads. */
export const CONFIG_ENV_NAMES: readonly string[] = Object.keys(EnvSchema.shape);

/** Raised when the environment holds a bad value; the message lists every problem. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Parses and validates the environment once, at start-up. Nothing else in the
 * service reads `process.env`.
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const picked = Object.fromEntries(
    CONFIG_ENV_NAMES.map((name) => [name, env[name] === '' ? undefined : env[name]]),
  );
  const parsed = EnvSchema.safeParse(picked);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `  ${issue.path.join('.')}: ${issue.message}`,
    );
    throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  }
  const e = parsed.data;
  if (e.NODE_ENV === 'production' && !e.DATABASE_URL) {
    throw new ConfigError(
      'Invalid configuration:\n  DATABASE_URL: required in production (the embedded PostgreSQL is for development)',
    );
  }
  if (e.NODE_ENV === 'production' && !e.REDIS_URL && !e.REDIS_SENTINELS && !e.REDIS_CLUSTER_NODES) {
    throw new ConfigError(
      'Invalid configuration:\n  REDIS_URL: required in production (replicas coordinate their locks through it)',
    );
  }
  if (e.TX_BACKOFF_BASE_MS > e.TX_BACKOFF_MAX_MS) {
    throw new ConfigError(
      'Invalid configuration:\n  TX_BACKOFF_BASE_MS: must not exceed TX_BACKOFF_MAX_MS',
    );
  }
  return deepFreeze({
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    grpc: {
      host: e.GRPC_HOST,
      port: e.GRPC_PORT,
      reflection: e.GRPC_REFLECTION,
      maxConnectionAgeMs: e.GRPC_MAX_CONNECTION_AGE_MS,
      shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    },
    database: {
      url: e.DATABASE_URL,
      poolMax: e.DB_POOL_MAX,
      embeddedDir: e.EMBEDDED_PG_DIR,
      embeddedPort: e.EMBEDDED_PG_PORT,
      seedDemo: e.SEED_DEMO ?? e.DATABASE_URL === undefined,
      migrateOnStart: e.DB_MIGRATE_ON_START ?? e.NODE_ENV !== 'production',
    },
    transactions: {
      maxAttempts: e.TX_MAX_ATTEMPTS,
      backoffBaseMs: e.TX_BACKOFF_BASE_MS,
      backoffMaxMs: e.TX_BACKOFF_MAX_MS,
      timeoutCeilingMs: e.TX_TIMEOUT_CEILING_MS,
      defaultDeadlineMs: e.DEFAULT_DEADLINE_MS,
    },
    swaps: {
      rollbackWindowMs: e.ROLLBACK_WINDOW_HOURS * 3_600_000,
      shortNoticeDays: e.SHORT_NOTICE_DAYS,
    },
    redis: {
      url: e.REDIS_URL,
      sentinels: e.REDIS_SENTINELS,
      sentinelName: e.REDIS_SENTINEL_NAME,
      clusterNodes: e.REDIS_CLUSTER_NODES,
      keyPrefix: e.LOCK_KEY_PREFIX,
    },
    locks: {
      ttlMs: e.LOCK_TTL_MS,
      waitMs: e.LOCK_WAIT_MS,
      fallback: e.LOCK_FALLBACK,
      breakerFailureThreshold: e.BREAKER_FAILURE_THRESHOLD,
      breakerCooldownMs: e.BREAKER_COOLDOWN_MS,
    },
    idempotency: {
      retentionMs: e.IDEMPOTENCY_RETENTION_HOURS * 3_600_000,
      sweepIntervalMs: e.IDEMPOTENCY_SWEEP_INTERVAL_MS,
    },
    metrics: { port: e.METRICS_PORT },
    conflicts: {
      backToBackDays: e.CONFLICT_BACK_TO_BACK_DAYS,
      maxAlternations: e.CONFLICT_MAX_ALTERNATIONS,
      alternationWindowWeeks: e.CONFLICT_ALTERNATION_WINDOW_WEEKS,
    },
  });
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child && typeof child === 'object') deepFreeze(child as object);
  }
  return Object.freeze(value);
}

/** What the telemetry bootstrap needs; read before anything else is loaded. */
export interface TelemetryConfig {
  /** False when OTEL_SDK_DISABLED is set, or when there is nowhere to send data. */
  enabled: boolean;
  /** Why telemetry is off, for the start-up log. */
  disabledBecause: string | undefined;
  /** Whether an OTLP endpoint is configured (traces and metrics are pushed there). */
  otlp: boolean;
  serviceName: string;
  environment: string;
  /** Prometheus scrape port; 0: none. */
  metricsPort: number;
}

/**
 * Parses the telemetry settings. The standard OTEL_* variables are read here to
 * decide whether to start, and by the OpenTelemetry SDK itself for the rest
 * (endpoints, headers, sampler, resource attributes).
 */
export function loadTelemetryConfig(env: Record<string, string | undefined>): TelemetryConfig {
  const base = loadConfig(env);
  const otlp = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  const disabled = ['true', '1'].includes((env.OTEL_SDK_DISABLED ?? '').toLowerCase());
  let disabledBecause: string | undefined;
  if (disabled) disabledBecause = 'OTEL_SDK_DISABLED is set';
  // Outside production, no endpoint means nobody is listening: spare the export attempts.
  else if (!otlp && base.metrics.port === 0)
    disabledBecause = 'no OTLP endpoint and no metrics port';
  return {
    enabled: disabledBecause === undefined,
    disabledBecause,
    otlp: otlp || base.env === 'production',
    serviceName: env.OTEL_SERVICE_NAME || 'swap-service',
    environment: base.env,
    metricsPort: base.metrics.port,
  };
}
