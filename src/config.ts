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
  // Unset: on, except in production, where it must be asked for (and the policy opens it to a role).
  GRPC_REFLECTION: bool.optional(),
  /** Closes each client connection after this long, so new replicas get a share of traffic. */
  GRPC_MAX_CONNECTION_AGE_MS: int(0, 86_400_000).default(300_000),
  /** The server's certificate chain and key (PEM); both or neither. Required in production. */
  GRPC_TLS_CERT_FILE: z.string().min(1).optional(),
  GRPC_TLS_KEY_FILE: z.string().min(1).optional(),
  /** CA bundle (PEM) that client certificates must chain to; set, it makes them required (mTLS). */
  GRPC_TLS_CLIENT_CA_FILE: z.string().min(1).optional(),
  /** How often the TLS files are read again, so a rotated certificate is served without a restart. */
  GRPC_TLS_REFRESH_MS: int(50, 86_400_000).default(60_000),
  /** A plaintext port serving only grpc.health.v1, for probes that cannot speak TLS; 0: none. */
  GRPC_HEALTH_PORT: int(0, 65535).default(0),
  /** Largest request message accepted; a larger one fails RESOURCE_EXHAUSTED. */
  GRPC_MAX_RECEIVE_MESSAGE_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  /** Largest response message sent; a larger one fails RESOURCE_EXHAUSTED instead. */
  GRPC_MAX_SEND_MESSAGE_BYTES: int(1024, 64 * 1024 * 1024).default(4 * 1024 * 1024),
  /** Calls one connection may have open at once (announced in SETTINGS); clients queue the rest. */
  GRPC_MAX_CONCURRENT_STREAMS: int(1, 10_000).default(100),
  /** Closes a connection that has had no call for this long (`0` = never). */
  GRPC_MAX_CONNECTION_IDLE_MS: int(0, 86_400_000).default(120_000),
  /** Pings closer together than this are strikes; after too many the client gets GOAWAY too_many_pings. */
  GRPC_KEEPALIVE_MIN_PING_INTERVAL_MS: int(0, 86_400_000).default(300_000),
  /** Whether a client may ping while it has no call open (otherwise every such ping is a strike). */
  GRPC_KEEPALIVE_PERMIT_WITHOUT_CALLS: bool.default(false),
  /** Calls the process runs at once, over all connections; beyond it they fail RESOURCE_EXHAUSTED. */
  GRPC_MAX_IN_FLIGHT_CALLS: int(1, 100_000).default(200),
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
  /**
   * How a swap's row changes are written: `prepared` statements (one round
   * trip, planned once per connection), or `orm`, the ORM loading and
   * flushing each row (kept for the bench to measure against).
   */
  SCHEDULE_WRITES: z.enum(['prepared', 'orm']).default('prepared'),
  /** The program's IANA time zone: its midnight starts "today" for PAST_WEEK, SHORT_NOTICE and detection. */
  PROGRAM_TIME_ZONE: z
    .string()
    .min(1)
    .refine(isIanaTimeZone, 'must be an IANA time zone name, such as America/New_York')
    .default('America/New_York'),
  /** How often readiness runs `select 1` against the database. */
  READINESS_PROBE_INTERVAL_MS: int(100, 600_000).default(2_000),
  /** A probe slower than this counts as failed. */
  READINESS_PROBE_TIMEOUT_MS: int(50, 600_000).default(1_000),
  /** Consecutive failed probes that turn readiness NOT_SERVING. */
  READINESS_FAILURES_TO_UNREADY: int(1, 100).default(3),
  /** Consecutive good probes that turn it SERVING again. */
  READINESS_SUCCESSES_TO_READY: int(1, 100).default(2),
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
  /** The identity provider's key set, fetched and cached; bearer tokens are verified against it. */
  AUTH_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** A local key set (JSON), instead of AUTH_JWKS_URL. */
  AUTH_JWKS_FILE: z.string().min(1).optional(),
  /** The `iss` and `aud` every token must carry; required with a key set. */
  AUTH_ISSUER: z.string().min(1).optional(),
  AUTH_AUDIENCE: z.string().min(1).optional(),
  /** The claim holding a token's roles (a string array); a dotted path such as realm_access.roles reaches into objects. */
  AUTH_ROLES_CLAIM: z
    .string()
    .regex(/^[^.\s]+(\.[^.\s]+)*$/, 'must be a claim name or a dotted path')
    .default('roles'),
  /** Leeway for exp and nbf, for clocks that disagree a little. */
  AUTH_CLOCK_SKEW_SECONDS: int(0, 300).default(30),
  /** After a key-set fetch, how long before a token with an unknown kid may cause another. */
  AUTH_JWKS_COOLDOWN_SECONDS: int(0, 3600).default(30),
  /** How many verified bearer tokens are remembered (each for at most 5 minutes); 0 verifies every call. */
  AUTH_TOKEN_CACHE_SIZE: int(0, 1_000_000).default(10_000),
  /** Who may call what (YAML); absent: every method is open to every caller. */
  AUTHZ_POLICY_FILE: z.string().min(1).optional(),
});

/** True for a zone name the runtime's time zone database knows (Intl, so IANA names and `UTC`). */
function isIanaTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

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
    /** Absent: plaintext (refused in production). */
    tls: TlsConfig | undefined;
    /** 0: no plaintext health port. */
    healthPort: number;
    limits: TransportLimits;
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
    scheduleWrites: 'prepared' | 'orm';
  };
  /** The program's IANA time zone; its local midnight starts each day. */
  timeZone: string;
  readiness: ReadinessConfig;
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
  auth: {
    /** Absent: bearer tokens are no way in. */
    jwt:
      | {
          /** Exactly one of the two is set. */
          jwksUrl: string | undefined;
          jwksFile: string | undefined;
          issuer: string;
          audience: string;
          rolesClaim: string;
          clockSkewSeconds: number;
          jwksCooldownSeconds: number;
          tokenCacheSize: number;
        }
      | undefined;
    /** Absent: every method is open to every caller. */
    policyFile: string | undefined;
  };
}

/** How readiness follows the database: a probe every `intervalMs`, with hysteresis. */
export interface ReadinessConfig {
  intervalMs: number;
  timeoutMs: number;
  failuresToUnready: number;
  successesToReady: number;
}

/** Where the server's TLS material is, and how often it is read again. */
export interface TlsConfig {
  certFile: string;
  keyFile: string;
  /** Set: client certificates are required and must chain to this CA bundle (mTLS). */
  clientCaFile: string | undefined;
  refreshMs: number;
}

/** What one client connection may ask of the server. */
export interface TransportLimits {
  maxReceiveMessageBytes: number;
  maxSendMessageBytes: number;
  maxConcurrentStreams: number;
  /** 0: never closed for idleness. */
  maxConnectionIdleMs: number;
  keepaliveMinPingIntervalMs: number;
  keepalivePermitWithoutCalls: boolean;
  /** Calls the whole process runs at once; more are shed before they take a database connection. */
  maxInFlightCalls: number;
}

/** Names of every variable {@link loadConfig} reads. */
export const CONFIG_ENV_NAMES: readonly string[] = Object.keys(EnvSchema.shape);

/** Raised when the environment holds a bad value; the message lists every problem. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface LoadConfigOptions {
  /**
   * Whether the process serves gRPC (the default). Only then does production
   * require TLS: a database migration has no use for the server's key.
   */
  serves?: boolean;
}

/**
 * Parses and validates the environment once, at start-up. Nothing else in the
 * service reads `process.env`.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  options: LoadConfigOptions = {},
): Config {
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
  // Every cross-field problem at once, so one failed start names them all.
  const problems: string[] = [];
  if (e.NODE_ENV === 'production' && !e.DATABASE_URL) {
    problems.push(
      'DATABASE_URL: required in production (the embedded PostgreSQL is for development)',
    );
  }
  if (e.NODE_ENV === 'production' && !e.REDIS_URL && !e.REDIS_SENTINELS && !e.REDIS_CLUSTER_NODES) {
    problems.push('REDIS_URL: required in production (replicas coordinate their locks through it)');
  }
  const jwks = e.AUTH_JWKS_URL ?? e.AUTH_JWKS_FILE;
  const authProblem = authProblemOf(e);
  if (authProblem) problems.push(authProblem);
  if (e.TX_BACKOFF_BASE_MS > e.TX_BACKOFF_MAX_MS) {
    problems.push('TX_BACKOFF_BASE_MS: must not exceed TX_BACKOFF_MAX_MS');
  }
  if (Boolean(e.GRPC_TLS_CERT_FILE) !== Boolean(e.GRPC_TLS_KEY_FILE)) {
    problems.push(
      `${e.GRPC_TLS_CERT_FILE ? 'GRPC_TLS_KEY_FILE' : 'GRPC_TLS_CERT_FILE'}: GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE are set together or not at all`,
    );
  } else if (e.GRPC_TLS_CLIENT_CA_FILE && !e.GRPC_TLS_CERT_FILE) {
    problems.push(
      'GRPC_TLS_CERT_FILE: required with GRPC_TLS_CLIENT_CA_FILE (client certificates need TLS)',
    );
  } else if (e.NODE_ENV === 'production' && !e.GRPC_TLS_CERT_FILE && options.serves !== false) {
    problems.push(
      'GRPC_TLS_CERT_FILE: required in production, with GRPC_TLS_KEY_FILE (the service never serves plaintext there)',
    );
  }
  if (e.NODE_ENV === 'production' && options.serves !== false) {
    // Production admits only callers who proved who they are, to what a policy allows.
    if (!e.GRPC_TLS_CLIENT_CA_FILE && !jwks) {
      problems.push(
        'GRPC_TLS_CLIENT_CA_FILE or AUTH_JWKS_URL: required in production (callers must authenticate)',
      );
    }
    if (!e.AUTHZ_POLICY_FILE) {
      problems.push(
        'AUTHZ_POLICY_FILE: required in production (every method is denied by default)',
      );
    }
  }
  if (e.READINESS_PROBE_TIMEOUT_MS > e.READINESS_PROBE_INTERVAL_MS) {
    problems.push('READINESS_PROBE_TIMEOUT_MS: must not exceed READINESS_PROBE_INTERVAL_MS');
  }
  if (e.GRPC_HEALTH_PORT !== 0 && e.GRPC_HEALTH_PORT === e.GRPC_PORT) {
    problems.push('GRPC_HEALTH_PORT: must differ from GRPC_PORT');
  }
  if (problems.length > 0) {
    throw new ConfigError(`Invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
  return deepFreeze({
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    grpc: {
      host: e.GRPC_HOST,
      port: e.GRPC_PORT,
      reflection: e.GRPC_REFLECTION ?? e.NODE_ENV !== 'production',
      maxConnectionAgeMs: e.GRPC_MAX_CONNECTION_AGE_MS,
      shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
      tls:
        e.GRPC_TLS_CERT_FILE && e.GRPC_TLS_KEY_FILE
          ? {
              certFile: e.GRPC_TLS_CERT_FILE,
              keyFile: e.GRPC_TLS_KEY_FILE,
              clientCaFile: e.GRPC_TLS_CLIENT_CA_FILE,
              refreshMs: e.GRPC_TLS_REFRESH_MS,
            }
          : undefined,
      healthPort: e.GRPC_HEALTH_PORT,
      limits: {
        maxReceiveMessageBytes: e.GRPC_MAX_RECEIVE_MESSAGE_BYTES,
        maxSendMessageBytes: e.GRPC_MAX_SEND_MESSAGE_BYTES,
        maxConcurrentStreams: e.GRPC_MAX_CONCURRENT_STREAMS,
        maxConnectionIdleMs: e.GRPC_MAX_CONNECTION_IDLE_MS,
        keepaliveMinPingIntervalMs: e.GRPC_KEEPALIVE_MIN_PING_INTERVAL_MS,
        keepalivePermitWithoutCalls: e.GRPC_KEEPALIVE_PERMIT_WITHOUT_CALLS,
        maxInFlightCalls: e.GRPC_MAX_IN_FLIGHT_CALLS,
      },
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
      scheduleWrites: e.SCHEDULE_WRITES,
    },
    timeZone: e.PROGRAM_TIME_ZONE,
    readiness: {
      intervalMs: e.READINESS_PROBE_INTERVAL_MS,
      timeoutMs: e.READINESS_PROBE_TIMEOUT_MS,
      failuresToUnready: e.READINESS_FAILURES_TO_UNREADY,
      successesToReady: e.READINESS_SUCCESSES_TO_READY,
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
    auth: {
      jwt:
        jwks && e.AUTH_ISSUER && e.AUTH_AUDIENCE
          ? {
              jwksUrl: e.AUTH_JWKS_URL,
              jwksFile: e.AUTH_JWKS_FILE,
              issuer: e.AUTH_ISSUER,
              audience: e.AUTH_AUDIENCE,
              rolesClaim: e.AUTH_ROLES_CLAIM,
              clockSkewSeconds: e.AUTH_CLOCK_SKEW_SECONDS,
              jwksCooldownSeconds: e.AUTH_JWKS_COOLDOWN_SECONDS,
              tokenCacheSize: e.AUTH_TOKEN_CACHE_SIZE,
            }
          : undefined,
      policyFile: e.AUTHZ_POLICY_FILE,
    },
  });
}

/** What is wrong with the AUTH_* variables taken together, if anything. */
function authProblemOf(e: z.infer<typeof EnvSchema>): string | undefined {
  const jwks = e.AUTH_JWKS_URL ?? e.AUTH_JWKS_FILE;
  if (e.AUTH_JWKS_URL && e.AUTH_JWKS_FILE)
    return 'AUTH_JWKS_FILE: set AUTH_JWKS_URL or AUTH_JWKS_FILE, not both';
  if (jwks && !e.AUTH_ISSUER)
    return 'AUTH_ISSUER: required with a key set (the iss every token must carry)';
  if (jwks && !e.AUTH_AUDIENCE)
    return 'AUTH_AUDIENCE: required with a key set (the aud every token must carry)';
  if (!jwks && (e.AUTH_ISSUER || e.AUTH_AUDIENCE))
    return 'AUTH_JWKS_URL: AUTH_ISSUER and AUTH_AUDIENCE need a key set to verify tokens with (or AUTH_JWKS_FILE)';
  if (e.NODE_ENV === 'production' && e.AUTH_JWKS_URL?.startsWith('http:'))
    return 'AUTH_JWKS_URL: must be https in production (its keys decide who may call)';
  return undefined;
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child && typeof child === 'object') deepFreeze(child as object);
  }
  return Object.freeze(value);
}

/** OTLP transports the SDK's exporters speak (OTEL_EXPORTER_OTLP_PROTOCOL). */
export type OtlpProtocol = 'http/protobuf' | 'http/json' | 'grpc';

/** What the telemetry bootstrap needs; read before anything else is loaded. */
export interface TelemetryConfig {
  /** False only when OTEL_SDK_DISABLED is set. */
  enabled: boolean;
  /** Why telemetry is off, for the start-up log. */
  disabledBecause: string | undefined;
  /** Where spans go (OTEL_TRACES_EXPORTER); empty: spans are made (trace ids in logs) but kept. */
  tracesExporters: ('otlp' | 'console')[];
  /** Where metrics go (OTEL_METRICS_EXPORTER); `prometheus` is the METRICS_PORT endpoint. */
  metricsExporters: ('otlp' | 'prometheus' | 'console')[];
  tracesProtocol: OtlpProtocol;
  metricsProtocol: OtlpProtocol;
  /** OTEL_METRIC_EXPORT_INTERVAL: how often pushed metrics are exported. */
  metricExportIntervalMs: number;
  serviceName: string;
  environment: string;
  /** Prometheus scrape port; 0: none. */
  metricsPort: number;
}

const protocol = z.enum(['http/protobuf', 'http/json', 'grpc']);
/** A comma-separated exporter list, as the SDK specification defines it (`none` alone: no exporter). */
const exporterList = <const T extends readonly [string, ...string[]]>(allowed: T) =>
  z
    .string()
    .transform((v) => [
      ...new Set(
        v
          .split(',')
          .map((name) => name.trim())
          .filter(Boolean),
      ),
    ])
    .pipe(z.array(z.enum([...allowed, 'none'])))
    .refine((names) => !(names.includes('none') && names.length > 1), 'none stands alone')
    .transform((names) => names.filter((name) => name !== 'none') as T[number][]);

/**
 * The OTEL_* variables that decide what the SDK builds. The SDK reads the
 * rest of its own variables itself (endpoints, headers, timeouts, sampler,
 * resource attributes, batch sizes): they are its interface, documented by
 * OpenTelemetry, and the one exception to "only config.ts reads the
 * environment".
 */
const TelemetryEnvSchema = z.object({
  OTEL_SDK_DISABLED: z.string().optional(),
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url().optional(),
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: z.url().optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: protocol.default('http/protobuf'),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol.optional(),
  OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: protocol.optional(),
  OTEL_TRACES_EXPORTER: exporterList(['otlp', 'console']).optional(),
  OTEL_METRICS_EXPORTER: exporterList(['otlp', 'prometheus', 'console']).optional(),
  OTEL_METRIC_EXPORT_INTERVAL: int(100, 86_400_000).default(60_000),
});

/**
 * Parses the telemetry settings, for the bootstrap preloaded before main.
 * Unset exporters default to OTLP where an endpoint is configured (always in
 * production, where the sidecar listens), and to the Prometheus endpoint when
 * METRICS_PORT is set; OTLP speaks http/protobuf unless told otherwise.
 */
export function loadTelemetryConfig(env: Record<string, string | undefined>): TelemetryConfig {
  const base = loadConfig(env);
  const picked = Object.fromEntries(
    Object.keys(TelemetryEnvSchema.shape).map((name) => [
      name,
      env[name] === '' ? undefined : env[name],
    ]),
  );
  const parsed = TelemetryEnvSchema.safeParse(picked);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `  ${issue.path.join('.')}: ${issue.message}`,
    );
    throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  }
  const o = parsed.data;
  const pushTo = (endpoint: string | undefined) =>
    Boolean(o.OTEL_EXPORTER_OTLP_ENDPOINT || endpoint) || base.env === 'production';
  const metricsExporters = o.OTEL_METRICS_EXPORTER ?? [
    ...(base.metrics.port > 0 ? (['prometheus'] as const) : []),
    ...(pushTo(o.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) ? (['otlp'] as const) : []),
  ];
  if (metricsExporters.includes('prometheus') && base.metrics.port === 0) {
    throw new ConfigError(
      'Invalid configuration:\n  OTEL_METRICS_EXPORTER: prometheus needs METRICS_PORT (it serves /metrics there)',
    );
  }
  const disabled = ['true', '1'].includes((o.OTEL_SDK_DISABLED ?? '').toLowerCase());
  return {
    enabled: !disabled,
    disabledBecause: disabled ? 'OTEL_SDK_DISABLED is set' : undefined,
    tracesExporters:
      o.OTEL_TRACES_EXPORTER ?? (pushTo(o.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) ? ['otlp'] : []),
    metricsExporters,
    tracesProtocol: o.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? o.OTEL_EXPORTER_OTLP_PROTOCOL,
    metricsProtocol: o.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL ?? o.OTEL_EXPORTER_OTLP_PROTOCOL,
    metricExportIntervalMs: o.OTEL_METRIC_EXPORT_INTERVAL,
    serviceName: o.OTEL_SERVICE_NAME ?? 'swap-service',
    environment: base.env,
    metricsPort: base.metrics.port,
  };
}
