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
      ((1000 * s.nodeCpuMs) / Math.max(1, attempts)).toFixed(1),
      ((1000 * s.redisCpuMs) / Math.max(1, attempts)).toFixed(1),
      String(s.failures),
    ];
  });
  return renderTable(header, rows);
}

/** Every cell where ours did fewer attempts per second than another library. */
export function slowerCells(samples: readonly LockSample[]): string[] {
  const slower: string[] = [];
  for (const s of samples) {
    if (s.contender === OURS) continue;
    const ours = samples.find((o) => o.contender === OURS && sameCell(o, s));
    if (!ours) continue;
    const ratio = perSecond(attemptsOf(ours), ours) / perSecond(attemptsOf(s), s);
    if (ratio < 1)
      slower.push(
        `${s.keys} key(s), c=${s.concurrency}, ${caseOf(s)}: ours ${ratio.toFixed(2)}x ${s.contender}`,
      );
  }
  return slower;
}
