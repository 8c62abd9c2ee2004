import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createTestPki, clientCredentials, tlsEnv } from '../support/certificates';
import { freePort } from '../support/service-process';
import { ChaosClient } from './chaos-client';
import { ChaosDatabase } from './chaos-database';
import { scheduleRows, seedChaosSchedule } from './chaos-schedule';
import { type CheckResult, checkHistory } from './checker';
import { readEndState } from './end-state';
import { FaultProxy } from './fault-proxy';
import { FaultInjector } from './faults';
import { HistoryWriter, readHistory } from './history';
import { RedisInstance } from './redis-instance';
import { Replica } from './replica';
import { formatReport } from './report';
import { Workload } from './workload';

const REPO_ROOT = path.resolve(__dirname, '../..');
const run = promisify(execFile);

/** The principal of the workload's client certificate, bound to every method by the run's policy. */
const WORKLOAD_SPIFFE_ID = 'spiffe://chaos.swap-service.invalid/ns/chaos/sa/workload';
const LOCK_KEY_PREFIX = 'chaos';
/** Short, so a Redis pause goes past it in a couple of seconds. */
const LOCK_TTL_MS = 2_000;
const SETTLE_MS = 180_000;

export interface ChaosOptions {
  durationMs: number;
  replicas: number;
  /** Concurrent workload clients. */
  clients: number;
  /** Faults of every kind to inject over the run. */
  faultsPerKind: number;
  /** Groups of three faculty members in the schedule. */
  groups: number;
  historyFile: string;
  /** Skip `npm run build` (dist/ is already current). */
  skipBuild: boolean;
  /** Checks to leave out, by name (known service defects); reported as SKIP. */
  skipChecks: ReadonlySet<string>;
  log: (line: string) => void;
}

export interface ChaosOutcome {
  passed: boolean;
  results: CheckResult[];
  report: string;
  historyFile: string;
  /** Logical operations the workload carried out. */
  operations: number;
  /** Faults injected, by kind. */
  faults: Record<string, number>;
}

/**
 * One chaos run: its own PostgreSQL, Redis and N replicas started as
 * production starts them, a fault proxy between each replica and each store,
 * the workload and the faults for the duration, a settle phase with every
 * fault healed, the end state read, and the history checked.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosOutcome> {
  const { log } = options;
  if (!options.skipBuild) {
    log('building dist/ (npm run build)');
    await run(
      process.execPath,
      [path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
      {
        cwd: REPO_ROOT,
      },
    );
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'swap-chaos-'));
  const cleanups: (() => unknown)[] = [];
  const history = new HistoryWriter(options.historyFile);
  let passed = false;
  try {
    const pki = await createTestPki();
    cleanups.push(() => pki.remove());
    const client = await pki.ca.issue({
      commonName: 'chaos-workload',
      usage: 'client',
      uris: [WORKLOAD_SPIFFE_ID],
    });
    const policyFile = path.join(dir, 'policy.yaml');
    await writeFile(policyFile, policy());

    const database = new ChaosDatabase(dir, await freePort());
    await database.start();
    cleanups.push(() => database.stop());
    await database.migrate();
    const schedule = await seedChaosSchedule(database.admin(), options.groups);
    history.write({ kind: 'start', ...(await scheduleRows((sql) => database.query(sql))) });
    log(
      `PostgreSQL on ${database.port}: ${schedule.groups.length} groups, weeks ${schedule.firstWeek}..${schedule.lastWeek}`,
    );

    const redis = new RedisInstance(await freePort());
    await redis.start();
    cleanups.push(() => redis.kill());

    const proxies = await Promise.all(
      Array.from({ length: options.replicas }, async () => ({
        pg: await FaultProxy.start(() => database.port),
        redis: await FaultProxy.start(() => redis.port),
      })),
    );
    cleanups.push(() => Promise.all(proxies.flatMap((p) => [p.pg.close(), p.redis.close()])));

    const replicas: Replica[] = [];
    for (let i = 0; i < options.replicas; i++) {
      const env = {
        ...tlsEnv(pki.server, pki.ca),
        AUTHZ_POLICY_FILE: policyFile,
        DATABASE_URL: database.urlVia(proxies[i]!.pg.port),
        REDIS_URL: `redis://127.0.0.1:${proxies[i]!.redis.port}`,
        GRPC_HOST: '127.0.0.1',
        METRICS_PORT: String(await freePort()),
        LOCK_KEY_PREFIX,
        LOCK_TTL_MS: String(LOCK_TTL_MS),
        LOCK_WAIT_MS: '3000',
        BREAKER_COOLDOWN_MS: '2000',
        DB_POOL_MAX: '8',
        DB_MIGRATE_ON_START: 'false',
        SEED_DEMO: 'false',
      };
      replicas.push(new Replica(i, await freePort(), env, path.join(dir, `replica-${i}.log`)));
    }
    cleanups.push(() => Promise.all(replicas.map((r) => r.stop())));
    await Promise.all(replicas.map((r) => r.start()));
    log(
      `${replicas.length} replicas serving on ${replicas.map((r) => r.port).join(', ')}; logs in ${dir}`,
    );

    const credentials = clientCredentials(pki.ca, client);
    const clients = replicas.map((r) => new ChaosClient(r.port, credentials));
    cleanups.push(() => clients.forEach((c) => c.close()));

    const t0 = Date.now();
    const sampler = setInterval(() => replicas.forEach((r) => r.sampleRss()), 1000);
    cleanups.push(() => clearInterval(sampler));
    const workload = new Workload(clients, schedule, history, t0);
    const faults = new FaultInjector(
      { database, redis, replicas, proxies, schedule, lockTtlMs: LOCK_TTL_MS },
      history,
      t0,
    );
    const stopped = () => Date.now() - t0 >= options.durationMs;
    const progress = setInterval(() => {
      const f = workload.figures();
      log(
        `t=${((Date.now() - t0) / 1000).toFixed(0)}s operations ${f.operations}, attempts ${f.attempts}`,
      );
    }, 10_000);
    cleanups.push(() => clearInterval(progress));
    await Promise.all([
      workload.run(options.clients, stopped),
      faults.run(options.durationMs, options.faultsPerKind, stopped),
    ]);
    clearInterval(progress);

    log('faults over; healing and settling uncertain calls');
    for (const p of proxies) {
      p.pg.heal();
      p.redis.heal();
    }
    for (const r of replicas) if (!r.running()) await r.restart();
    await workload.settle(Date.now() + SETTLE_MS);
    // Long enough for a lease extension or a sweep in flight to finish.
    await sleep(Math.max(1500, LOCK_TTL_MS));
    const replicaOfPort = (port: number) => {
      const i = proxies.findIndex((p) => p.pg.upstreamPorts().includes(port));
      return i < 0 ? undefined : i;
    };
    history.write(
      await readEndState(
        database,
        redis,
        LOCK_KEY_PREFIX,
        schedule.firstWeek,
        schedule.lastWeek,
        replicaOfPort,
      ),
    );
    replicas.forEach((r) => r.sampleRss());
    history.write({
      kind: 'replicas',
      maxRssMb: replicas.map((r) => Math.round(r.maxRssMb)),
      restarts: replicas.map((r) => r.restarts),
    });
    await history.close();

    const records = readHistory(options.historyFile);
    const results = checkHistory(records, options.skipChecks);
    const report = formatReport(records, results, [...options.skipChecks]);
    passed = results.every((r) => r.passed);
    return {
      passed,
      results,
      report,
      historyFile: options.historyFile,
      operations: workload.figures().operations,
      faults: faults.figures().injected,
    };
  } finally {
    await history.close().catch(() => undefined);
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        log(`cleanup: ${(error as Error).message}`);
      }
    }
    if (passed) await rm(dir, { recursive: true, force: true });
    else log(`kept the run's directory (replica logs): ${dir}`);
  }
}

/** Every method the workload calls, for its one principal. */
function policy(): string {
  const methods = [
    'SwapService/ExecuteSwap',
    'SwapService/ValidateSwap',
    'SwapService/RollbackSwap',
    'SwapService/GetSwap',
    'SwapService/ListSwaps',
    'ConflictService/DetectConflicts',
    'ConflictService/ListConflicts',
    'ConflictService/GetConflict',
    'ConflictService/AcknowledgeConflict',
    'ConflictService/IgnoreConflict',
    'ConflictService/GetResolutionOptions',
    'ConflictService/ResolveConflict',
    'ConflictService/AutoResolve',
  ];
  return [
    'roles:',
    '  chaos:',
    '    permissions:',
    ...methods.map((m) => `      - swap.v1.${m}`),
    'principals:',
    `  ${WORKLOAD_SPIFFE_ID}: [chaos]`,
    '',
  ].join('\n');
}
