import { percentile, renderTable } from './bench-report';
import type { LockCell, LockSample } from './lock-load';

export const OURS = 'ours';

const attemptsOf = (s: LockSample) => s.granted + s.refused;
const perSecond = (n: number, s: LockSample) => n / (s.elapsedMs / 1000);
const sameCell = (a: LockCell, b: LockCell) =>
  a.keys === b.keys && a.concurrency === b.concurrency && a.contended === b.contended;

/** The cell's case as printed: `own keys` or `contended`. */
function caseOf(cell: LockCell): string {
  return cell.contended ? 'contended' : 'own keys';
}

/**
 * One row per library and cell, with our throughput divided by each other
 * library's in the same cell (above 1: ours is faster).
 */
export function formatLockTable(samples: readonly LockSample[]): string {
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
    const ours = samples.find((o) => o.contender === OURS && sameCell(o, s));
    const attempts = attemptsOf(s);
    return [
      s.contender,
      String(s.keys),
      String(s.concurrency),
      caseOf(s),
      perSecond(attempts, s).toFixed(0),
      perSecond(s.granted, s).toFixed(0),
      percentile(s.latenciesUs, 50).toFixed(0),
      percentile(s.latenciesUs, 99).toFixed(0),
      ours && s.contender !== OURS
        ? (perSecond(attemptsOf(ours), ours) / perSecond(attempts, s)).toFixed(2)
        : '-',
      ours && s.contender !== OURS ? rangeOf(roundRatios(ours, s)) : '-',
      ((1000 * s.nodeCpuMs) / Math.max(1, attempts)).toFixed(1),
      ((1000 * s.redisCpuMs) / Math.max(1, attempts)).toFixed(1),
      String(s.failures),
    ];
  });
  return renderTable(header, rows);
}

/**
 * Cells where ours did fewer attempts per second than another library:
 * `clearly` when it did so in every round, `within noise` when only overall.
 */
export function slowerCells(samples: readonly LockSample[]): {
  clearly: string[];
  noise: string[];
} {
  const clearly: string[] = [];
  const noise: string[] = [];
  for (const s of samples) {
    if (s.contender === OURS) continue;
    const ours = samples.find((o) => o.contender === OURS && sameCell(o, s));
    if (!ours) continue;
    const ratio = perSecond(attemptsOf(ours), ours) / perSecond(attemptsOf(s), s);
    const rounds = roundRatios(ours, s);
    if (ratio >= 1) continue;
    const where = `${s.keys} key(s) c=${s.concurrency} ${caseOf(s)}: ${ratio.toFixed(2)}x ${s.contender} (rounds ${rangeOf(rounds)})`;
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
