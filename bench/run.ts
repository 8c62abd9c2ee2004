/**
 * ExecuteSwap benchmark. `floor` is the baseline every ratio is taken
 * against: the leanest hand-written SQL for the same swap (bench/floor-swap.ts:
 * the same rows locked and moved, the same record, idempotency key, detection,
 * audit row, judgeSwap and Redis lock grant, in six round trips of prepared
 * statements). `service` is the real service in this process through its
 * composition root (PostgreSQL advisory locks, no telemetry SDK): the mode
 * --profile-dir profiles and the statement census counts. Every other mode is
 * the service in a child process, started as production starts it and
 * measured by its own CPU and memory: `service-redis` (Redis locks + fencing,
 * idempotency with the replay cache, telemetry on with full sampling to an
 * OTLP sink), `service-orm` (the same on today's pure-ORM write path,
 * SCHEDULE_WRITES=orm), `service-secure` (the same over mTLS with a bearer
 * token) and `telemetry-off` (the same with OTEL_SDK_DISABLED=true). All run
 * over gRPC at several concurrencies on a database of their own that is
 * dropped at the end, and end with correctness checks. Then our Redis lock
 * against redlock and redis-semaphore, acquire + release alone.
 *
 *   npm run bench                                   every mode at concurrency 1 and 32, then the locks
 *   npm run bench -- --only=floor,service-redis --concurrency=1,32   the service against its floor
 *   npm run bench -- --only=floor,service-redis,service-orm   what the lean write path gains
 *   npm run bench -- --only=service-redis,service-secure   what mTLS + a bearer token cost a swap
 *   npm run bench -- --only=telemetry               what full-sampling telemetry costs a swap
 *   npm run bench -- --only=locks                   the lock libraries only (no database)
 *   npm run bench -- --only=scale                   small seed against the big program (minutes; never by default)
 *   npm run bench -- --only=service --profile-dir=/tmp/swap-prof   CPU profiles of the measured windows
 *                                                   (of this process: the in-process modes), for Chrome DevTools
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import pg from 'pg';
import { loadConfig } from '../src/config';
import { createBenchDatabase } from './bench-database';
import { BenchIdentity } from './bench-identity';
import { BenchPki } from './bench-pki';
import {
  type BenchMode,
  type BenchOptions,
  BenchUsageError,
  parseBenchOptions,
} from './bench-options';
import {
  type Cell,
  formatGoals,
  formatMemory,
  formatTable,
  type MemoryRow,
  percentile,
  summaryLine,
  throughputOf,
} from './bench-report';
import { type CheckResult, checkBenchSchedule } from './bench-schedule-check';
import { probeDetection } from './conflict-probe';
import { runLockBench } from './lock-bench';
import { runScaleBench } from './scale-bench';
import { type LoadSample, mergeLoadSamples, profileFileOf, runLoad } from './load-runner';
import { type OtlpSink, startOtlpSink } from './otlp-sink';
import { pgClientClasses } from './floor-swap';
import { residentOf } from './process-memory';
import { deleteRedisKeys } from './redis-keys';
import { installStatementCounter, redisCommandsOf } from './statement-census';
import {
  type CensusSwap,
  checkModeRecords,
  checkRecords,
  checkTelemetryExport,
} from './swap-checks';
import { inChildProcess, startMode, type SwapMode } from './swap-modes';
import { nextSwapOf, ROWS_PER_SWAP, seedSwapPairs, type SwapPair } from './swap-pairs';

// Vacuumed before every window, so each starts from the same table and index
// sizes rather than inheriting the dead tuples of the ones before it.
const VACUUM_SQL =
  'vacuum (analyze) assignment, call_assignment, faculty_week, swap_record, idempotency_record, conflict_alert';

const say = (line: string) => process.stderr.write(`${line}\n`);

async function main(): Promise<number> {
  const options = parseBenchOptions(process.argv.slice(2), process.env);
  if (options.profileDir) await mkdir(options.profileDir, { recursive: true });
  // Every Redis key of this run (locks, fencing counter, replay cache) carries it.
  const keyPrefix = `swapbench_${randomBytes(4).toString('hex')}`;
  let ok = true;
  try {
    if (options.modes.length > 0) ok = (await runSwapBench(options, keyPrefix)) && ok;
    if (options.locks) {
      const locks = await runLockBench(options, keyPrefix, say);
      process.stdout.write(`${options.modes.length > 0 ? '\n' : ''}${locks.lines.join('\n')}\n`);
      ok = locks.ok && ok;
    }
    if (options.scale) {
      const scale = await runScaleBench(options, keyPrefix, say);
      process.stdout.write(`\n${scale.lines.join('\n')}\n`);
      ok = scale.ok && ok;
    }
  } finally {
    if (options.locks || options.scale || options.modes.some((m) => m !== 'service')) {
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
  const sinks = new Map<BenchMode, OtlpSink>();
  const identity = await BenchIdentity.create();
  let pki: BenchPki | undefined;
  const modes: SwapMode[] = [];
  try {
    if (options.modes.includes('service-secure')) {
      pki = await BenchPki.create();
      say('service-secure certificates made (openssl)');
    }
    await admin.connect();
    const pairs = await seedSwapPairs(admin, options.pairs);
    // A fresh pair per mode for its census swap, so their records compare; the
    // last one, with free weeks after it, is the detection probe's.
    const censusPairs = await seedSwapPairs(admin, options.modes.length, options.pairs);
    const serverVersion = (
      await admin.query<{ v: string }>(`select current_setting('server_version') as v`)
    ).rows[0]!.v;
    for (const mode of options.modes)
      if (inChildProcess(mode)) sinks.set(mode, await startOtlpSink());
    // Before any mode connects: see installStatementCounter.
    const counter = installStatementCounter(pgClientClasses());
    const setting = { databaseUrl: db.url, keyPrefix, sinks, identity, pki };
    const started = await Promise.allSettled(
      options.modes.map((mode) => startMode(mode, options, setting)),
    );
    for (const s of started) if (s.status === 'fulfilled') modes.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    say(`started: ${modes.map((m) => m.name).join(', ')}`);

    const out: string[] = [
      `swap-service bench: node ${process.version}, ${os.cpus().length} CPUs, PostgreSQL ${serverVersion}, pool ${options.poolMax} connections per mode`,
      `schedule: ${options.pairs} faculty pairs, each swap locks ${ROWS_PER_SWAP.facultyWeeksLocked} faculty_week rows, ` +
        `moves ${ROWS_PER_SWAP.assignmentsMoved} assignments + ${ROWS_PER_SWAP.callsMoved} calls (versioned), inserts ${ROWS_PER_SWAP.recordsInserted} swap_record`,
      `warm-up: ${options.jitWarmupMs} ms per mode first, then per cell ${options.rounds} windows of ` +
        `${windowMsOf(options)} ms, each after a vacuum and ${options.warmupMs} ms warm-up, the modes taking turns`,
      'modes: floor = the leanest hand-written SQL for the same swap (pg + ioredis: the same rows locked and moved, record,',
      '  idempotency key, detection, audit row, judgeSwap and Redis lock grant; 6 round trips, named prepared statements), the',
      '  baseline of every ratio; service = ExecuteSwap over gRPC to the service in this process (advisory locks, no telemetry',
      '  SDK); in a child process each, started as production starts it: service-redis = Redis locks + fencing + replay cache,',
      '  telemetry on (OTEL_TRACES_SAMPLER=always_on, traces and metrics to a sink answering 200), service-orm = service-redis',
      '  with SCHEDULE_WRITES=orm (the pure-ORM write path), service-secure = service-redis over mTLS (client certificate',
      '  required, its SPIFFE ID the principal) with a bearer token on every call, connections reused (no handshake measured),',
      '  telemetry-off = service-redis with OTEL_SDK_DISABLED=true; every swap also runs conflict detection over its weeks',
      '  ±7 days for the two faculty, in its transaction',
      '',
      'statements per swap (one swap each, on a pair of its own, outside any measurement):',
    ];
    const census: CensusSwap[] = [];
    for (const [i, mode] of modes.entries()) {
      const pair = censusPairs[i]!;
      const requestId = randomUUID();
      let redis: string[] = [];
      const swap = async () => {
        redis = await redisCommandsOf(() => mode.execute({ ...nextSwapOf(pair), requestId }));
      };
      const statements = mode.pid === undefined ? await counter.during(swap) : void (await swap());
      pair.flipped = !pair.flipped;
      pair.swaps++;
      census.push({ mode, pair, requestId, statements, redis });
      if (!statements) {
        out.push(`  ${mode.name}: in a child process, not counted`);
        continue;
      }
      out.push(
        `  ${mode.name}: ${statements.length}` +
          (redis.length > 0 ? `, and Redis commands: ${redis.join(', ')}` : ''),
      );
      for (const s of statements) out.push(`    ${s.length > 120 ? `${s.slice(0, 120)}…` : s}`);
    }
    out.push('');

    const { cells, memory } = await measure(options, modes, pairs, db.name, admin);
    out.push(formatTable(cells), '', ...formatGoals(cells, options.concurrencies), '');
    out.push(
      "node CPU = utime+stime of the process serving the swaps / swaps: the child's own for child modes (gRPC server",
      'included), this process for floor and service (service: gRPC client and server both); client CPU = this process',
      '(the gRPC client) for child modes; pg CPU = utime+stime of the bench database backends / swaps (a lower bound: WAL',
      'writer etc. excluded).',
      '',
      `memory (RSS from /proc/<pid>/status; idle = after start-up and every mode's warm-up, before any measured window;`,
      `peak = highest VmRSS sampled every 100 ms over the c=${Math.max(...options.concurrencies)} windows; floor and service share this process with the bench):`,
      formatMemory(memory),
      '',
    );
    const allPairs = [...pairs, ...censusPairs];
    const committed = allPairs.reduce((n, p) => n + p.swaps, 0);
    const checks: CheckResult[] = [
      ...(await checkBenchSchedule(admin, allPairs, committed)),
      ...(await checkModeRecords(admin, modes)),
    ];
    const reader = modes.find((m) => m.clients)?.clients;
    if (reader) checks.push(await checkRecords(admin, census, reader));
    const service =
      modes.find((m) => m.clients && m.pid === undefined) ?? modes.find((m) => m.clients);
    if (modes.some((m) => m.name === 'floor') && service) {
      // The thresholds every mode runs with: the bench sets none.
      const config = loadConfig({});
      checks.push(await probeDetection(admin, config, censusPairs.at(-1)!, service.clients!));
    }
    if (sinks.size > 0) {
      // Stopping flushes what the SDK still holds.
      for (const mode of modes) if (mode.pid !== undefined) await mode.stop();
      const swaps = await admin.query<{ actor: string; n: number }>(
        'select requested_by as actor, count(*)::int as n from swap_record group by 1',
      );
      const swapsOf = (name: BenchMode) =>
        swaps.rows.find((r) => r.actor === modes.find((m) => m.name === name)?.actor)?.n ?? 0;
      checks.push(checkTelemetryExport(sinks, swapsOf));
    }
    out.push('correctness:');
    for (const c of checks) out.push(`  [${c.ok ? 'ok' : 'FAIL'}] ${c.name}: ${c.detail}`);
    if (options.profileDir)
      out.push('', `CPU profiles of the measured windows: ${options.profileDir}`);
    const summary = summaryLine(cells, options.concurrencies);
    if (summary) out.push('', summary);
    process.stdout.write(`${out.join('\n')}\n`);

    const failures = cells.reduce((n, c) => n + c.sample.failures, 0);
    return checks.every((c) => c.ok) && failures === 0;
  } finally {
    for (const mode of modes)
      await mode.stop().catch((error: unknown) => say(`stopping ${mode.name}: ${String(error)}`));
    for (const sink of sinks.values()) await sink.close();
    identity.remove();
    await pki?.remove();
    await admin.end().catch(() => undefined);
    await db.drop();
    say(`bench database ${db.name} dropped`);
  }
}

function windowMsOf(options: BenchOptions): number {
  return Math.max(1, Math.round(options.measureMs / options.rounds));
}

/**
 * Every mode at every concurrency. The first few hundred swaps of a mode run
 * partly unoptimized, so each mode first runs a while at the highest
 * concurrency; then, per concurrency, the modes take turns window by window,
 * in a rotating order, so drift in the machine's speed (other work on a shared
 * host) falls on all of them alike.
 */
async function measure(
  options: BenchOptions,
  modes: readonly SwapMode[],
  pairs: readonly SwapPair[],
  database: string,
  admin: pg.Client,
): Promise<{ cells: Cell[]; memory: MemoryRow[] }> {
  const highest = Math.max(...options.concurrencies);
  for (const mode of modes) {
    if (options.jitWarmupMs > 0)
      await runLoad(mode.execute, pairs, {
        concurrency: highest,
        durationMs: options.jitWarmupMs,
        database,
      });
  }
  const idle = new Map(modes.map((m) => [m.name, residentOf(m.pid)?.rssBytes]));
  const cells: Cell[] = [];
  for (const concurrency of options.concurrencies) {
    const windows = new Map<BenchMode, LoadSample[]>(modes.map((m) => [m.name, []]));
    for (let round = 0; round < options.rounds; round++) {
      for (let i = 0; i < modes.length; i++) {
        const mode = modes[(i + round) % modes.length]!;
        const load = { concurrency, database, servicePid: mode.pid };
        await admin.query(VACUUM_SQL);
        if (options.warmupMs > 0)
          await runLoad(mode.execute, pairs, { ...load, durationMs: options.warmupMs });
        const name = options.rounds > 1 ? `${mode.name}-r${round + 1}` : mode.name;
        const sample = await runLoad(mode.execute, pairs, {
          ...load,
          durationMs: windowMsOf(options),
          profileFile:
            options.profileDir && mode.pid === undefined
              ? profileFileOf(options.profileDir, name, concurrency)
              : undefined,
        });
        windows.get(mode.name)!.push(sample);
      }
    }
    for (const mode of modes) {
      const sample = mergeLoadSamples(windows.get(mode.name)!);
      cells.push({ mode: mode.name, sample, windows: windows.get(mode.name)! });
      say(
        `${mode.name} c=${concurrency}: ${sample.swaps} swaps, ${throughputOf(sample).toFixed(1)}/s, ` +
          `p50 ${percentile(sample.latenciesMs, 50).toFixed(2)} ms, p99 ${percentile(sample.latenciesMs, 99).toFixed(2)} ms` +
          (sample.failures ? `, ${sample.failures} FAILED: ${sample.errors.join(' | ')}` : ''),
      );
    }
  }
  const memory = modes.map((mode): MemoryRow => ({
    mode: mode.name,
    where: mode.pid === undefined ? 'this process' : 'child',
    idleBytes: idle.get(mode.name),
    concurrency: highest,
    underLoad: cells.find((c) => c.mode === mode.name && c.sample.concurrency === highest)?.sample
      .resident,
    lifetimePeakBytes: residentOf(mode.pid)?.peakBytes,
  }));
  return { cells, memory };
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
