import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** CPU milliseconds used so far by each backend process, keyed by pid. */
export type BackendCpu = ReadonlyMap<string, number>;

/**
 * The CPU time of each PostgreSQL backend serving `database`, or undefined when
 * none is visible in /proc (the server runs elsewhere). Backends are found by
 * the title PostgreSQL gives them ("postgres: … user database host(port)
 * state"): the server is shared, and other databases' work must not be charged
 * to the bench. WAL writing and checkpoints are left out.
 */
export function backendCpu(database: string): BackendCpu | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const perPid = new Map<string, number>();
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name is in parentheses and may hold spaces; fields follow it.
      const close = stat.lastIndexOf(')');
      if (stat.slice(stat.indexOf('(') + 1, close) !== 'postgres') continue;
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (!title.includes(` ${database} `)) continue;
      const fields = stat.slice(close + 2).split(' ');
      // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the name.
      perPid.set(entry, ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond());
    } catch {
      // The process ended while we read it.
    }
  }
  return perPid.size > 0 ? perPid : undefined;
}

/**
 * CPU the backends used between two snapshots. A backend that exited in
 * between (a pool reaping an idle connection) takes its time with it, so this
 * is a lower bound; one that started counts in full.
 */
export function backendCpuBetween(
  before: BackendCpu | undefined,
  after: BackendCpu | undefined,
): number | undefined {
  if (!before || !after) return undefined;
  let ms = 0;
  for (const [pid, now] of after) ms += now - (before.get(pid) ?? 0);
  return ms;
}

/** CPU milliseconds (user + system) used so far by process `pid`, or undefined if unreadable. */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond();
  } catch {
    return undefined;
  }
}

let ticksPerSecond: number | undefined;
function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond =
        Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}
