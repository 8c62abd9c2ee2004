import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { type Config, ConfigError, loadConfig } from './config';
import { CircuitBreaker } from './coordination/circuit-breaker';
import { GuardedMutations } from './coordination/guarded-mutation';
import { IdempotencyStore } from './coordination/idempotency-store';
import { IdempotencySweeper } from './coordination/idempotency-sweeper';
import { LockAcquireTimeoutError } from './coordination/lock-errors';
import { createRedisClient } from './coordination/redis-client';
import { RedisLock } from './coordination/redis-lock';
import type { LockRedisClient } from './coordination/redis-lock-scripts';
import { ScheduleLocks } from './coordination/schedule-locks';
import { isDatabaseEmpty, seedDemoProgram } from './db/demo-seed';
import { type EmbeddedDatabase, startEmbeddedDatabase } from './db/embedded-database';
import { migrateToLatest } from './db/migrate';
import { createOrm } from './db/orm';
import { TransactionRunner } from './db/transaction-runner';
import { isoDateOf } from './domain/calendar';
import { type Clock, systemClock } from './domain/clock';
import { ConflictDetector } from './conflicts/conflict-detector';
import { ConflictQueries } from './conflicts/conflict-queries';
import { ConflictResolver } from './conflicts/conflict-resolver';
import { ConflictTriage } from './conflicts/conflict-triage';
import { ResolutionPlanner } from './conflicts/resolution-planner';
import { conflictServiceHandlers } from './grpc/conflict-service';
import { GrpcServer } from './grpc/server';
import { swapServiceHandlers } from './grpc/swap-service';
import { createLogger } from './logger';
import { poolStats } from './db/pool-stats';
import { createServiceTelemetry, observeGauges } from './observability/service-telemetry';
import { registeredTelemetry } from './observability/telemetry-registry';
import { SwapExecutor } from './swaps/swap-executor';
import { SwapQueries } from './swaps/swap-queries';
import { SwapRollback } from './swaps/swap-rollback';

/** What tests and benchmarks may replace when they build the service in-process. */
export interface ServiceOverrides {
  clock?: Clock;
  log?: Logger;
}

/** A started service; `stop()` drains it and releases everything it holds. */
export interface RunningService {
  port: number;
  orm: MikroORM;
  transactions: TransactionRunner;
  locks: ScheduleLocks;
  /** Absent without Redis. */
  breaker: CircuitBreaker | undefined;
  mutations: GuardedMutations;
  sweeper: IdempotencySweeper;
  stop(): Promise<void>;
}

/**
 * The composition root: builds every object of the service from `config`, in
 * dependency order, and starts serving. Nothing else creates connections.
 */
export async function startService(
  config: Config,
  overrides: ServiceOverrides = {},
): Promise<RunningService> {
  const log = overrides.log ?? createLogger(config.logLevel);
  const clock = overrides.clock ?? systemClock;
  let embedded: EmbeddedDatabase | undefined;
  let orm: MikroORM | undefined;
  let redis: LockRedisClient | undefined;
  try {
    let databaseUrl = config.database.url;
    if (!databaseUrl) {
      embedded = await startEmbeddedDatabase({
        dataDir: config.database.embeddedDir,
        port: config.database.embeddedPort,
        database: 'swap',
        log: (message) => log.info(message),
      });
      databaseUrl = embedded.url;
      log.info(
        { dataDir: config.database.embeddedDir, port: config.database.embeddedPort },
        'no DATABASE_URL: using the embedded PostgreSQL',
      );
    }
    orm = await createOrm({
      clientUrl: databaseUrl,
      poolMax: config.database.poolMax,
      acquireTimeoutMs: config.transactions.timeoutCeilingMs,
    });
    if (config.database.migrateOnStart) {
      const applied = await migrateToLatest(orm);
      if (applied.length > 0) log.info({ applied }, 'applied migrations');
    }
    if (config.database.seedDemo && (await isDatabaseEmpty(orm.em.fork()))) {
      const summary = await seedDemoProgram(orm.em.fork(), { today: isoDateOf(clock.now()) });
      log.info({ ...summary }, 'seeded the demo program into the empty database');
    }

    const telemetry = createServiceTelemetry();
    const transactions = new TransactionRunner(orm, config.transactions, telemetry);
    redis = createRedisClient(config.redis, log);
    const breaker = redis
      ? new CircuitBreaker({
          name: 'redis',
          failureThreshold: config.locks.breakerFailureThreshold,
          cooldownMs: config.locks.breakerCooldownMs,
          isExpected: (error) => error instanceof LockAcquireTimeoutError,
          log,
        })
      : undefined;
    const redisDeps = redis && breaker ? { client: redis, breaker } : undefined;
    const locks = new ScheduleLocks(
      redisDeps && {
        lock: new RedisLock(redisDeps.client, {
          ttlMs: config.locks.ttlMs,
          keyPrefix: config.redis.keyPrefix,
        }),
        breaker: redisDeps.breaker,
      },
      {
        waitMs: config.locks.waitMs,
        fallback: config.locks.fallback,
        retryAfterMs: config.locks.breakerCooldownMs,
      },
      log,
      telemetry,
    );
    const openOrmForGauges = orm;
    observeGauges(telemetry, {
      breakerState: breaker && (() => breaker.state()),
      pool: () => poolStats(openOrmForGauges),
    });
    log.info(
      redis ? { locks: 'redis', fallback: config.locks.fallback } : { locks: 'postgres-advisory' },
      redis
        ? 'locks: Redis, with PostgreSQL advisory locks while Redis is unavailable'
        : 'no Redis configured: locks are PostgreSQL advisory locks',
    );
    const idempotency = new IdempotencyStore(
      orm,
      { retentionMs: config.idempotency.retentionMs, keyPrefix: config.redis.keyPrefix },
      redisDeps,
      log,
    );
    const sweeper = new IdempotencySweeper(orm, config.idempotency.sweepIntervalMs, log);
    sweeper.start();
    const detector = new ConflictDetector(config.conflicts);
    const swaps = {
      executor: new SwapExecutor(transactions, clock, config.swaps, detector),
      rollback: new SwapRollback(transactions, clock, config.swaps, detector),
      queries: new SwapQueries(transactions),
      mutations: new GuardedMutations(locks, idempotency, transactions, telemetry),
    };
    const handlerDeps = {
      log,
      defaultDeadlineMs: config.transactions.defaultDeadlineMs,
      telemetry,
    };
    const server = new GrpcServer(
      config.grpc,
      {
        swaps: swapServiceHandlers(swaps, handlerDeps),
        conflicts: conflictServiceHandlers(
          {
            detector,
            planner: new ResolutionPlanner(clock, config.swaps.shortNoticeDays),
            resolver: new ConflictResolver(swaps.executor, clock),
            triage: new ConflictTriage(clock),
            queries: new ConflictQueries(transactions),
            mutations: swaps.mutations,
            locks,
            transactions,
          },
          handlerDeps,
        ),
      },
      log,
    );
    const port = await server.start();
    log.info({ host: config.grpc.host, port }, 'serving gRPC');

    const openOrm = orm;
    const openRedis = redis;
    let stopping: Promise<void> | undefined;
    return {
      port,
      orm: openOrm,
      transactions,
      locks,
      breaker,
      mutations: swaps.mutations,
      sweeper,
      stop: () =>
        (stopping ??= (async () => {
          await server.shutdown(config.grpc.shutdownGraceMs);
          await sweeper.stop();
          breaker?.shutdown();
          openRedis?.disconnect();
          await openOrm.close();
          await embedded?.stop();
          // Last, so the spans of the drained calls are exported too.
          await registeredTelemetry()?.shutdown();
          log.info('stopped');
        })()),
    };
  } catch (error) {
    redis?.disconnect();
    await orm?.close().catch(() => undefined);
    await embedded?.stop().catch(() => undefined);
    throw error;
  }
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(config.logLevel);
  const service = await startService(config, { log });
  if (!config.database.url) printQuickStart(service.port, config.database.embeddedPort);

  const stop = (signal: string) => {
    log.info({ signal }, 'shutting down');
    service.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

function printQuickStart(port: number, databasePort: number): void {
  const target = `localhost:${port}`;
  const swap = JSON.stringify({
    source_faculty_id: '<faculty uuid>',
    source_week: '<a Monday, YYYY-MM-DD>',
    target_faculty_id: '<faculty uuid>',
    target_week: '<a Monday>',
    swap_type: 'SWAP_TYPE_ONE_TO_ONE',
    reason: 'demo',
    request_id: '<a fresh uuid>',
  });
  process.stderr.write(
    [
      '',
      `swap-service is listening on ${target}, over the embedded PostgreSQL with the demo program.`,
      'Try it with grpcurl (server reflection is on):',
      `  grpcurl -plaintext ${target} list`,
      `  grpcurl -plaintext -d '{"page_size": 5}' ${target} swap.v1.SwapService/ListSwaps`,
      `  grpcurl -plaintext -d '${swap}' ${target} swap.v1.SwapService/ValidateSwap`,
      'Faculty and their FMIT weeks:',
      `  psql postgresql://postgres:postgres@127.0.0.1:${databasePort}/swap -c "select p.id, p.name, p.faculty_role, min(b.date) as fmit_week from person p join assignment a on a.person_id = p.id join block b on b.id = a.block_id where a.rotation = 'FMIT' and p.kind = 'faculty' and b.date >= current_date group by 1, 2, 3, date_trunc('week', b.date) order by 4 limit 12"`,
      '',
    ].join('\n'),
  );
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error('swap-service failed to start:', error);
    process.exit(1);
  });
}
