/**
 * The ways a swap is driven; each is measured at every concurrency, the modes
 * taking turns. `floor` is the leanest hand-written SQL for the same swap, the
 * baseline of every ratio; `service` is the service in this process (advisory
 * locks, no telemetry SDK), for CPU profiles and the statement census. The
 * rest are the service in a child process as production starts it:
 * `service-redis` with Redis locks, idempotency and full-sampling telemetry to
 * a sink; `service-orm` the same on today's pure-ORM write path
 * (SCHEDULE_WRITES=orm); `service-secure` the same over mTLS with a bearer
 * token; `telemetry-off` the same with its SDK disabled.
 */
export const BENCH_MODES = [
  'floor',
  'service',
  'service-redis',
  'service-orm',
  'service-secure',
  'telemetry-off',
] as const;
export type BenchMode = (typeof BENCH_MODES)[number];

/** `--only=telemetry` names the two modes the telemetry cost compares. */
const TELEMETRY_PART = 'telemetry';
const TELEMETRY_MODES: readonly BenchMode[] = ['service-redis', 'telemetry-off'];
/** Not a swap mode: lock acquire + release, ours against redlock and redis-semaphore. */
const LOCKS_PART = 'locks';
/**
 * Not a swap mode: the service on the small seed and on the big program (see
 * scale-bench.ts). It generates a million-row history, so it runs only when named.
 */
const SCALE_PART = 'scale';
const DEFAULT_PARTS = [
  'floor',
  'service',
  'service-redis',
  'service-orm',
  'service-secure',
  TELEMETRY_PART,
  LOCKS_PART,
];
const PARTS = [...DEFAULT_PARTS, SCALE_PART];

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
  /** Pool size of every service and of the floor's pg.Pool alike, so none has more connections. */
  poolMax: number;
  /**
   * Write a .cpuprofile of each measured window (warm-up excluded) of the
   * in-process modes into this directory, and one of its whole life for each
   * child process.
   */
  profileDir: string | undefined;
  /** Redis of the Redis-locked modes and of the lock comparison. */
  redisUrl: string;
  /** Run the lock comparison (`--only=locks`, or no --only at all). */
  locks: boolean;
  /** Run the scale bench (`--only=scale` only: it takes minutes to generate its program). */
  scale: boolean;
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
       --only=scale: the service on the small seed and on a generated big program (228 faculty, 10 years,
       1 M swap records and idempotency keys; about 2.5 minutes): ExecuteSwap, ListSwaps, DetectConflicts,
       GetResolutionOptions side by side; never run unless named
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

  const only = list(pick('only', 'BENCH_MODES') ?? DEFAULT_PARTS.join(','));
  const unknown = only.find((part) => !PARTS.includes(part));
  if (unknown) throw new BenchUsageError(`unknown mode ${JSON.stringify(unknown)}`);
  const modes = BENCH_MODES.filter(
    (mode) =>
      only.includes(mode) || (only.includes(TELEMETRY_PART) && TELEMETRY_MODES.includes(mode)),
  );
  if (modes.length === 0 && !only.includes(LOCKS_PART) && !only.includes(SCALE_PART)) {
    throw new BenchUsageError('--only names nothing to run');
  }
  if (modes.includes('floor') && modes.length === 1) {
    // Its record and detection checks compare it with what the service does.
    throw new BenchUsageError('floor is checked against the service: run it with a service mode');
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
    scale: only.includes(SCALE_PART),
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
