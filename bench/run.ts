/**
 * ExecuteSwap benchmark: the service over gRPC (with PostgreSQL advisory locks,
 * and again with Redis locks), the same use case called in-process, and the
 * same transaction by hand over pg, each at several concurrencies, on a
 * database of its own that is dropped at the end. Then our Redis lock against
 * redlock and redis-semaphore, acquire + release alone.
 *
 *   npm run bench                                   all modes at concurrency 1 and 32, then the locks
 *   npm run bench -- --only=service,service-redis   what the Redis lock costs a swap
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
import { checkBenchSchedule } from './bench-schedule-check';
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
import { executorDriver, grpcDriver, rawSqlDriver } from './swap-drivers';
import { BENCH_TODAY, ROWS_PER_SWAP, seedSwapPairs, type SwapPair } from './swap-pairs';

// Vacuumed before every cell, so each starts from the same table and index sizes
// rather than inheriting the dead tuples of the cells before it.
const VACUUM_SQL = 'vacuum (analyze) assignment, call_assignment, faculty_week, swap_record';

const say = (line: string) => process.stderr.write(`${line}\n`);

async function main(): Promise<number> {
  const options = parseBenchOptions(process.argv.slice(2), process.env);
  if (options.profileDir) await mkdir(options.profileDir, { recursive: true });
  // Every Redis key of this run (locks, fencing counter, replay cache) carries it.
  const keyPrefix = `swapbench_${randomBytes(4).toString('hex')}`;
  const usesRedis = options.locks || options.modes.includes('service-redis');
  let ok = true;
  try {
    if (options.modes.length > 0) ok = (await runSwapBench(options, keyPrefix)) && ok;
    if (options.locks) {
      const locks = await runLockBench(options, keyPrefix, say);
      process.stdout.write(`${options.modes.length > 0 ? '\n' : ''}${locks.lines.join('\n')}\n`);
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
    const drivers = new Map<BenchMode, SwapDriver>();
    if (options.modes.includes('service-redis')) {
      // The same service with Redis: locks, fencing tokens and the replay cache. Started
      // first, so its Redis handshake is over before any statement census begins.
      const redisConfig = loadConfig({
        ...env,
        REDIS_URL: options.redisUrl,
        LOCK_KEY_PREFIX: keyPrefix,
      });
      serviceRedis = await startService(redisConfig, { clock, log: pino({ level: 'silent' }) });
      lockTimer = timeRedisLocks();
      const grpc = grpcDriver(serviceRedis.port);
      grpcClients.push(grpc);
      drivers.set('service-redis', grpc.driver);
    }
    if (options.modes.includes('service') || options.modes.includes('executor')) {
      service = await startService(config, { clock, log: pino({ level: 'silent' }) });
      const grpc = grpcDriver(service.port);
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
        ),
      );
    }
    if (options.modes.includes('sql')) {
      raw = createRawPool(db.url, options.poolMax);
      const rawSwap = new RawSqlSwap(raw, clock, {
        timeoutMs: config.transactions.timeoutCeilingMs,
        shortNoticeDays: config.swaps.shortNoticeDays,
      });
      drivers.set('sql', rawSqlDriver(rawSwap));
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
        `(Redis locks + fencing + replay cache), executor = SwapExecutor.execute in-process, sql = same transaction over pg`,
      '',
    );

    // One swap per mode with every statement counted: the round trips each path makes.
    out.push('statements per swap (one swap each, outside any measurement):');
    for (const mode of options.modes) {
      let redisCommands: string[] = [];
      const statements = await statementsOf(pgClientClasses(), async () => {
        redisCommands = await redisCommandsOf(() => swapOnce(drivers.get(mode)!, pairs[0]!));
      });
      out.push(
        `  ${mode}: ${statements.length}` +
          (redisCommands.length > 0 ? `, and Redis commands: ${redisCommands.join(', ')}` : ''),
      );
      for (const s of statements) out.push(`    ${s.length > 110 ? `${s.slice(0, 110)}…` : s}`);
    }
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
    if (serviceRedis) checks.push(...(await checkRedisLocking(admin, serviceRedis.locks.stats())));
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
    await admin.end().catch(() => undefined);
    await db.drop();
    say(`bench database ${db.name} dropped`);
  }
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
