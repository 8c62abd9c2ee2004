import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { AuditTrail } from './audit/audit-trail';
import { ListAuditEvents } from './audit/list-audit-events';
import { VerifyAuditChain } from './audit/verify-audit-chain';

import { Authenticator } from './auth/authenticator';
import { AuthzPolicy } from './auth/authz-policy';
import { JwtVerifier } from './auth/jwt-verifier';
import { type Config, ConfigError, loadConfig } from './config';
import { AutoResolve } from './conflicts/auto-resolve';
import { ConflictDetector } from './conflicts/conflict-detector';
import { ConflictQueries } from './conflicts/conflict-queries';
import { DetectConflicts } from './conflicts/detect-conflicts';
import { ResolutionPlanner } from './conflicts/resolution-planner';
import { ResolveConflict } from './conflicts/resolve-conflict';
import { TriageConflict } from './conflicts/triage-conflict';
import type { CircuitBreaker } from './coordination/circuit-breaker';
import { createCoordination } from './coordination/coordination';
import { IdempotencySweeper } from './coordination/idempotency-sweeper';
import { createRedisClient } from './coordination/redis-client';
import type { ScheduleLocks } from './coordination/schedule-locks';
import { DatabaseReadiness, selectOneProbe } from './db/database-readiness';
import { connectionPool, poolStats } from './db/pool-stats';
import { HUNG_REPLY_GRACE_MS, TransactionRunner } from './db/transaction-runner';
import { type Clock, programClock, systemClock } from './domain/clock';
import { openDatabase, prepareDatabase } from './dev/database-bootstrap';
import { findDemoSwaps } from './dev/demo-swaps';
import { printQuickStart } from './dev/quick-start';
import { auditHandlers } from './grpc/audit-handlers';

import { authentication } from './grpc/authentication';
import { CallContexts } from './grpc/call-contexts';
import { callLogging } from './grpc/call-logging';
import { callMetrics } from './grpc/call-metrics';
import { conflictHandlers } from './grpc/conflict-handlers';
import { scheduleHandlers } from './grpc/schedule-handlers';
import { statusNameOf } from './grpc/error-boundary';
import { inFlightLimit } from './grpc/in-flight-limit';
import { GrpcServer } from './grpc/server';
import { swapHandlers } from './grpc/swap-handlers';
import { createLogger } from './logger';
import { createServiceTelemetry, observeGauges } from './observability/service-telemetry';
import { shutdownTelemetry } from './observability/telemetry-shutdown';
import { ExecuteSwap } from './swaps/execute-swap';
import { OrmSwapWrites } from './swaps/orm-swap-writes';
import { PreparedSwapWrites } from './swaps/prepared-swap-writes';
import { RollbackSwap } from './swaps/rollback-swap';
import { SwapQueries } from './swaps/swap-queries';
import { ValidateSwap } from './swaps/validate-swap';
import type { WriteHooks } from './write-path/write-hooks';
import { ScheduleQueries } from './schedule/schedule-queries';
import { WritePath } from './write-path/write-path';

/** What tests may replace when they build the service in-process. */
export interface ServiceOverrides {
  clock?: Clock;
  log?: Logger;
  /** Write-path hooks run after the service's own (a fault test's hook right before COMMIT). */
  writeHooks?: Partial<WriteHooks>;
}

/** A started service; `stop()` drains it and releases everything it holds. */
export interface RunningService {
  port: number;
  orm: MikroORM;
  transactions: TransactionRunner;
  locks: ScheduleLocks;
  /** Absent without Redis. */
  breaker: CircuitBreaker | undefined;
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
  // "Today" is the program's civil date: its midnight, not UTC's, starts a day.
  const clock = programClock(overrides.clock ?? systemClock, config.timeZone);
  // Before anything connects: a bad policy or key-set file stops the start here.
  const policy = config.auth.policyFile
    ? AuthzPolicy.load(config.auth.policyFile)
    : AuthzPolicy.open();
  // Tokens expire on the identity provider's clock, the real one: not `clock`,
  // which tests set years ahead to make weeks swappable.
  const verifier = config.auth.jwt && JwtVerifier.create(config.auth.jwt, { clock: systemClock });
  const database = await openDatabase(config.database, {
    poolMax: config.database.poolMax,
    acquireTimeoutMs: config.transactions.timeoutCeilingMs,
    // No statement runs past the ceiling, so a reply later than that and a grace was lost.
    replyTimeoutMs: config.transactions.timeoutCeilingMs + HUNG_REPLY_GRACE_MS,
    // Most calls have longer than the ceiling left; their transactions then
    // need no timeout settings of their own.
    sessionTimeoutMs: config.transactions.timeoutCeilingMs,
    log,
  });
  const redis = createRedisClient(config.redis, log);
  try {
    const { orm } = database;
    await prepareDatabase(orm, {
      migrate: config.database.migrateOnStart,
      seedDemo: config.database.seedDemo,
      today: clock.today(),
      log,
    });

    const telemetry = createServiceTelemetry();
    const transactions = new TransactionRunner(
      orm,
      { ...config.transactions, sessionTimeoutMs: config.transactions.timeoutCeilingMs },
      telemetry,
    );
    const { locks, idempotency, breaker } = createCoordination(
      {
        locks: config.locks,
        keyPrefix: config.redis.keyPrefix,
        idempotencyRetentionMs: config.idempotency.retentionMs,
      },
      { redis, log, telemetry },
    );
    const sweeper = new IdempotencySweeper(orm, config.idempotency.sweepIntervalMs, log);
    sweeper.start();
    const pool = await connectionPool(orm);
    observeGauges(telemetry, {
      breakerState: breaker && (() => breaker.state()),
      pool: () => poolStats(pool),
      lastSweptAt: () => sweeper.lastSweptAt(),
    });

    // Every executed or rolled-back swap runs detection for its weeks, in its own transaction.
    const detector = new ConflictDetector(config.conflicts);
    // Every committed, replayed or refused mutating call leaves a row in the audit trail.
    const audit = new AuditTrail(transactions, log, config.transactions.timeoutCeilingMs);
    const extra = overrides.writeHooks ?? {};
    const writePath = new WritePath(locks, idempotency, transactions, telemetry, {
      scheduleChanged: [
        (em, change) => detector.afterScheduleChange(em, change),
        ...(extra.scheduleChanged ?? []),
      ],
      commitStatements: [audit.committedRow, ...(extra.commitStatements ?? [])],
      committed: extra.committed ?? [],
      replayed: [audit.onReplayed, ...(extra.replayed ?? [])],
    });
    const swapQueries = new SwapQueries(transactions);
    const swapWrites =
      config.swaps.scheduleWrites === 'orm' ? new OrmSwapWrites() : new PreparedSwapWrites();
    const executeSwap = new ExecuteSwap(writePath, swapWrites, clock, config.swaps, telemetry);
    const planner = new ResolutionPlanner(clock, config.swaps.shortNoticeDays);
    const resolveConflict = new ResolveConflict(
      writePath,
      transactions,
      planner,
      executeSwap,
      clock,
      telemetry,
    );

    const contexts = new CallContexts(config.transactions.defaultDeadlineMs);
    const handlerDeps = { contexts, log, audit };
    // Verified client certificates name the caller whenever mTLS is on.
    const authenticator = new Authenticator({
      verifier,
      clientCertificates: config.grpc.tls?.clientCaFile !== undefined,
    });
    const server = new GrpcServer(
      config.grpc,
      {
        swaps: swapHandlers(
          {
            executeSwap,
            validateSwap: new ValidateSwap(transactions, clock, config.swaps, telemetry),
            rollbackSwap: new RollbackSwap(
              writePath,
              swapWrites,
              swapQueries,
              clock,
              config.swaps,
              telemetry,
            ),
            queries: swapQueries,
          },
          handlerDeps,
        ),
        conflicts: conflictHandlers(
          {
            detectConflicts: new DetectConflicts(writePath, detector, telemetry),
            triage: new TriageConflict(writePath, clock),
            resolveConflict,
            autoResolve: new AutoResolve(writePath, resolveConflict, telemetry, log),
            queries: new ConflictQueries(transactions),
          },
          handlerDeps,
        ),
        audit: auditHandlers(
          {
            listAuditEvents: new ListAuditEvents(transactions),
            verifyAuditChain: new VerifyAuditChain(transactions),
          },
          handlerDeps,
        ),
        schedule: scheduleHandlers(
          { queries: new ScheduleQueries(transactions, clock) },
          handlerDeps,
        ),
      },
      // Outermost first: logging and metrics see every call, authentication goes after them.
      [
        callLogging(log, contexts),
        callMetrics(telemetry),
        // Sheds calls beyond the bound before anything below takes a database connection.
        inFlightLimit(config.grpc.limits.maxInFlightCalls, log),
        contexts.interceptor,
        authentication({
          authenticator,
          policy,
          contexts,
          log,
          // A caller that failed to authenticate has no principal to record.
          onRefused: (event) =>
            audit.recordRefusal({
              ...event,
              principal: event.principal ?? 'unauthenticated',
              status: statusNameOf(event.status),
            }),
        }),
      ],
      log,
    );
    const port = await server.start();
    log.info({ host: config.grpc.host, port }, 'serving gRPC');
    const readiness = new DatabaseReadiness(
      selectOneProbe(orm.config.get('clientUrl'), config.readiness.timeoutMs),
      config.readiness,
      log,
      (ready) => server.setReady(ready),
    );
    readiness.start();

    let stopping: Promise<void> | undefined;
    return {
      port,
      orm,
      transactions,
      locks,
      breaker,
      sweeper,
      stop: () =>
        (stopping ??= (async () => {
          await server.shutdown(config.grpc.shutdownGraceMs);
          await readiness.stop();
          await sweeper.stop();
          breaker?.shutdown();
          redis?.disconnect();
          await database.close();
          // Last, so the spans of the drained calls are exported too.
          await shutdownTelemetry();
          log.info('stopped');
        })()),
    };
  } catch (error) {
    redis?.disconnect();
    await database.close().catch(() => undefined);
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
  if (!config.database.url) {
    const [swap] = await findDemoSwaps(
      service.orm.em.fork(),
      programClock(systemClock, config.timeZone).today(),
      1,
    );
    printQuickStart(service.port, swap);
  }

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

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error('swap-service failed to start:', error);
    process.exit(1);
  });
}
