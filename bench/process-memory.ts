import { readFileSync } from 'node:fs';

/** A process's resident set now, and the most it has had, in bytes. */
export interface Resident {
  rssBytes: number;
  /** VmHWM: the peak resident set over the process's whole life. */
  peakBytes: number;
}

/**
 * The resident set of process `pid` (this process when undefined), from
 * /proc/<pid>/status; undefined where there is no /proc or the process is gone.
 */
export function residentOf(pid: number | undefined): Resident | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid ?? 'self'}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kB = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  const [rss, peak] = [kB('VmRSS'), kB('VmHWM')];
  return Number.isFinite(rss) && Number.isFinite(peak)
    ? { rssBytes: rss * 1024, peakBytes: peak * 1024 }
    : undefined;
}

/** What a sampler saw of a process's resident set while it ran. */
export interface ResidentSample {
  /** The highest VmRSS read, every SAMPLE_MS and at the end. */
  maxBytes: number;
  /** VmRSS at the end. */
  endBytes: number;
}

const SAMPLE_MS = 100;

/** Reads the resident set of `pid` (undefined: this process) every 100 ms until stopped. */
export function sampleResident(pid: number | undefined): () => ResidentSample | undefined {
  let max = 0;
  const read = () => {
    const now = residentOf(pid)?.rssBytes;
    if (now !== undefined) max = Math.max(max, now);
    return now;
  };
  read();
  const timer = setInterval(read, SAMPLE_MS);
  return () => {
    clearInterval(timer);
    const end = read();
    return end === undefined ? undefined : { maxBytes: max, endBytes: end };
  };
}
