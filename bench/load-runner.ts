import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { backendCpu, backendCpuBetween } from './server-cpu';
import type { SwapPair } from './swap-pairs';

/** Executes the swap that flips `pair`; resolves once it has committed. */
export type SwapDriver = (pair: SwapPair) => Promise<void>;

/** What one measured window saw. */
export interface LoadSample {
  concurrency: number;
  swaps: number;
  failures: number;
  elapsedMs: number;
  /** One entry per committed swap, as the caller saw it. */
  latenciesMs: number[];
  /** User plus system CPU of this Node process (service, client and bench alike). */
  nodeCpuMs: number;
  /** CPU of the PostgreSQL processes, when they run on this machine. */
  dbCpuMs: number | undefined;
  /** The first few failure messages. */
  errors: string[];
}

export interface LoadOptions {
  concurrency: number;
  /** The database whose backends' CPU is measured. */
  database: string;
  durationMs: number;
  /** Write a CPU profile of the window to this file. */
  profileFile?: string;
}

const KEPT_ERRORS = 5;

/**
 * Runs `concurrency` workers for `durationMs`. Worker k owns the pairs whose
 * index is k modulo the concurrency and swaps them in turn, so no two in-flight
 * swaps touch the same rows: the numbers measure cost, not contention. A pair
 * whose swap fails is left alone from then on, since its state is unknown.
 */
export async function runLoad(
  driver: SwapDriver,
  pairs: SwapPair[],
  options: LoadOptions,
): Promise<LoadSample> {
  const { concurrency, durationMs } = options;
  const latenciesMs: number[] = [];
  const errors: string[] = [];
  let failures = 0;

  const profiler = options.profileFile ? new Session() : undefined;
  if (profiler) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 200 });
    await profiler.post('Profiler.start');
  }
  const dbBefore = backendCpu(options.database);
  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  const endAt = startedAt + durationMs;

  const worker = async (k: number) => {
    const own = pairs.filter((p) => p.index % concurrency === k);
    for (let turn = 0; performance.now() < endAt; turn++) {
      const live = own.filter((p) => !p.broken);
      const pair = live[turn % Math.max(1, live.length)];
      if (!pair) return;
      const t0 = performance.now();
      try {
        await driver(pair);
        latenciesMs.push(performance.now() - t0);
        pair.flipped = !pair.flipped;
        pair.swaps++;
      } catch (error) {
        failures++;
        pair.broken = true;
        if (errors.length < KEPT_ERRORS)
          errors.push(error instanceof Error ? error.message : String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, k) => worker(k)));

  const elapsedMs = performance.now() - startedAt;
  const cpu = process.cpuUsage(cpuBefore);
  const dbAfter = backendCpu(options.database);
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    profiler.disconnect();
    await writeFile(options.profileFile!, JSON.stringify(profile));
  }
  return {
    concurrency,
    swaps: latenciesMs.length,
    failures,
    elapsedMs,
    latenciesMs,
    nodeCpuMs: (cpu.user + cpu.system) / 1000,
    dbCpuMs: backendCpuBetween(dbBefore, dbAfter),
    errors,
  };
}

/** Where the profile of one window goes. */
export function profileFileOf(dir: string, mode: string, concurrency: number): string {
  return path.join(dir, `swap-bench-${mode}-c${concurrency}.cpuprofile`);
}

/** The windows of one cell as one sample: counts, times and CPU added, latencies pooled. */
export function mergeLoadSamples(samples: readonly LoadSample[]): LoadSample {
  const [first, ...rest] = samples;
  if (!first) throw new Error('no samples to merge');
  return rest.reduce<LoadSample>(
    (sum, s) => ({
      concurrency: sum.concurrency,
      swaps: sum.swaps + s.swaps,
      failures: sum.failures + s.failures,
      elapsedMs: sum.elapsedMs + s.elapsedMs,
      latenciesMs: sum.latenciesMs.concat(s.latenciesMs),
      nodeCpuMs: sum.nodeCpuMs + s.nodeCpuMs,
      dbCpuMs:
        sum.dbCpuMs === undefined || s.dbCpuMs === undefined ? undefined : sum.dbCpuMs + s.dbCpuMs,
      errors: [...sum.errors, ...s.errors].slice(0, KEPT_ERRORS),
    }),
    first,
  );
}
