import type { CheckResult } from './checker';
import type { FaultRecord, HistoryRecord, ReplicaRecord } from './history';

/**
 * The figures of a run and a PASS or FAIL per check, as plain text, computed
 * from the history alone (so `--check` on a saved history prints the same).
 */
export function formatReport(
  records: readonly HistoryRecord[],
  results: readonly CheckResult[],
  skipped: readonly string[] = [],
): string {
  const attempts = records.filter((r) => r.kind === 'attempt');
  const ops = new Set(attempts.map((a) => a.opId));
  const byMethod = new Map<string, number>();
  for (const a of attempts) {
    const key = `${a.method} ${a.status}${a.reason ? `/${a.reason}` : ''}`;
    byMethod.set(key, (byMethod.get(key) ?? 0) + 1);
  }
  const faults = records.filter((r): r is FaultRecord => r.kind === 'fault');
  const byFault = new Map<string, { ok: number; failed: number }>();
  for (const f of faults) {
    const entry = byFault.get(f.fault) ?? { ok: 0, failed: 0 };
    if (f.error) entry.failed++;
    else entry.ok++;
    byFault.set(f.fault, entry);
  }
  const replicas = records.find((r): r is ReplicaRecord => r.kind === 'replicas');
  const span = attempts.reduce((max, a) => Math.max(max, a.end), 0);
  const internal = attempts.filter((a) => a.status === 'INTERNAL').length;
  const attemptsPerOp = new Map<number, number>();
  for (const a of attempts) attemptsPerOp.set(a.opId, (attemptsPerOp.get(a.opId) ?? 0) + 1);
  const retried = [...attemptsPerOp.values()].filter((n) => n > 1).length;
  const replayed = attempts.filter((a) => a.replayed).length;
  const lines = [
    `operations: ${ops.size} (${attempts.length} attempts) in ${(span / 1000).toFixed(1)} s; INTERNAL: ${internal}`,
    `operations sent more than once (retried or duplicated): ${retried}; answers replayed: ${replayed}`,
    'attempts by method and status:',
    ...[...byMethod].sort().map(([key, n]) => `  ${key.padEnd(64)} ${n}`),
    `faults injected: ${faults.filter((f) => !f.error).length}`,
    ...[...byFault]
      .sort()
      .map(
        ([kind, n]) =>
          `  ${kind.padEnd(24)} ${n.ok}${n.failed ? ` (+${n.failed} not injected)` : ''}`,
      ),
  ];
  if (replicas) {
    lines.push(
      `max RSS per replica (MiB): ${replicas.maxRssMb.map((m) => m.toFixed(0)).join(', ')}; restarts: ${replicas.restarts.join(', ')}`,
    );
  }
  lines.push('checks:');
  for (const r of results) {
    lines.push(`  ${r.passed ? 'PASS' : 'FAIL'} ${r.name}${r.passed ? '' : ` (${r.count})`}`);
    for (const anomaly of r.anomalies) lines.push(`       ${anomaly}`);
  }
  for (const name of skipped) lines.push(`  SKIP ${name}`);
  return lines.join('\n');
}
