/**
 * The ways a swap is driven; each is measured at every concurrency, the modes
 * taking turns. `service` runs without Redis (PostgreSQL advisory locks),
 * `service-redis` with it (Redis locks, fencing, the replay cache),
 * `service-secure` the same over mTLS with a bearer token on every call; `sql`
 * is what `service-redis` does, by hand; the two telemetry modes are the service
 * in a child process each, as production runs it, with telemetry off and on.
 */
export const BENCH_MODES = [
  'service',
  'service-redis',
  'service-secure',
  'sql',
  'telemetry-off',
  'telemetry-on',
] as const;
export type BenchMode = (typeof BENCH_MODES)[number];

/** `--only=telemetry` names both telemetry modes. */
const TELEMETRY_PART = 'telemetry';
/** Not a swap mode: lock acquire + release, ours against redlock and redis-semaphore. */
const LOCKS_PART = 'locks';
const PARTS = ['service', 'service-redis', 'service-secure', 'sql', TELEMETRY_PART, LOCKS_PART];

/** What one bench run does; parsed once from argv and the environment, then frozen. */
export interface BenchOptions {
  /** Server to create the bench database on; its own database is only used to connect. */
  adminUrl: string;
  modes: readonly BenchMode[];
  concurrencies: readonly number[];
  /** Disjoint faculty pairs; at least the highest concurrency, so workers never share one. */
  pairs: number;
  /** Once per mode before any cell, at the highest concurrency, so V8 has optimized the hot paths. */
  jitWarmupMs: number;
  /** Before each cell, at the cell's concurrency. */
  warmupMs: number;
  measureMs: number;
  /** Windows each cell's measured time is split into, the modes taking turns between them. */
  rounds: number;
  /** Pool size of every service and of the raw pg.Pool alike, so none has more connections. */
  poolMax: number;
  /** Write a .cpuprofile of each measured window (warm-up excluded) into this directory. */
  profileDir: string | undefined;
  /** Redis of the Redis-locked modes and of the lock comparison. */
  redisUrl: string;
  /** Run the lock comparison (`--only=locks`, or no --only at all). */
  locks: boolean;
  lockConcurrencies: readonly number[];
  /** How many keys one lock holds at once. */
  lockKeys: readonly number[];
  /** Per library and cell; split into rounds that alternate the libraries. */
  lockMeasureMs: number;
  lockRounds: number;
}

const DEFAULT_ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/test';
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

const USAGE = `usage: tsx bench/run.ts [--only=${PARTS.join(',')}] [--concurrency=1,32] [--pairs=64]
                         [--jit-warmup-ms=3000] [--warmup-ms=1000] [--measure-ms=6000] [--rounds=3] [--pool-max=10]
                         [--profile-dir=/tmp/dir]
                         [--lock-concurrency=1,16] [--lock-keys=1,4] [--lock-measure-ms=2000] [--lock-rounds=5]
environment: BENCH_DATABASE_URL or DATABASE_URL (default ${DEFAULT_ADMIN_URL});
             BENCH_REDIS_URL or REDIS_URL (default ${DEFAULT_REDIS_URL});
             BENCH_MODES, BENCH_CONCURRENCY, BENCH_PAIRS, BENCH_JIT_WARMUP_MS, BENCH_WARMUP_MS, BENCH_MEASURE_MS,
             BENCH_ROUNDS, BENCH_POOL_MAX, BENCH_PROFILE_DIR, BENCH_LOCK_CONCURRENCY, BENCH_LOCK_KEYS, BENCH_LOCK_MEASURE_MS,
             BENCH_LOCK_ROUNDS stand in for the flags.`;

export class BenchUsageError extends Error {
  override name = 'BenchUsageError';
  constructor(problem: string) {
    super(`${problem}\n${USAGE}`);
  }
}

/** Flags win over environment variables, which win over the defaults. */
export function parseBenchOptions(
  argv: readonly string[],
  env: Record<string, string | undefined>,
): BenchOptions {
  const flags = new Map<string, string>();
  for (const arg of argv) {
    const match = /^--([a-z-]+)=(.*)$/.exec(arg);
    if (!match) throw new BenchUsageError(`unknown argument ${JSON.stringify(arg)}`);
    flags.set(match[1]!, match[2]!);
  }
  const pick = (flag: string, variable: string) => flags.get(flag) ?? env[variable] ?? undefined;

  const only = list(pick('only', 'BENCH_MODES') ?? PARTS.join(','));
  const unknown = only.find((part) => !PARTS.includes(part));
  if (unknown) throw new BenchUsageError(`unknown mode ${JSON.stringify(unknown)}`);
  const modes = BENCH_MODES.filter(
    (mode) =>
      only.includes(mode) || (only.includes(TELEMETRY_PART) && mode.startsWith('telemetry')),
  );
  if (modes.length === 0 && !only.includes(LOCKS_PART)) {
    throw new BenchUsageError('--only names nothing to run');
  }
  if (modes.includes('sql') && !modes.includes('service-redis')) {
    // Its census and record checks compare it with the service it stands for.
    throw new BenchUsageError('sql is checked against service-redis: run both');
  }
  const concurrencies = list(pick('concurrency', 'BENCH_CONCURRENCY') ?? '1,32').map((c) =>
    positiveInt('concurrency', c),
  );
  const pairs = positiveInt('pairs', pick('pairs', 'BENCH_PAIRS') ?? '64');
  const highest = Math.max(...concurrencies);
  if (pairs < highest) {
    throw new BenchUsageError(`--pairs=${pairs} is below the highest concurrency ${highest}`);
  }
  return Object.freeze({
    adminUrl: env.BENCH_DATABASE_URL || env.DATABASE_URL || DEFAULT_ADMIN_URL,
    modes: Object.freeze(modes),
    concurrencies: Object.freeze(concurrencies),
    pairs,
    jitWarmupMs: positiveInt(
      'jit-warmup-ms',
      pick('jit-warmup-ms', 'BENCH_JIT_WARMUP_MS') ?? '3000',
      0,
    ),
    warmupMs: positiveInt('warmup-ms', pick('warmup-ms', 'BENCH_WARMUP_MS') ?? '1000', 0),
    measureMs: positiveInt('measure-ms', pick('measure-ms', 'BENCH_MEASURE_MS') ?? '6000'),
    rounds: positiveInt('rounds', pick('rounds', 'BENCH_ROUNDS') ?? '3'),
    poolMax: positiveInt('pool-max', pick('pool-max', 'BENCH_POOL_MAX') ?? '10'),
    profileDir: pick('profile-dir', 'BENCH_PROFILE_DIR') || undefined,
    redisUrl: env.BENCH_REDIS_URL || env.REDIS_URL || DEFAULT_REDIS_URL,
    locks: only.includes(LOCKS_PART),
    lockConcurrencies: Object.freeze(
      list(pick('lock-concurrency', 'BENCH_LOCK_CONCURRENCY') ?? '1,16').map((c) =>
        positiveInt('lock-concurrency', c),
      ),
    ),
    lockKeys: Object.freeze(
      list(pick('lock-keys', 'BENCH_LOCK_KEYS') ?? '1,4').map((k) => positiveInt('lock-keys', k)),
    ),
    lockMeasureMs: positiveInt(
      'lock-measure-ms',
      pick('lock-measure-ms', 'BENCH_LOCK_MEASURE_MS') ?? '2000',
    ),
    lockRounds: positiveInt('lock-rounds', pick('lock-rounds', 'BENCH_LOCK_ROUNDS') ?? '5'),
  });
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function positiveInt(name: string, value: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new BenchUsageError(
      `--${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}
