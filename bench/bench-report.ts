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

/** CPU of the process that served the swaps: the child's own, or this one's for in-process modes. */
export function nodeCpuOf(sample: LoadSample): number {
  return sample.serviceCpuMs ?? sample.nodeCpuMs;
}

/**
 * The results table: one row per mode and concurrency, with each mode's
 * throughput, median latency and PostgreSQL CPU as a ratio of the floor's at
 * the same concurrency.
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
    '÷ floor tput',
    '÷ floor p50',
    'node CPU ms/swap',
    'client CPU ms/swap',
    'pg CPU ms/swap',
    '÷ floor pg CPU',
  ];
  const rows = cells.map(({ mode, sample }) => {
    const floor = cellOf(cells, 'floor', sample.concurrency)?.sample;
    const ratio = (of: (s: LoadSample) => number | undefined) => {
      const [a, b] = [of(sample), floor && of(floor)];
      return a === undefined || b === undefined ? '-' : (a / b).toFixed(2);
    };
    return [
      mode,
      String(sample.concurrency),
      String(sample.swaps),
      String(sample.failures),
      throughputOf(sample).toFixed(1),
      percentile(sample.latenciesMs, 50).toFixed(2),
      percentile(sample.latenciesMs, 99).toFixed(2),
      ratio(throughputOf),
      ratio((s) => percentile(s.latenciesMs, 50)),
      perSwap(nodeCpuOf(sample), sample),
      sample.serviceCpuMs === undefined ? 'same' : perSwap(sample.nodeCpuMs, sample),
      perSwap(sample.dbCpuMs, sample),
      ratio((s) => (s.dbCpuMs === undefined ? undefined : s.dbCpuMs / Math.max(1, s.swaps))),
    ];
  });
  return renderTable(header, rows);
}

/** What one mode's process held: at idle, and under the highest concurrency. */
export interface MemoryRow {
  mode: BenchMode;
  /** `child` (the service's own process) or `this process` (shared with the bench). */
  where: string;
  idleBytes: number | undefined;
  concurrency: number;
  underLoad: LoadSample['resident'];
  /** VmHWM after the highest concurrency: the process's peak over its whole life. */
  lifetimePeakBytes: number | undefined;
}

/** The memory table, in MiB. */
export function formatMemory(rows: readonly MemoryRow[]): string {
  const mib = (bytes: number | undefined) =>
    bytes === undefined ? 'n/a' : (bytes / 2 ** 20).toFixed(0);
  return renderTable(
    ['mode', 'process', 'idle RSS MiB', 'conc', 'peak RSS MiB', 'RSS at end MiB', 'VmHWM MiB'],
    rows.map((r) => [
      r.mode,
      r.where,
      mib(r.idleBytes),
      String(r.concurrency),
      mib(r.underLoad?.maxBytes),
      mib(r.underLoad?.endBytes),
      mib(r.lifetimePeakBytes),
    ]),
    2,
  );
}

/** The issue's goals for service-redis against the floor. */
const FLOOR_THROUGHPUT_GOAL = 0.6;
const FLOOR_P50_GOAL = 1.5;
const FLOOR_PG_CPU_GOAL = 1.3;
const NODE_CPU_GOAL_MS = 3;
const TELEMETRY_LOSS_GOAL = 0.15;
/** mTLS + bearer token (service-secure) against plaintext service-redis: under 10 % lost. */
const SECURE_SHARE_GOAL = 0.9;

/**
 * Each goal the run can judge, met or not, with its figure at each
 * concurrency and, for the telemetry cost, round by round (a round's windows
 * run back to back, so its ratio is the least disturbed by a shared machine's
 * drift).
 */
export function formatGoals(cells: readonly Cell[], concurrencies: readonly number[]): string[] {
  const lines: string[] = [];
  const against = (mode: BenchMode, base: BenchMode, of: (s: LoadSample) => number | undefined) =>
    concurrencies.flatMap((c) => {
      const [cell, floor] = [cellOf(cells, mode, c), cellOf(cells, base, c)];
      const [a, b] = [cell && of(cell.sample), floor && of(floor.sample)];
      return a === undefined || b === undefined ? [] : [{ c, ratio: a / b, value: a }];
    });
  const line = (
    label: string,
    rows: ReadonlyArray<{ c: number; ratio: number }>,
    goal: string,
    met: (ratio: number) => boolean,
  ) => {
    if (rows.length === 0) return;
    const figures = rows.map((r) => `c=${r.c} ${r.ratio.toFixed(2)}`).join(', ');
    lines.push(
      `${label}: ${figures}; goal ${goal}: ${verdict(rows.filter((r) => !met(r.ratio)).map((r) => `c=${r.c}`))}`,
    );
  };
  const p50 = (s: LoadSample) => percentile(s.latenciesMs, 50);
  const pgCpu = (s: LoadSample) =>
    s.dbCpuMs === undefined ? undefined : s.dbCpuMs / Math.max(1, s.swaps);
  for (const mode of ['service-redis', 'service-orm'] as const) {
    line(
      `${mode} throughput ÷ floor's`,
      against(mode, 'floor', throughputOf),
      `≥ ${FLOOR_THROUGHPUT_GOAL}`,
      (r) => r >= FLOOR_THROUGHPUT_GOAL,
    );
    line(
      `${mode} p50 ÷ floor's`,
      against(mode, 'floor', p50).filter((r) => r.c === 1),
      `≤ ${FLOOR_P50_GOAL} at c=1`,
      (r) => r <= FLOOR_P50_GOAL,
    );
    line(
      `${mode} PostgreSQL CPU per swap ÷ floor's`,
      against(mode, 'floor', pgCpu),
      `≤ ${FLOOR_PG_CPU_GOAL}`,
      (r) => r <= FLOOR_PG_CPU_GOAL,
    );
    const cpu = cellOf(cells, mode, 1);
    if (cpu) {
      const ms = nodeCpuOf(cpu.sample) / Math.max(1, cpu.sample.swaps);
      lines.push(
        `${mode} Node CPU per swap at c=1 (its own process, gRPC server included): ${ms.toFixed(2)} ms; ` +
          `goal ≤ ${NODE_CPU_GOAL_MS} ms: ${verdict(ms <= NODE_CPU_GOAL_MS ? [] : ['c=1'])}`,
      );
    }
  }
  const gain = against('service-redis', 'service-orm', throughputOf);
  if (gain.length > 0)
    lines.push(
      `lean write path, service-redis ÷ service-orm throughput: ${gain.map((r) => `c=${r.c} ${r.ratio.toFixed(2)}`).join(', ')}`,
    );
  line(
    'service-secure ÷ service-redis throughput',
    against('service-secure', 'service-redis', throughputOf),
    `≥ ${SECURE_SHARE_GOAL.toFixed(2)} (under 10 % lost)`,
    (r) => r >= SECURE_SHARE_GOAL,
  );
  // lost = 1 - variant/base throughput.
  const telemetry = concurrencies.flatMap((c) => {
    const [off, on] = [cellOf(cells, 'telemetry-off', c), cellOf(cells, 'service-redis', c)];
    if (!off || !on) return [];
    const rounds = on.windows.map((w, i) => 1 - throughputOf(w) / throughputOf(off.windows[i]!));
    return [{ c, cost: 1 - throughputOf(on.sample) / throughputOf(off.sample), rounds }];
  });
  if (telemetry.length > 0)
    lines.push(
      `telemetry throughput lost (service-redis against telemetry-off): ${telemetry.map((r) => `c=${r.c} ${signedPercent(r.cost)} (rounds ${r.rounds.map(signedPercent).join(', ')})`).join('; ')}; ` +
        `goal < ${TELEMETRY_LOSS_GOAL * 100} %: ${verdict(telemetry.filter((r) => r.cost >= TELEMETRY_LOSS_GOAL).map((r) => `c=${r.c}`))}`,
    );
  return lines;
}

/** The run's one summary line: service-redis's throughput as a ratio of the floor's. */
export function summaryLine(
  cells: readonly Cell[],
  concurrencies: readonly number[],
): string | undefined {
  const ratios = concurrencies.flatMap((c) => {
    const [cell, floor] = [cellOf(cells, 'service-redis', c), cellOf(cells, 'floor', c)];
    return cell && floor
      ? [`c=${c} ${(throughputOf(cell.sample) / throughputOf(floor.sample)).toFixed(2)}`]
      : [];
  });
  return ratios.length > 0 ? `service-redis ÷ floor: ${ratios.join(', ')}` : undefined;
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
