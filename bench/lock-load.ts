import type { Redis } from 'ioredis';
import type { LockContender } from './lock-contenders';

/** One lock cell: a library, a key count, a concurrency, contended or not. */
export interface LockCell {
  contender: string;
  keys: number;
  concurrency: number;
  /** Every worker on the same keys, rather than on keys of its own. */
  contended: boolean;
}

/** What the measured windows of one cell saw, summed over its rounds. */
export interface LockSample extends LockCell {
  /** Attempts that got every key, then released them. */
  granted: number;
  /** Attempts refused because another worker held a key. */
  refused: number;
  failures: number;
  elapsedMs: number;
  /** Acquire + release of each granted attempt, or the refusal, in microseconds. */
  latenciesUs: number[];
  /** Attempts per second of each window, in the order they ran. */
  windowRates: number[];
  nodeCpuMs: number;
  /** CPU of the Redis server over the windows; it may serve others too. */
  redisCpuMs: number;
  errors: string[];
}

const KEPT_ERRORS = 5;

/**
 * Runs `cell.concurrency` workers for `durationMs`, each looping one attempt
 * then (if granted) the release. Uncontended, worker k locks keys of its own;
 * contended, all lock the same ones. `tag` keeps keys of different cells apart.
 */
export async function runLockLoad(
  contender: LockContender,
  cell: LockCell,
  durationMs: number,
  tag: string,
  redisAdmin: Redis,
): Promise<LockSample> {
  let granted = 0;
  let refused = 0;
  let failures = 0;
  const latenciesUs: number[] = [];
  const errors: string[] = [];
  const namesOf = (k: number) =>
    Array.from({ length: cell.keys }, (_, i) =>
      cell.contended ? `${tag}:hot:${i}` : `${tag}:w${k}:${i}`,
    );

  const redisBefore = await redisCpuMs(redisAdmin);
  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  const endAt = startedAt + durationMs;
  const worker = async (k: number) => {
    const names = namesOf(k);
    while (performance.now() < endAt) {
      const t0 = performance.now();
      try {
        const release = await contender.tryLock(names);
        if (release) {
          await release();
          granted++;
        } else {
          refused++;
        }
        latenciesUs.push((performance.now() - t0) * 1000);
      } catch (error) {
        failures++;
        if (errors.length < KEPT_ERRORS)
          errors.push(error instanceof Error ? error.message : String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: cell.concurrency }, (_, k) => worker(k)));
  const elapsedMs = performance.now() - startedAt;
  const cpu = process.cpuUsage(cpuBefore);
  const redisAfter = await redisCpuMs(redisAdmin);
  return {
    ...cell,
    granted,
    refused,
    failures,
    elapsedMs,
    latenciesUs,
    windowRates: [(granted + refused) / (elapsedMs / 1000)],
    nodeCpuMs: (cpu.user + cpu.system) / 1000,
    redisCpuMs: redisAfter - redisBefore,
    errors,
  };
}

/** Adds the windows of one cell measured in several rounds. */
export function mergeLockSamples(samples: readonly LockSample[]): LockSample {
  const [first, ...rest] = samples;
  if (!first) throw new Error('no samples to merge');
  return rest.reduce<LockSample>(
    (sum, s) => ({
      ...sum,
      granted: sum.granted + s.granted,
      refused: sum.refused + s.refused,
      failures: sum.failures + s.failures,
      elapsedMs: sum.elapsedMs + s.elapsedMs,
      latenciesUs: sum.latenciesUs.concat(s.latenciesUs),
      windowRates: sum.windowRates.concat(s.windowRates),
      nodeCpuMs: sum.nodeCpuMs + s.nodeCpuMs,
      redisCpuMs: sum.redisCpuMs + s.redisCpuMs,
      errors: [...sum.errors, ...s.errors].slice(0, KEPT_ERRORS),
    }),
    { ...first, latenciesUs: [...first.latenciesUs] },
  );
}

/** used_cpu_user + used_cpu_sys of the Redis server, in milliseconds. */
async function redisCpuMs(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const field = (name: string) =>
    Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}
