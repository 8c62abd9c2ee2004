import { Redis } from 'ioredis';
import type { BenchOptions } from './bench-options';
import { percentile, renderTable } from './bench-report';
import {
  type LockContender,
  ourContender,
  redlockContender,
  semaphoreContender,
} from './lock-contenders';
import { runWorkers, type WorkerRun } from './load-runner';

/**
 * Long enough that our lease's extension timer (every ttl/3) never fires inside
 * a window, since redlock's `acquire` and redis-semaphore with
 * `refreshInterval: 0` have no timer at all.
 */
const LOCK_TTL_MS = 10_000;
const JIT_WARMUP_MS = 1_500;
const WINDOW_WARMUP_MS = 100;
const OURS = 'ours';

/** One lock cell: a key count, a concurrency, and every worker on the same keys or not. */
interface LockCell {
  keys: number;
  concurrency: number;
  contended: boolean;
}

/** One library's windows in one cell, summed; latencies pooled. */
interface LockSample extends LockCell, WorkerRun {
  contender: string;
  /** Attempts that got every key, then released them. */
  granted: number;
  /** Attempts refused because another worker held a key. */
  refused: number;
  /** Attempts per second of each window, in the order they ran. */
  windowRates: number[];
  /** CPU of the Redis server over the windows; it may serve others too. */
  redisCpuMs: number;
}

export interface LockBenchResult {
  lines: string[];
  ok: boolean;
}

/**
 * Acquire + release per second on one Redis: our RedisLock against node-redlock
 * and redis-semaphore, each with an ioredis client of its own, at every key
 * count and concurrency, each worker on keys of its own; then once with every
 * worker on the same key. The libraries take turns within each cell, in a
 * rotating order, so drift in the machine's speed is shared among them.
 */
export async function runLockBench(
  options: BenchOptions,
  keyPrefix: string,
  say: (line: string) => void,
): Promise<LockBenchResult> {
  const clients = Array.from({ length: 4 }, () => new Redis(options.redisUrl));
  try {
    const [admin, forOurs, forRedlock, forSemaphore] = clients as [Redis, Redis, Redis, Redis];
    await Promise.all(clients.map((c) => c.ping()));
    const contenders: LockContender[] = [
      ourContender(forOurs, keyPrefix, LOCK_TTL_MS),
      redlockContender(forRedlock, keyPrefix, LOCK_TTL_MS),
      semaphoreContender(forSemaphore, keyPrefix, LOCK_TTL_MS),
    ];
    const redisVersion = /^redis_version:(\S+)/m.exec(await admin.info('server'))?.[1] ?? '?';

    const highest = Math.max(...options.lockConcurrencies);
    const cells: LockCell[] = options.lockKeys.flatMap((keys) =>
      options.lockConcurrencies.map((concurrency) => ({ keys, concurrency, contended: false })),
    );
    if (highest > 1)
      cells.push({ keys: Math.min(...options.lockKeys), concurrency: highest, contended: true });
    const run = (contender: LockContender, cell: LockCell, ms: number, tag: string) =>
      runLockLoad(contender, cell, ms, tag, admin);

    for (const contender of contenders)
      for (const cell of cells) await run(contender, cell, JIT_WARMUP_MS / cells.length, 'jit');

    const samples: LockSample[] = [];
    const windowMs = Math.max(1, Math.round(options.lockMeasureMs / options.lockRounds));
    for (const [c, cell] of cells.entries()) {
      const rounds = new Map<string, LockSample[]>(contenders.map((k) => [k.name, []]));
      for (let round = 0; round < options.lockRounds; round++) {
        for (let i = 0; i < contenders.length; i++) {
          const contender = contenders[(i + round) % contenders.length]!;
          const tag = `cell${c}r${round}`;
          await run(contender, cell, WINDOW_WARMUP_MS, `${tag}w`);
          rounds.get(contender.name)!.push(await run(contender, cell, windowMs, tag));
        }
      }
      for (const contender of contenders) {
        const s = mergeLockSamples(rounds.get(contender.name)!);
        samples.push(s);
        say(
          `lock ${s.contender} keys=${s.keys} c=${s.concurrency}${s.contended ? ' contended' : ''}: ` +
            `${rateOf(s).toFixed(0)} attempts/s, ${s.granted} granted, ${s.refused} refused` +
            (s.failures ? `, ${s.failures} FAILED: ${s.errors.join(' | ')}` : ''),
        );
      }
    }

    const slower = slowerCells(samples);
    const failures = samples.reduce((n, s) => n + s.failures, 0);
    // Our lease alone has a timer; an attempt shorter than its period never ran it.
    const slowestMs = samples.reduce(
      (m, s) => s.latenciesMs.reduce((a, b) => Math.max(a, b), m),
      0,
    );
    const timerMs = Math.floor(LOCK_TTL_MS / 3);
    const lines = [
      `lock acquire + release on one Redis ${redisVersion}: ${options.lockRounds} rounds of ${windowMs} ms per library and cell, ` +
        `the libraries in turn; ttl ${LOCK_TTL_MS} ms; one ioredis client per library`,
      'each attempt: one try for every key (no waiting), then the release if granted; ' +
        '"own keys" = each worker its own keys, "contended" = every worker the same keys',
      '',
      formatLockTable(samples),
      '',
      ...contenders.map((k) => `  ${k.name}: ${k.notes}`),
      '  redis CPU = used_cpu_user+sys from INFO over the windows / attempts (the server may serve others too)',
      `  slowest attempt ${slowestMs.toFixed(1)} ms: ${slowestMs < timerMs ? 'no' : 'some'} lease lived to its extension timer (every ${timerMs} ms)`,
      `goal "ours no slower than either": ${
        slower.clearly.length === 0
          ? 'met: in no cell was ours slower in every round'
          : `NOT met: slower in every round in ${slower.clearly.join('; ')}`
      }`,
      ...(slower.noise.length > 0
        ? [`  slower overall but not in every round (within noise): ${slower.noise.join('; ')}`]
        : []),
    ];
    return { lines, ok: failures === 0 };
  } finally {
    for (const client of clients) client.disconnect();
  }
}

/**
 * One window: `cell.concurrency` workers, each looping one attempt then (if
 * granted) the release. Uncontended, worker k locks keys of its own;
 * contended, all lock the same ones. `tag` keeps keys of different windows apart.
 */
async function runLockLoad(
  contender: LockContender,
  cell: LockCell,
  durationMs: number,
  tag: string,
  redisAdmin: Redis,
): Promise<LockSample> {
  let granted = 0;
  let refused = 0;
  const redisBefore = await redisCpuMs(redisAdmin);
  const run = await runWorkers(cell.concurrency, durationMs, (k) => {
    const names = Array.from({ length: cell.keys }, (_, i) =>
      cell.contended ? `${tag}:hot:${i}` : `${tag}:w${k}:${i}`,
    );
    return async () => {
      const release = await contender.tryLock(names);
      if (release) {
        await release();
        granted++;
      } else {
        refused++;
      }
      return true;
    };
  });
  return {
    ...cell,
    ...run,
    contender: contender.name,
    granted,
    refused,
    windowRates: [(granted + refused) / (run.elapsedMs / 1000)],
    redisCpuMs: (await redisCpuMs(redisAdmin)) - redisBefore,
  };
}

/** Adds the windows of one cell measured in several rounds. */
function mergeLockSamples(samples: readonly LockSample[]): LockSample {
  return samples.slice(1).reduce<LockSample>(
    (sum, s) => ({
      ...sum,
      granted: sum.granted + s.granted,
      refused: sum.refused + s.refused,
      failures: sum.failures + s.failures,
      elapsedMs: sum.elapsedMs + s.elapsedMs,
      latenciesMs: sum.latenciesMs.concat(s.latenciesMs),
      windowRates: sum.windowRates.concat(s.windowRates),
      nodeCpuMs: sum.nodeCpuMs + s.nodeCpuMs,
      redisCpuMs: sum.redisCpuMs + s.redisCpuMs,
      errors: [...sum.errors, ...s.errors].slice(0, 5),
    }),
    samples[0]!,
  );
}

/** used_cpu_user + used_cpu_sys of the Redis server, in milliseconds. */
async function redisCpuMs(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const field = (name: string) =>
    Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}

const attemptsOf = (s: LockSample) => s.granted + s.refused;
const rateOf = (s: LockSample) => attemptsOf(s) / (s.elapsedMs / 1000);
const caseOf = (cell: LockCell) => (cell.contended ? 'contended' : 'own keys');
const oursIn = (samples: readonly LockSample[], cell: LockCell) =>
  samples.find(
    (o) =>
      o.contender === OURS &&
      o.keys === cell.keys &&
      o.concurrency === cell.concurrency &&
      o.contended === cell.contended,
  );

/**
 * One row per library and cell, with our throughput divided by each other
 * library's in the same cell (above 1: ours is faster).
 */
function formatLockTable(samples: readonly LockSample[]): string {
  const header = [
    'lock',
    'keys',
    'conc',
    'case',
    'attempts/s',
    'granted/s',
    'p50 µs',
    'p99 µs',
    'ours ÷ this (tput)',
    'per round: median (min–max)',
    'node CPU µs/attempt',
    'redis CPU µs/attempt',
    'fail',
  ];
  const rows = samples.map((s) => {
    const ours = s.contender === OURS ? undefined : oursIn(samples, s);
    const perAttempt = (ms: number) => ((1000 * ms) / Math.max(1, attemptsOf(s))).toFixed(1);
    return [
      s.contender,
      String(s.keys),
      String(s.concurrency),
      caseOf(s),
      rateOf(s).toFixed(0),
      (s.granted / (s.elapsedMs / 1000)).toFixed(0),
      (1000 * percentile(s.latenciesMs, 50)).toFixed(0),
      (1000 * percentile(s.latenciesMs, 99)).toFixed(0),
      ours ? (rateOf(ours) / rateOf(s)).toFixed(2) : '-',
      ours ? rangeOf(roundRatios(ours, s)) : '-',
      perAttempt(s.nodeCpuMs),
      perAttempt(s.redisCpuMs),
      String(s.failures),
    ];
  });
  return renderTable(header, rows);
}

/**
 * Cells where ours did fewer attempts per second than another library:
 * `clearly` when it did so in every round, `within noise` when only overall.
 */
function slowerCells(samples: readonly LockSample[]): { clearly: string[]; noise: string[] } {
  const clearly: string[] = [];
  const noise: string[] = [];
  for (const s of samples) {
    const ours = s.contender === OURS ? undefined : oursIn(samples, s);
    if (!ours || rateOf(ours) >= rateOf(s)) continue;
    const rounds = roundRatios(ours, s);
    const where = `${s.keys} key(s) c=${s.concurrency} ${caseOf(s)}: ${(rateOf(ours) / rateOf(s)).toFixed(2)}x ${s.contender} (rounds ${rangeOf(rounds)})`;
    (rounds.every((r) => r < 1) ? clearly : noise).push(where);
  }
  return { clearly, noise };
}

/** Ours ÷ the other, round by round (the windows of a round run back to back). */
function roundRatios(ours: LockSample, other: LockSample): number[] {
  return ours.windowRates.map((rate, i) => rate / (other.windowRates[i] ?? NaN));
}

function rangeOf(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return `${median.toFixed(2)} (${sorted[0]!.toFixed(2)}–${sorted[sorted.length - 1]!.toFixed(2)})`;
}
