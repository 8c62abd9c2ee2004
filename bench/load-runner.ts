import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import type { ExecuteSwapRequest } from '../src/generated/swap/v1/swap';
import { type ResidentSample, sampleResident } from './process-memory';
import { backendCpu, backendCpuBetween, processCpuMs } from './server-cpu';
import { nextSwapOf, type SwapPair } from './swap-pairs';

/** Executes one swap; resolves once it has committed. */
export type ExecuteSwap = (request: ExecuteSwapRequest) => Promise<void>;

/** What one measured window of swaps saw. */
export interface LoadSample extends WorkerRun {
  concurrency: number;
  /** Committed swaps: one latency each, as the caller saw it. */
  swaps: number;
  /** CPU of the service's own process, when it runs in a child process. */
  serviceCpuMs: number | undefined;
  /** CPU of the PostgreSQL processes, when they run on this machine. */
  dbCpuMs: number | undefined;
  /** Resident set of the process serving the swaps (the child, or this one), sampled. */
  resident: ResidentSample | undefined;
}

export interface LoadOptions {
  concurrency: number;
  /** The database whose backends' CPU is measured. */
  database: string;
  durationMs: number;
  /** The service's process, when it is not this one. */
  servicePid?: number | undefined;
  /** Write a CPU profile of the window to this file. */
  profileFile?: string | undefined;
}

const KEPT_ERRORS = 5;

/** What `runWorkers` saw. */
export interface WorkerRun {
  elapsedMs: number;
  /** One entry per attempt that resolved. */
  latenciesMs: number[];
  failures: number;
  /** The first few failure messages. */
  errors: string[];
  /** User plus system CPU of this process over the run. */
  nodeCpuMs: number;
}

/**
 * Runs `concurrency` workers for `durationMs`. Worker k calls the attempt
 * `workerOf(k)` made for it, over and over, until the time is up or the
 * attempt says there is nothing left to do; each attempt that resolves is
 * timed, each that throws is a failure.
 */
export async function runWorkers(
  concurrency: number,
  durationMs: number,
  workerOf: (k: number) => () => Promise<boolean>,
): Promise<WorkerRun> {
  const run: WorkerRun = { elapsedMs: 0, latenciesMs: [], failures: 0, errors: [], nodeCpuMs: 0 };
  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  const endAt = startedAt + durationMs;
  const worker = async (attempt: () => Promise<boolean>) => {
    while (performance.now() < endAt) {
      const t0 = performance.now();
      try {
        if (!(await attempt())) return;
        run.latenciesMs.push(performance.now() - t0);
      } catch (error) {
        run.failures++;
        if (run.errors.length < KEPT_ERRORS)
          run.errors.push(error instanceof Error ? error.message : String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, k) => worker(workerOf(k))));
  run.elapsedMs = performance.now() - startedAt;
  const cpu = process.cpuUsage(cpuBefore);
  run.nodeCpuMs = (cpu.user + cpu.system) / 1000;
  return run;
}

/**
 * Swaps for `durationMs` at `concurrency`. Worker k owns the pairs whose index
 * is k modulo the concurrency and swaps them in turn, each with a fresh request
 * id, so no two in-flight swaps touch the same rows: the numbers measure cost,
 * not contention. A pair whose swap fails is left alone from then on, since
 * its state is unknown.
 */
export async function runLoad(
  execute: ExecuteSwap,
  pairs: readonly SwapPair[],
  options: LoadOptions,
): Promise<LoadSample> {
  const { concurrency, durationMs, servicePid } = options;
  const profiler = options.profileFile ? new Session() : undefined;
  if (profiler) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 200 });
    await profiler.post('Profiler.start');
  }
  const dbBefore = backendCpu(options.database);
  const serviceBefore = servicePid === undefined ? undefined : processCpuMs(servicePid);
  const stopSampling = sampleResident(servicePid);
  const run = await runWorkers(concurrency, durationMs, (k) => {
    const own = pairs.filter((p) => p.index % concurrency === k);
    let turn = 0;
    return async () => {
      const live = own.filter((p) => !p.broken);
      const pair = live[turn++ % Math.max(1, live.length)];
      if (!pair) return false;
      try {
        await execute({ ...nextSwapOf(pair), requestId: randomUUID() });
      } catch (error) {
        pair.broken = true;
        throw error;
      }
      pair.flipped = !pair.flipped;
      pair.swaps++;
      return true;
    };
  });
  const serviceAfter = servicePid === undefined ? undefined : processCpuMs(servicePid);
  const resident = stopSampling();
  const dbAfter = backendCpu(options.database);
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    profiler.disconnect();
    await writeFile(options.profileFile!, JSON.stringify(profile));
  }
  return {
    ...run,
    concurrency,
    swaps: run.latenciesMs.length,
    serviceCpuMs:
      serviceBefore === undefined || serviceAfter === undefined
        ? undefined
        : serviceAfter - serviceBefore,
    dbCpuMs: backendCpuBetween(dbBefore, dbAfter),
    resident,
  };
}

/** Where the profile of one window goes. */
export function profileFileOf(dir: string, mode: string, concurrency: number): string {
  return path.join(dir, `swap-bench-${mode}-c${concurrency}.cpuprofile`);
}

/**
 * The windows of one cell as one sample: counts, times and CPU added,
 * latencies pooled, the highest resident set kept and the last one's end.
 */
export function mergeLoadSamples(samples: readonly LoadSample[]): LoadSample {
  const [first, ...rest] = samples;
  if (!first) throw new Error('no samples to merge');
  const sum = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? undefined : a + b;
  return rest.reduce<LoadSample>(
    (total, s) => ({
      concurrency: total.concurrency,
      swaps: total.swaps + s.swaps,
      failures: total.failures + s.failures,
      elapsedMs: total.elapsedMs + s.elapsedMs,
      latenciesMs: total.latenciesMs.concat(s.latenciesMs),
      nodeCpuMs: total.nodeCpuMs + s.nodeCpuMs,
      serviceCpuMs: sum(total.serviceCpuMs, s.serviceCpuMs),
      dbCpuMs: sum(total.dbCpuMs, s.dbCpuMs),
      errors: [...total.errors, ...s.errors].slice(0, KEPT_ERRORS),
      resident: total.resident &&
        s.resident && {
          maxBytes: Math.max(total.resident.maxBytes, s.resident.maxBytes),
          endBytes: s.resident.endBytes,
        },
    }),
    first,
  );
}
