import type { BenchMode } from './bench-options';
import type { LoadSample } from './load-runner';

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
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cols: string[]) =>
    `| ${cols.map((c, i) => (i < 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
  ].join('\n');
}
