/**
 * ExecuteSwap benchmark: the service over gRPC (with PostgreSQL advisory locks,
 * and again with Redis locks), the same use case called in-process, and the
 * same work by hand over pg and ioredis, each at several concurrencies, on a
 * database of its own that is dropped at the end. Then the service with
 * telemetry on and off, each in a child process. Then our Redis lock against
 * redlock and redis-semaphore, acquire + release alone.
 *
 *   npm run bench                                   all modes at concurrency 1 and 32, telemetry, then the locks
 *   npm run bench -- --only=service,service-redis   what the Redis lock costs a swap
 *   npm run bench -- --only=telemetry               what full-sampling telemetry costs a swap
 *   npm run bench -- --only=locks                   the lock libraries only (no database)
 *   npm run bench -- --only=service --profile-dir=/tmp/swap-prof
 *   node --cpu-prof --cpu-prof-dir=/tmp/swap-prof --import tsx bench/run.ts --only=service
 *   npx tsx bench/cpuprofile-top.ts /tmp/swap-prof/<file>.cpuprofile
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import pg from 'pg';
import pino from 'pino';
import { loadConfig } from '../src/config';
import { ConflictDetector } from '../src/conflicts/conflict-detector';
import { createRedisClient } from '../src/coordination/redis-client';
import type { LockRedisClient } from '../src/coordination/redis-lock-scripts';
import type { Clock } from '../src/domain/clock';
import { type RunningService, startService } from '../src/main';
import { SwapExecutor } from '../src/swaps/swap-executor';
import { createBenchDatabase } from './bench-database';
import {
  type BenchMode,
  type BenchOptions,
  BenchUsageError,
  parseBenchOptions,
} from './bench-options';
import {
  type Cell,
  formatRedisCostTable,
  formatTable,
  percentile,
  throughputOf,
} from './bench-report';
import { type CheckResult, checkBenchSchedule } from './bench-schedule-check';
import { checkDetectionAgrees, checkRunAlerts } from './conflict-check';
import { runLockBench } from './lock-bench';
import {
  type LoadSample,
  mergeLoadSamples,
  profileFileOf,
  runLoad,
  type SwapDriver,
} from './load-runner';
import { createRawPool, pgClientClasses, RawSqlSwap } from './raw-sql-swap';
import { checkRedisLocking } from './redis-lock-check';
import { deleteRedisKeys } from './redis-keys';
import {
  addLockTimes,
  type LockTime,
  lockTimeBetween,
  type LockTimer,
  timeRedisLocks,
} from './service-lock-timer';
import { redisCommandsOf, statementsOf } from './statement-census';
import { compareCensus, labelOf, ORM_ONLY_LABELS } from './statement-labels';
import { actorOf, executorDriver, grpcDriver, rawSqlDriver } from './swap-drivers';
import { BENCH_TODAY, ROWS_PER_SWAP, seedSwapPairs, type SwapPair } from './swap-pairs';
import { runTelemetryBench } from './telemetry-bench';

// Vacuumed before every cell, so each starts from the same table and index sizes
// rather than inheriting the dead tuples of the cells before it.
const VACUUM_SQL =
  'vacuum (analyze) assignment, call_assignment, faculty_week, swap_record, idempotency_record, conflict_alert';
/** The team's goal for the service against the raw baseline, throughput over throughput. */
const SERVICE_VS_SQL_GOAL = 0.4;

const say = (line: string) => process.stderr.write(`${line}\n`);

async function main(): Promise<number> {
  const options = parseBenchOptions(process.argv.slice(2), process.env);
  if (options.profileDir) await mkdir(options.profileDir, { recursive: true });
  // Every Redis key of this run (locks, fencing counter, replay cache) carries it.
  const keyPrefix = `swapbench_${randomBytes(4).toString('hex')}`;
  const usesRedis =
    options.locks ||
    options.telemetry ||
    options.modes.includes('service-redis') ||
    options.modes.includes('sql');
  let ok = true;
  try {
    if (options.modes.length > 0) ok = (await runSwapBench(options, keyPrefix)) && ok;
    if (options.telemetry) {
      const telemetry = await runTelemetryBench(options, keyPrefix, say);
      process.stdout.write(
        `${options.modes.length > 0 ? '\n' : ''}${telemetry.lines.join('\n')}\n`,
      );
      ok = telemetry.ok && ok;
    }
    if (options.locks) {
      const locks = await runLockBench(options, keyPrefix, say);
      const after = options.modes.length > 0 || options.telemetry;
      process.stdout.write(`${after ? '\n' : ''}${locks.lines.join('\n')}\n`);
      ok = locks.ok && ok;
    }
  } finally {
    if (usesRedis) {
      const deleted = await deleteRedisKeys(options.redisUrl, keyPrefix);
      say(`redis keys of ${keyPrefix} deleted: ${deleted}`);
    }
  }
  return ok ? 0 : 1;
}

/** The ExecuteSwap modes; prints their report and says whether every check passed. */
async function runSwapBench(options: BenchOptions, keyPrefix: string): Promise<boolean> {
  const db = await createBenchDatabase(options.adminUrl);
  say(`bench database ${db.name} created and migrated`);
  const admin = new pg.Client({ connectionString: db.url });
  let service: RunningService | undefined;
  let serviceRedis: RunningService | undefined;
  let lockTimer: LockTimer | undefined;
  let raw: pg.Pool | undefined;
  let rawRedis: LockRedisClient | undefined;
  let rawSwap: RawSqlSwap | undefined;
  const grpcClients: Array<ReturnType<typeof grpcDriver>> = [];
  try {
    await admin.connect();
    const pairs = await seedSwapPairs(admin, options.pairs);
    const serverVersion = (
      await admin.query<{ v: string }>(`select current_setting('server_version') as v`)
    ).rows[0]!.v;

    // A fixed "today": the rules then judge every run alike, whatever the date.
    const clock: Clock = { now: () => new Date(`${BENCH_TODAY}T12:00:00Z`) };
    const env = {
      NODE_ENV: 'test',
      DATABASE_URL: db.url,
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      GRPC_REFLECTION: 'false',
      LOG_LEVEL: 'silent',
      DB_POOL_MAX: String(options.poolMax),
      DB_MIGRATE_ON_START: 'false',
      SEED_DEMO: 'false',
    };
    const config = loadConfig(env);
    // The same service with Redis: locks, fencing tokens and the replay cache.
    const redisConfig = loadConfig({
      ...env,
      REDIS_URL: options.redisUrl,
      LOCK_KEY_PREFIX: keyPrefix,
    });
    const drivers = new Map<BenchMode, SwapDriver>();
    if (options.modes.includes('service-redis')) {
      // Started first, so its Redis handshake is over before any statement census begins.
      serviceRedis = await startService(redisConfig, { clock, log: pino({ level: 'silent' }) });
      lockTimer = timeRedisLocks();
      const grpc = grpcDriver(serviceRedis.port, actorOf('service-redis'));
      grpcClients.push(grpc);
      drivers.set('service-redis', grpc.driver);
    }
    if (options.modes.includes('service') || options.modes.includes('executor')) {
      service = await startService(config, { clock, log: pino({ level: 'silent' }) });
      const grpc = grpcDriver(service.port, actorOf('service'));
      grpcClients.push(grpc);
      drivers.set('service', grpc.driver);
      drivers.set(
        'executor',
        executorDriver(
          new SwapExecutor(
            service.transactions,
            clock,
            config.swaps,
            new ConflictDetector(config.conflicts),
          ),
          actorOf('executor'),
        ),
      );
    }
    if (options.modes.includes('sql')) {
      raw = createRawPool(db.url, options.poolMax);
      // A client like the service's (fail fast, no offline queue), on the same key prefix,
      // so the raw path shares service-redis's fencing counter.
      rawRedis = createRedisClient(redisConfig.redis, pino({ level: 'silent' }))!;
      const client = rawRedis;
      // It queues nothing while connecting, so the first command must wait for the handshake.
      if (client.status !== 'ready') await new Promise((ready) => client.once('ready', ready));
      rawSwap = new RawSqlSwap(raw, rawRedis, clock, {
        timeoutMs: redisConfig.transactions.timeoutCeilingMs,
        shortNoticeDays: redisConfig.swaps.shortNoticeDays,
        detection: redisConfig.conflicts,
        idempotencyRetentionMs: redisConfig.idempotency.retentionMs,
        keyPrefix,
        lockTtlMs: redisConfig.locks.ttlMs,
        lockWaitMs: redisConfig.locks.waitMs,
      });
      drivers.set('sql', rawSqlDriver(rawSwap, actorOf('sql')));
    }

    const out: string[] = [];
    out.push(
      `swap-service bench: node ${process.version}, ${os.cpus().length} CPUs, PostgreSQL ${serverVersion}, pool ${options.poolMax} connections per mode`,
      `schedule: ${options.pairs} faculty pairs, each swap locks ${ROWS_PER_SWAP.facultyWeeksLocked} faculty_week rows, ` +
        `moves ${ROWS_PER_SWAP.assignmentsMoved} assignments + ${ROWS_PER_SWAP.callsMoved} calls (versioned), inserts ${ROWS_PER_SWAP.recordsInserted} swap_record`,
      `warm-up: ${options.jitWarmupMs} ms per mode first, then per cell ${options.warmupMs} ms warm-up and ${options.measureMs} ms measured (tables vacuumed before each cell)` +
        (options.rounds > 1
          ? `,\n  each cell in ${options.rounds} windows of ${Math.round(options.measureMs / options.rounds)} ms (each with its vacuum and warm-up), the modes taking turns`
          : ''),
      `modes: service = ExecuteSwap over gRPC (PostgreSQL advisory locks), service-redis = the same with REDIS_URL ` +
        `(Redis locks + fencing + replay cache), executor = SwapExecutor.execute in-process (no lock, no idempotency),`,
      `  sql = what service-redis does, by hand over pg and ioredis (same statements, Redis lock and replay cache; no ORM, no gRPC);`,
      `  every swap also runs conflict detection over its weeks ±7 days for the two faculty, in its transaction`,
      '',
    );

    // One swap per mode with every statement counted: the round trips each path makes.
    out.push('statements per swap (one swap each, outside any measurement):');
    const census = new Map<BenchMode, { statements: string[]; redis: string[] }>();
    for (const mode of options.modes) {
      let redis: string[] = [];
      const statements = await statementsOf(pgClientClasses(), async () => {
        redis = await redisCommandsOf(() => swapOnce(drivers.get(mode)!, pairs[0]!));
      });
      census.set(mode, { statements, redis });
      out.push(
        `  ${mode}: ${statements.length}` +
          (redis.length > 0 ? `, and Redis commands: ${redis.join(', ')}` : ''),
      );
      for (const s of statements) {
        const text = `[${labelOf(s)}] ${s}`;
        out.push(`    ${text.length > 120 ? `${text.slice(0, 120)}…` : text}`);
      }
    }
    const censusCheck = checkCensus(census);
    if (censusCheck) out.push(`  ${censusCheck.detail}`);
    out.push('');

    // The first few hundred swaps of a mode run partly unoptimized; without this the
    // first cell measured (service at concurrency 1) would pay for V8's warm-up.
    const highest = Math.max(...options.concurrencies);
    for (const mode of options.modes) {
      if (options.jitWarmupMs > 0) {
        await runLoad(drivers.get(mode)!, pairs, {
          concurrency: highest,
          durationMs: options.jitWarmupMs,
          database: db.name,
        });
      }
    }

    const cells: Cell[] = [];
    const lockTimes = new Map<number, LockTime>();
    const windowMs = Math.max(1, Math.round(options.measureMs / options.rounds));
    for (const concurrency of options.concurrencies) {
      // The modes take turns, in a rotating order, so drift in the machine's speed
      // (other work on a shared host) falls on all of them alike.
      const windows = new Map<BenchMode, LoadSample[]>(options.modes.map((m) => [m, []]));
      for (let round = 0; round < options.rounds; round++) {
        for (let i = 0; i < options.modes.length; i++) {
          const mode = options.modes[(i + round) % options.modes.length]!;
          const driver = drivers.get(mode)!;
          await admin.query(VACUUM_SQL);
          if (options.warmupMs > 0)
            await runLoad(driver, pairs, {
              concurrency,
              durationMs: options.warmupMs,
              database: db.name,
            });
          const timedBefore = mode === 'service-redis' ? lockTimer?.snapshot() : undefined;
          const sample = await runLoad(driver, pairs, {
            concurrency,
            durationMs: windowMs,
            database: db.name,
            ...(options.profileDir && {
              profileFile: profileFileOf(
                options.profileDir,
                options.rounds > 1 ? `${mode}-r${round + 1}` : mode,
                concurrency,
              ),
            }),
          });
          windows.get(mode)!.push(sample);
          if (timedBefore) {
            const spent = lockTimeBetween(timedBefore, lockTimer!.snapshot());
            const sum = lockTimes.get(concurrency);
            lockTimes.set(concurrency, sum ? addLockTimes(sum, spent) : spent);
          }
        }
      }
      for (const mode of options.modes) {
        const sample = mergeLoadSamples(windows.get(mode)!);
        cells.push({ mode, sample });
        say(
          `${mode} c=${concurrency}: ${sample.swaps} swaps, ${throughputOf(sample).toFixed(1)}/s, ` +
            `p50 ${percentile(sample.latenciesMs, 50).toFixed(2)} ms, p99 ${percentile(sample.latenciesMs, 99).toFixed(2)} ms` +
            (sample.failures ? `, ${sample.failures} FAILED: ${sample.errors.join(' | ')}` : ''),
        );
      }
    }

    out.push(formatTable(cells), '');
    const goalLine = serviceVsSqlLine(cells, options.concurrencies);
    if (goalLine) out.push(goalLine, '');
    out.push(
      'node CPU = process.cpuUsage() delta / swaps: the whole process, so the service modes include the gRPC client too;',
      "pg CPU = utime+stime of the bench database's PostgreSQL backends over the window / swaps (a lower bound; WAL writer etc. excluded).",
      '',
    );
    if (lockTimes.size > 0 && options.modes.includes('service')) {
      const extensions = [...lockTimes.values()].reduce((n, t) => n + t.extensions, 0);
      out.push(
        'Redis lock against PostgreSQL advisory lock: service-redis against service (both keep idempotency in PostgreSQL):',
        formatRedisCostTable(cells, lockTimes),
        'cost = extra time per swap (throughput: pg-lock/redis - 1; p50: redis/pg-lock - 1); goal: under 10 %.',
        'lock ms/swap = mean RedisLock.acquire + mean RedisLease.release in the measured window (wall time, event-loop waits included);',
        '  it is on the call path but outside the transaction; service-redis also does a Redis GET before and a SET after each call (replay cache)',
        `  and writes the fencing token to the faculty weeks instead of taking advisory locks. Lease extensions in the windows: ${extensions}.`,
        '',
      );
    }

    const committed = pairs.reduce((n, p) => n + p.swaps, 0);
    const checks = await checkBenchSchedule(admin, pairs, committed);
    const rawGrants = rawSwap ? [{ who: 'sql', grants: rawSwap.redisGrants() }] : [];
    if (serviceRedis)
      checks.push(
        ...(await checkRedisLocking(admin, serviceRedis.locks.stats(), 'service-redis', rawGrants)),
      );
    checks.push(await checkRunAlerts(admin, options.modes));
    if (rawSwap) {
      checks.push(await checkDetectionAgrees(admin, db.url, redisConfig.conflicts, pairs));
      if (censusCheck) checks.push(censusCheck);
    }
    out.push('correctness:');
    for (const c of checks) out.push(`  [${c.ok ? 'ok' : 'FAIL'}] ${c.name}: ${c.detail}`);
    if (options.profileDir)
      out.push('', `CPU profiles of the measured windows: ${options.profileDir}`);
    process.stdout.write(`${out.join('\n')}\n`);

    const failures = cells.reduce((n, c) => n + c.sample.failures, 0);
    return checks.every((c) => c.ok) && failures === 0;
  } finally {
    lockTimer?.stop();
    for (const grpc of grpcClients) grpc.close();
    await service?.stop();
    await serviceRedis?.stop();
    await raw?.end();
    rawRedis?.disconnect();
    await admin.end().catch(() => undefined);
    await db.drop();
    say(`bench database ${db.name} dropped`);
  }
}

/**
 * Whether `sql` sends what `service-redis` sends, step by step: the same
 * statements in the same order, bar the version-check selects MikroORM adds
 * before its updates (the raw updates check the version in their WHERE), and
 * the same Redis commands. Undefined unless both modes ran.
 */
function checkCensus(
  census: ReadonlyMap<BenchMode, { statements: string[]; redis: string[] }>,
): CheckResult | undefined {
  const service = census.get('service-redis');
  const raw = census.get('sql');
  if (!service || !raw) return undefined;
  const diff = compareCensus(service.statements, raw.statements);
  const sameRedis = service.redis.join(',') === raw.redis.join(',');
  const ormOnly = service.statements.filter((s) => ORM_ONLY_LABELS.has(labelOf(s))).length;
  const ok =
    diff.onlyService.length === 0 && diff.onlyRaw.length === 0 && diff.sameOrder && sameRedis;
  return {
    name: 'sql sends what service-redis sends',
    ok,
    detail: ok
      ? `sql vs service-redis: the same ${raw.statements.length} statements in the same order and the same Redis commands; ` +
        `service-redis sends ${ormOnly} more, MikroORM's version-check selects, which sql folds into its updates' WHERE`
      : `sql vs service-redis differ: only service-redis [${diff.onlyService.join(', ')}], only sql [${diff.onlyRaw.join(', ')}], ` +
        `same order ${diff.sameOrder}, Redis ${service.redis.join(',')} vs ${raw.redis.join(',')}`,
  };
}

/** Each service mode's throughput as a share of sql's, against the goal. */
function serviceVsSqlLine(cells: readonly Cell[], concurrencies: readonly number[]): string {
  const parts: string[] = [];
  let met = true;
  for (const mode of ['service', 'service-redis'] as const) {
    for (const concurrency of concurrencies) {
      const at = (m: BenchMode) =>
        cells.find((c) => c.mode === m && c.sample.concurrency === concurrency);
      const [cell, raw] = [at(mode), at('sql')];
      if (!cell || !raw) continue;
      const share = throughputOf(cell.sample) / throughputOf(raw.sample);
      met &&= share >= SERVICE_VS_SQL_GOAL;
      parts.push(`${mode} c=${concurrency} ${share.toFixed(2)}`);
    }
  }
  if (parts.length === 0) return '';
  return (
    `service ÷ sql throughput: ${parts.join(', ')}; goal ≥ ${SERVICE_VS_SQL_GOAL}: ` +
    (met ? 'met' : 'NOT met')
  );
}

/** One committed swap outside the measurements, with the pair's state kept in step. */
async function swapOnce(driver: SwapDriver, pair: SwapPair): Promise<void> {
  await driver(pair);
  pair.flipped = !pair.flipped;
  pair.swaps++;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof BenchUsageError) {
      console.error(error.message);
      process.exit(2);
    }
    console.error('bench failed:', error);
    process.exit(1);
  },
);
