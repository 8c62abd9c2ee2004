import type { BenchMode } from './bench-options';
import type { LoadSample } from './load-runner';

/** One mode at one concurrency: its measured windows, and them merged. */
export interface Cell {
  mode: BenchMode;
  sample: LoadSample;
  /** The windows in the order they ran, one per round. */
  windows: LoadSample[];
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

const perSwap = (ms: number | undefined, s: LoadSample) =>
  ms === undefined ? 'n/a' : (ms / Math.max(1, s.swaps)).toFixed(3);

/**
 * The results table: one row per mode and concurrency, with the ratio of raw
 * SQL to each mode at the same concurrency (throughput and median latency).
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
    'service CPU ms/swap',
    'pg CPU ms/swap',
  ];
  const rows = cells.map(({ mode, sample }) => {
    const raw = cellOf(cells, 'sql', sample.concurrency)?.sample;
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
      raw ? (throughputOf(raw) / tput).toFixed(2) : '-',
      raw ? (p50 / percentile(raw.latenciesMs, 50)).toFixed(2) : '-',
      perSwap(sample.nodeCpuMs, sample),
      sample.serviceCpuMs === undefined ? 'in node' : perSwap(sample.serviceCpuMs, sample),
      perSwap(sample.dbCpuMs, sample),
    ];
  });
  return renderTable(header, rows);
}

/** The team's goals: service against the raw baseline, and what Redis locks, telemetry and mTLS may cost. */
const SERVICE_VS_SQL_GOAL = 0.4;
const REDIS_TIME_GOAL = 0.1;
const TELEMETRY_LOSS_GOAL = 0.15;
/** mTLS + bearer token (service-secure) against plaintext service-redis: under 10 % lost. */
const SECURE_SHARE_GOAL = 0.9;

/**
 * Each goal the run can judge, met or not, with its figure at each
 * concurrency and, for the costs, round by round (a round's windows run back
 * to back, so its ratio is the least disturbed by a shared machine's drift).
 */
export function formatGoals(cells: readonly Cell[], concurrencies: readonly number[]): string[] {
  const lines: string[] = [];
  const shares = (['service', 'service-redis'] as const).flatMap((mode) =>
    concurrencies.flatMap((c) => {
      const [cell, raw] = [cellOf(cells, mode, c), cellOf(cells, 'sql', c)];
      return cell && raw
        ? [{ at: `${mode} c=${c}`, share: throughputOf(cell.sample) / throughputOf(raw.sample) }]
        : [];
    }),
  );
  if (shares.length > 0)
    lines.push(
      `service ÷ sql throughput: ${shares.map((s) => `${s.at} ${s.share.toFixed(2)}`).join(', ')}; ` +
        `goal ≥ ${SERVICE_VS_SQL_GOAL}: ${verdict(shares.filter((s) => s.share < SERVICE_VS_SQL_GOAL).map((s) => s.at))}`,
    );
  const secure = concurrencies.flatMap((c) => {
    const [cell, base] = [cellOf(cells, 'service-secure', c), cellOf(cells, 'service-redis', c)];
    return cell && base
      ? [{ c, share: throughputOf(cell.sample) / throughputOf(base.sample) }]
      : [];
  });
  if (secure.length > 0)
    lines.push(
      `service-secure ÷ service-redis throughput: ${secure.map((s) => `c=${s.c} ${s.share.toFixed(2)}`).join(', ')}; ` +
        `goal ≥ ${SECURE_SHARE_GOAL.toFixed(2)} (under 10 % lost): ` +
        verdict(secure.filter((s) => s.share < SECURE_SHARE_GOAL).map((s) => `c=${s.c}`)),
    );
  // lost = 1 - variant/base throughput; added = base/variant - 1, the extra time per swap.
  const costs = [
    [
      'Redis lock cost (time added per swap, service-redis against service)',
      'service',
      'service-redis',
      (r: number) => 1 / r - 1,
      REDIS_TIME_GOAL,
    ],
    [
      'telemetry throughput lost (telemetry-on against telemetry-off)',
      'telemetry-off',
      'telemetry-on',
      (r: number) => 1 - r,
      TELEMETRY_LOSS_GOAL,
    ],
  ] as const;
  for (const [label, base, variant, costOf, goal] of costs) {
    const rows = concurrencies.flatMap((c) => {
      const [a, b] = [cellOf(cells, base, c), cellOf(cells, variant, c)];
      if (!a || !b) return [];
      const rounds = b.windows.map((w, i) => costOf(throughputOf(w) / throughputOf(a.windows[i]!)));
      return [{ c, cost: costOf(throughputOf(b.sample) / throughputOf(a.sample)), rounds }];
    });
    if (rows.length === 0) continue;
    lines.push(
      `${label}: ${rows.map((r) => `c=${r.c} ${signedPercent(r.cost)} (rounds ${r.rounds.map(signedPercent).join(', ')})`).join('; ')}; ` +
        `goal < ${goal * 100} %: ${verdict(rows.filter((r) => r.cost >= goal).map((r) => `c=${r.c}`))}`,
    );
  }
  return lines;
}

function verdict(missed: readonly string[]): string {
  return missed.length === 0 ? 'met' : `NOT met at ${missed.join(', ')}`;
}

export function cellOf(cells: readonly Cell[], mode: BenchMode, concurrency: number) {
  return cells.find((c) => c.mode === mode && c.sample.concurrency === concurrency);
}

function signedPercent(fraction: number): string {
  return `${fraction >= 0 ? '+' : ''}${(100 * fraction).toFixed(1)} %`;
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
