import type { BenchMode } from './bench-options';
import type { LoadSample } from './load-runner';
import type { LockTime } from './service-lock-timer';

export interface Cell {
  mode: BenchMode;
  sample: LoadSample;
}

/** Nearest-rank percentile of unsorted values, in the same unit. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function throughputOf(sample: LoadSample): number {
  return sample.swaps / (sample.elapsedMs / 1000);
}

/**
 * The results table: one row per mode and concurrency, with the ratio of each
 * mode to raw SQL at the same concurrency (throughput and median latency).
 */
export function formatTable(cells: readonly Cell[]): string {
  const header = [
    'mode',
    'conc',
    'swaps',
    'fail',
    'swaps/s',
    'p50 ms',
    'p99 ms',
    'x sql (tput)',
    'x sql (p50)',
    'node CPU ms/swap',
    'pg CPU ms/swap',
  ];
  const rows = cells.map(({ mode, sample }) => {
    const raw = cells.find((c) => c.mode === 'sql' && c.sample.concurrency === sample.concurrency);
    const tput = throughputOf(sample);
    const p50 = percentile(sample.latenciesMs, 50);
    return [
      mode,
      String(sample.concurrency),
      String(sample.swaps),
      String(sample.failures),
      tput.toFixed(1),
      p50.toFixed(2),
      percentile(sample.latenciesMs, 99).toFixed(2),
      raw ? (throughputOf(raw.sample) / tput).toFixed(2) : '-',
      raw ? (p50 / percentile(raw.sample.latenciesMs, 50)).toFixed(2) : '-',
      (sample.nodeCpuMs / Math.max(1, sample.swaps)).toFixed(3),
      sample.dbCpuMs === undefined
        ? 'n/a'
        : (sample.dbCpuMs / Math.max(1, sample.swaps)).toFixed(3),
    ];
  });
  return renderTable(header, rows);
}

/** A Markdown table: the first `leftColumns` columns left-aligned, the rest right-aligned. */
export function renderTable(
  header: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  leftColumns = 1,
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cols: readonly string[]) =>
    `| ${cols.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
  ].join('\n');
}

/**
 * `service-redis` against `service` at each concurrency: what Redis locks
 * (with fencing and the replay cache) cost over PostgreSQL advisory locks, and
 * how much of a call the lock's own acquire and release take.
 */
export function formatRedisCostTable(
  cells: readonly Cell[],
  lockTimes: ReadonlyMap<number, LockTime>,
): string {
  const header = [
    'conc',
    'swaps/s pg-lock',
    'swaps/s redis',
    'tput cost',
    'p50 ms pg-lock',
    'p50 ms redis',
    'p50 cost',
    'p99 ms pg-lock',
    'p99 ms redis',
    'node CPU ms/swap pg-lock → redis',
    'pg CPU ms/swap pg-lock → redis',
    'lock ms/swap (acq+rel)',
    'lock share of mean latency',
  ];
  const rows: string[][] = [];
  for (const redis of cells.filter((c) => c.mode === 'service-redis')) {
    const conc = redis.sample.concurrency;
    const pgLock = cells.find((c) => c.mode === 'service' && c.sample.concurrency === conc);
    if (!pgLock) continue;
    const [a, b] = [pgLock.sample, redis.sample];
    const perSwap = (ms: number | undefined, s: LoadSample) =>
      ms === undefined ? 'n/a' : (ms / Math.max(1, s.swaps)).toFixed(3);
    const time = lockTimes.get(conc);
    const lockMs =
      time && time.acquisitions > 0 && time.releases > 0
        ? time.acquireMs / time.acquisitions + time.releaseMs / time.releases
        : undefined;
    const meanMs = b.latenciesMs.reduce((x, y) => x + y, 0) / Math.max(1, b.latenciesMs.length);
    rows.push([
      String(conc),
      throughputOf(a).toFixed(1),
      throughputOf(b).toFixed(1),
      signedPercent(throughputOf(a) / throughputOf(b) - 1),
      percentile(a.latenciesMs, 50).toFixed(2),
      percentile(b.latenciesMs, 50).toFixed(2),
      signedPercent(percentile(b.latenciesMs, 50) / percentile(a.latenciesMs, 50) - 1),
      percentile(a.latenciesMs, 99).toFixed(2),
      percentile(b.latenciesMs, 99).toFixed(2),
      `${perSwap(a.nodeCpuMs, a)} → ${perSwap(b.nodeCpuMs, b)}`,
      `${perSwap(a.dbCpuMs, a)} → ${perSwap(b.dbCpuMs, b)}`,
      lockMs === undefined ? 'n/a' : lockMs.toFixed(3),
      lockMs === undefined ? 'n/a' : signedPercent(lockMs / meanMs).replace('+', ''),
    ]);
  }
  return renderTable(header, rows, 0);
}

function signedPercent(fraction: number): string {
  return `${fraction >= 0 ? '+' : ''}${(100 * fraction).toFixed(1)} %`;
}
