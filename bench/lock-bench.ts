import { Redis } from 'ioredis';
import type { BenchOptions } from './bench-options';
import {
  type LockContender,
  ourContender,
  redlockContender,
  semaphoreContender,
} from './lock-contenders';
import { type LockCell, type LockSample, mergeLockSamples, runLockLoad } from './lock-load';
import { formatLockTable, slowerCells } from './lock-report';

/**
 * Long enough that our lease's extension timer (every ttl/3) never fires inside
 * a window, since redlock's `acquire` and redis-semaphore with
 * `refreshInterval: 0` have no timer at all.
 */
const LOCK_TTL_MS = 10_000;
const JIT_WARMUP_MS = 1_500;
const WINDOW_WARMUP_MS = 100;

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
    const ours = ourContender(forOurs, keyPrefix, LOCK_TTL_MS);
    const contenders: LockContender[] = [
      ours,
      redlockContender(forRedlock, keyPrefix, LOCK_TTL_MS),
      semaphoreContender(forSemaphore, keyPrefix, LOCK_TTL_MS),
    ];
    const redisVersion = /^redis_version:(\S+)/m.exec(await admin.info('server'))?.[1] ?? '?';

    const highest = Math.max(...options.lockConcurrencies);
    const cells: Omit<LockCell, 'contender'>[] = [];
    for (const keys of options.lockKeys)
      for (const concurrency of options.lockConcurrencies)
        cells.push({ keys, concurrency, contended: false });
    if (highest > 1)
      cells.push({ keys: Math.min(...options.lockKeys), concurrency: highest, contended: true });

    for (const contender of contenders) {
      for (const cell of cells) {
        await runLockLoad(
          contender,
          { ...cell, contender: contender.name },
          JIT_WARMUP_MS / cells.length,
          'jit',
          admin,
        );
      }
    }

    const samples: LockSample[] = [];
    const windowMs = Math.max(1, Math.round(options.lockMeasureMs / options.lockRounds));
    for (const [c, cell] of cells.entries()) {
      const rounds = new Map<string, LockSample[]>(contenders.map((k) => [k.name, []]));
      for (let round = 0; round < options.lockRounds; round++) {
        for (let i = 0; i < contenders.length; i++) {
          const contender = contenders[(i + round) % contenders.length]!;
          const at = { ...cell, contender: contender.name };
          const tag = `cell${c}r${round}`;
          await runLockLoad(contender, at, WINDOW_WARMUP_MS, `${tag}w`, admin);
          rounds.get(contender.name)!.push(await runLockLoad(contender, at, windowMs, tag, admin));
        }
      }
      for (const contender of contenders) {
        const s = mergeLockSamples(rounds.get(contender.name)!);
        samples.push(s);
        const attempts = s.granted + s.refused;
        say(
          `lock ${s.contender} keys=${s.keys} c=${s.concurrency}${s.contended ? ' contended' : ''}: ` +
            `${(attempts / (s.elapsedMs / 1000)).toFixed(0)} attempts/s, ${s.granted} granted, ${s.refused} refused` +
            (s.failures ? `, ${s.failures} FAILED: ${s.errors.join(' | ')}` : ''),
        );
      }
    }

    const slower = slowerCells(samples);
    const failures = samples.reduce((n, s) => n + s.failures, 0);
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
      `  our lease extensions during the lock bench: ${ours.extensions()} (timer every ${Math.floor(LOCK_TTL_MS / 3)} ms)`,
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
