import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { CONFIG_ENV_NAMES } from '../src/config';
import type { ScheduleLockStats } from '../src/coordination/schedule-locks';
import { createBenchDatabase } from './bench-database';
import type { BenchOptions } from './bench-options';
import { percentile, renderTable, throughputOf } from './bench-report';
import { type CheckResult, checkBenchSchedule } from './bench-schedule-check';
import { type LoadSample, mergeLoadSamples, runLoad } from './load-runner';
import { type OtlpSink, startOtlpSink } from './otlp-sink';
import { checkRedisLocking } from './redis-lock-check';
import { processCpuMs } from './server-cpu';
import { actorOf, grpcDriver } from './swap-drivers';
import { seedSwapPairs, type SwapPair } from './swap-pairs';
import type { ChildMessage, ParentMessage } from './telemetry-child';

/** The team's goal: full sampling costs less than this share of throughput. */
const GOAL = 0.15;
const CHILD_SCRIPT = path.join(__dirname, 'telemetry-child.ts');
const TELEMETRY_BOOTSTRAP = path.resolve(__dirname, '../src/telemetry.ts');
const VACUUM_SQL =
  'vacuum (analyze) assignment, call_assignment, faculty_week, swap_record, idempotency_record, conflict_alert';
const READY_TIMEOUT_MS = 60_000;

type Variant = 'off' | 'on';
const VARIANTS: readonly Variant[] = ['off', 'on'];

/** One forked service. */
interface Child {
  variant: Variant;
  process: ChildProcess;
  port: number;
  /** What the child's bootstrap decided: the SDK started or not. */
  telemetry: boolean;
  /** Resolves with the lock statistics once the child has stopped. */
  stop(): Promise<ScheduleLockStats>;
}

/** A measured window, plus the service process's CPU over it. */
interface Window {
  sample: LoadSample;
  serviceCpuMs: number | undefined;
}

export interface TelemetryBenchResult {
  lines: string[];
  ok: boolean;
}

/**
 * What full-sampling telemetry costs ExecuteSwap. The OpenTelemetry SDK is
 * process-wide, so each variant is a service process of its own, started the
 * way production starts it (the bootstrap preloaded): `off` with
 * OTEL_SDK_DISABLED=true, `on` exporting every trace (always_on sampler) and
 * its metrics over OTLP/HTTP to a sink in this process that answers 200. Both
 * run with Redis, as production does, on one database with pairs of their own;
 * this process drives them over gRPC (so client spans are not charged to the
 * service), the variants taking turns within each round.
 */
export async function runTelemetryBench(
  options: BenchOptions,
  keyPrefix: string,
  say: (line: string) => void,
): Promise<TelemetryBenchResult> {
  const db = await createBenchDatabase(options.adminUrl);
  say(`telemetry bench database ${db.name} created and migrated`);
  const admin = new pg.Client({ connectionString: db.url });
  const sink = await startOtlpSink();
  const children = new Map<Variant, Child>();
  const grpc: Array<ReturnType<typeof grpcDriver>> = [];
  const stopped = new Map<Variant, ScheduleLockStats>();
  try {
    await admin.connect();
    const pairs = new Map<Variant, SwapPair[]>();
    for (const [i, variant] of VARIANTS.entries())
      pairs.set(variant, await seedSwapPairs(admin, options.pairs, i * options.pairs));

    const env = childEnv(options, db.url, keyPrefix);
    const started = await Promise.all(
      VARIANTS.map((variant) => forkChild(variant, { ...env, ...variantEnv(variant, sink) })),
    );
    for (const child of started) children.set(child.variant, child);
    const drivers = new Map(
      started.map((child) => {
        const client = grpcDriver(child.port, actorOf(`telemetry-${child.variant}`));
        grpc.push(client);
        return [child.variant, client.driver] as const;
      }),
    );

    const highest = Math.max(...options.concurrencies);
    for (const variant of VARIANTS) {
      if (options.jitWarmupMs > 0)
        await runLoad(drivers.get(variant)!, pairs.get(variant)!, {
          concurrency: highest,
          durationMs: options.jitWarmupMs,
          database: db.name,
        });
    }

    const windowMs = Math.max(1, Math.round(options.measureMs / options.rounds));
    const cells = new Map<string, Window[]>();
    for (const concurrency of options.concurrencies) {
      for (let round = 0; round < options.rounds; round++) {
        for (let i = 0; i < VARIANTS.length; i++) {
          const variant = VARIANTS[(i + round) % VARIANTS.length]!;
          const driver = drivers.get(variant)!;
          const own = pairs.get(variant)!;
          const pid = children.get(variant)!.process.pid!;
          await admin.query(VACUUM_SQL);
          if (options.warmupMs > 0)
            await runLoad(driver, own, {
              concurrency,
              durationMs: options.warmupMs,
              database: db.name,
            });
          const cpuBefore = processCpuMs(pid);
          const sample = await runLoad(driver, own, {
            concurrency,
            durationMs: windowMs,
            database: db.name,
          });
          const cpuAfter = processCpuMs(pid);
          const serviceCpuMs =
            cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore;
          const key = `${variant}/${concurrency}`;
          cells.set(key, [...(cells.get(key) ?? []), { sample, serviceCpuMs }]);
        }
      }
      for (const variant of VARIANTS) {
        const sample = mergeLoadSamples(
          cells.get(`${variant}/${concurrency}`)!.map((w) => w.sample),
        );
        say(
          `telemetry ${variant} c=${concurrency}: ${sample.swaps} swaps, ${throughputOf(sample).toFixed(1)}/s, ` +
            `p50 ${percentile(sample.latenciesMs, 50).toFixed(2)} ms` +
            (sample.failures ? `, ${sample.failures} FAILED: ${sample.errors.join(' | ')}` : ''),
        );
      }
    }

    for (const client of grpc.splice(0)) client.close();
    for (const variant of VARIANTS) stopped.set(variant, await children.get(variant)!.stop());
    children.clear();
    const exported = sink.counts();

    const allPairs = VARIANTS.flatMap((v) => pairs.get(v)!);
    const committed = allPairs.reduce((n, p) => n + p.swaps, 0);
    const onSwaps = pairs.get('on')!.reduce((n, p) => n + p.swaps, 0);
    const checks: CheckResult[] = [
      ...(await checkBenchSchedule(admin, allPairs, committed)),
      ...(await checkRedisLocking(
        admin,
        sumLockStats(stopped.get('off')!, stopped.get('on')!),
        'telemetry children',
      )),
      {
        name: 'telemetry on exported, telemetry off did not start',
        ok: started.every((c) => c.telemetry === (c.variant === 'on')) && exported.spans >= onSwaps,
        detail:
          `SDK started: ${started.map((c) => `${c.variant} ${c.telemetry}`).join(', ')}; sink got ${exported.traceExports} trace exports ` +
          `(${exported.spans} spans, ${(exported.spans / Math.max(1, onSwaps)).toFixed(1)} per swap of "on"), ` +
          `${exported.metricExports} metric exports, ${(exported.bytes / 1e6).toFixed(1)} MB ` +
          `(${(exported.bytes / Math.max(1, onSwaps) / 1e3).toFixed(1)} kB per swap)`,
      },
    ];
    const failures = [...cells.values()].flat().reduce((n, w) => n + w.sample.failures, 0);
    const lines = [
      `telemetry: the service in a child process each (Redis locks, pool ${options.poolMax}), driven over gRPC from the bench process; ` +
        `off = OTEL_SDK_DISABLED=true, on = OTEL_TRACES_SAMPLER=always_on, traces and metrics over OTLP/HTTP to a sink answering 200`,
      `  ${options.rounds} windows of ${windowMs} ms per variant and concurrency (each after a vacuum and ${options.warmupMs} ms warm-up), the variants in turn`,
      '',
      formatTelemetryTable(cells, options.concurrencies),
      '',
      'tput lost = 1 - on/off (the share of throughput telemetry takes); p50 cost = on/off - 1; service CPU = the child process (utime+stime) / swaps.',
      `goal "telemetry costs under ${GOAL * 100} % of throughput": ${goalVerdict(cells, options.concurrencies)}`,
      '',
      'telemetry correctness:',
      ...checks.map((c) => `  [${c.ok ? 'ok' : 'FAIL'}] ${c.name}: ${c.detail}`),
    ];
    return { lines, ok: failures === 0 && checks.every((c) => c.ok) };
  } finally {
    for (const client of grpc) client.close();
    await Promise.all([...children.values()].map((c) => c.stop().catch(() => undefined)));
    await sink.close();
    await admin.end().catch(() => undefined);
    await db.drop();
    say(`telemetry bench database ${db.name} dropped`);
  }
}

/** The environment of both children: the bench's database and Redis, and nothing inherited that configures the service. */
function childEnv(options: BenchOptions, url: string, keyPrefix: string): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !CONFIG_ENV_NAMES.includes(name) && !name.startsWith('OTEL_'),
    ),
  );
  return {
    ...inherited,
    NODE_ENV: 'test',
    DATABASE_URL: url,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    GRPC_REFLECTION: 'false',
    LOG_LEVEL: 'silent',
    DB_POOL_MAX: String(options.poolMax),
    DB_MIGRATE_ON_START: 'false',
    SEED_DEMO: 'false',
    REDIS_URL: options.redisUrl,
    LOCK_KEY_PREFIX: keyPrefix,
    // No Prometheus endpoint: only the OTLP push is measured.
    METRICS_PORT: '0',
    OTEL_SERVICE_NAME: 'swap-service-bench',
  };
}

function variantEnv(variant: Variant, sink: OtlpSink): NodeJS.ProcessEnv {
  return variant === 'off'
    ? { OTEL_SDK_DISABLED: 'true' }
    : { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_TRACES_SAMPLER: 'always_on' };
}

/** Forks one service with the telemetry bootstrap preloaded; resolves once it serves. */
function forkChild(variant: Variant, env: NodeJS.ProcessEnv): Promise<Child> {
  const child = fork(CHILD_SCRIPT, [], {
    // tsx/cjs first: --require runs before --import, so the loader must be a require hook.
    execArgv: ['--require', require.resolve('tsx/cjs'), '--require', TELEMETRY_BOOTSTRAP],
    env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const stopped = new Promise<ScheduleLockStats>((resolve, reject) => {
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'stopped') resolve(message.locks);
    });
    void exited.then((code) => reject(new Error(`telemetry ${variant} child exited (${code})`)));
  });
  stopped.catch(() => undefined);
  let stopping: Promise<ScheduleLockStats> | undefined;
  const stop = () => {
    if (!stopping) {
      if (child.connected) child.send({ type: 'stop' } satisfies ParentMessage);
      else child.kill();
      stopping = stopped;
    }
    return stopping;
  };
  return new Promise<Child>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`telemetry ${variant} child not ready in ${READY_TIMEOUT_MS} ms`));
    }, READY_TIMEOUT_MS);
    child.on('message', (message: ChildMessage) => {
      if (message.type !== 'ready') return;
      clearTimeout(timer);
      resolve({ variant, process: child, port: message.port, telemetry: message.telemetry, stop });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`telemetry ${variant} child exited (${code}) before it was ready`));
    });
  });
}

function sumLockStats(a: ScheduleLockStats, b: ScheduleLockStats): ScheduleLockStats {
  return {
    acquired: {
      redis: a.acquired.redis + b.acquired.redis,
      postgres: a.acquired.postgres + b.acquired.postgres,
    },
    timeouts: a.timeouts + b.timeouts,
    lost: a.lost + b.lost,
    releaseNotHeld: a.releaseNotHeld + b.releaseNotHeld,
    fallbacks: a.fallbacks + b.fallbacks,
    refusedUnavailable: a.refusedUnavailable + b.refusedUnavailable,
  };
}

interface Compared {
  concurrency: number;
  off: LoadSample;
  on: LoadSample;
  offCpuMs: number | undefined;
  onCpuMs: number | undefined;
  /** on/off throughput of each round, in the order they ran. */
  roundRatios: number[];
}

function compare(cells: ReadonlyMap<string, Window[]>, concurrencies: readonly number[]) {
  return concurrencies.map((concurrency): Compared => {
    const off = cells.get(`off/${concurrency}`)!;
    const on = cells.get(`on/${concurrency}`)!;
    const cpu = (ws: Window[]) =>
      ws.some((w) => w.serviceCpuMs === undefined)
        ? undefined
        : ws.reduce((n, w) => n + w.serviceCpuMs!, 0);
    return {
      concurrency,
      off: mergeLoadSamples(off.map((w) => w.sample)),
      on: mergeLoadSamples(on.map((w) => w.sample)),
      offCpuMs: cpu(off),
      onCpuMs: cpu(on),
      roundRatios: on.map((w, i) => throughputOf(w.sample) / throughputOf(off[i]!.sample)),
    };
  });
}

function formatTelemetryTable(
  cells: ReadonlyMap<string, Window[]>,
  concurrencies: readonly number[],
): string {
  const header = [
    'conc',
    'swaps/s off',
    'swaps/s on',
    'on/off',
    'on/off per round',
    'tput lost',
    'p50 ms off',
    'p50 ms on',
    'p50 cost',
    'p99 ms off',
    'p99 ms on',
    'service CPU ms/swap off → on',
    'pg CPU ms/swap off → on',
  ];
  const perSwap = (ms: number | undefined, s: LoadSample) =>
    ms === undefined ? 'n/a' : (ms / Math.max(1, s.swaps)).toFixed(3);
  const rows = compare(cells, concurrencies).map((c) => {
    const [off, on] = [throughputOf(c.off), throughputOf(c.on)];
    const [p50off, p50on] = [percentile(c.off.latenciesMs, 50), percentile(c.on.latenciesMs, 50)];
    return [
      String(c.concurrency),
      off.toFixed(1),
      on.toFixed(1),
      (on / off).toFixed(3),
      c.roundRatios.map((r) => r.toFixed(2)).join(' '),
      signedPercent(1 - on / off),
      p50off.toFixed(2),
      p50on.toFixed(2),
      signedPercent(p50on / p50off - 1),
      percentile(c.off.latenciesMs, 99).toFixed(2),
      percentile(c.on.latenciesMs, 99).toFixed(2),
      `${perSwap(c.offCpuMs, c.off)} → ${perSwap(c.onCpuMs, c.on)}`,
      `${perSwap(c.off.dbCpuMs, c.off)} → ${perSwap(c.on.dbCpuMs, c.on)}`,
    ];
  });
  return renderTable(header, rows, 0);
}

function goalVerdict(cells: ReadonlyMap<string, Window[]>, concurrencies: readonly number[]) {
  const missed = compare(cells, concurrencies).filter(
    (c) => 1 - throughputOf(c.on) / throughputOf(c.off) >= GOAL,
  );
  return missed.length === 0
    ? `met at every concurrency`
    : `NOT met at concurrency ${missed.map((c) => c.concurrency).join(', ')}`;
}

function signedPercent(fraction: number): string {
  return `${fraction >= 0 ? '+' : ''}${(100 * fraction).toFixed(1)} %`;
}
