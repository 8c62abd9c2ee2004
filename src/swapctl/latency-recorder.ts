import * as hdr from 'hdr-histogram-js';

/** Text-histogram bucket upper bounds, in milliseconds (1-2-5 steps). */
const BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000];

/** Percentiles reported, up to p99.9. */
export const PERCENTILES = [50, 75, 90, 95, 99, 99.9] as const;

/** Latencies of one kind of call (or all of them): an HDR histogram in microseconds, and counts. */
export class LatencyRecorder {
  readonly histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });
  /** Calls by final status name (OK, ABORTED, …). */
  readonly statuses = new Map<string, number>();
  readonly buckets = BUCKETS_MS.map(() => 0);

  record(latencyMs: number, status: string): void {
    this.histogram.recordValue(Math.max(1, Math.round(latencyMs * 1000)));
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    const i = BUCKETS_MS.findIndex((bound) => latencyMs <= bound);
    this.buckets[i === -1 ? BUCKETS_MS.length - 1 : i]!++;
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  get errors(): number {
    return this.count - (this.statuses.get('OK') ?? 0);
  }

  /** The latency at `percentile`, in milliseconds. */
  percentileMs(percentile: number): number {
    return this.count === 0 ? 0 : this.histogram.getValueAtPercentile(percentile) / 1000;
  }

  /** Raw figures for the report file. */
  toJSON() {
    return {
      count: this.count,
      statuses: Object.fromEntries(this.statuses),
      meanMs: this.count === 0 ? 0 : this.histogram.mean / 1000,
      maxMs: this.histogram.maxValue / 1000,
      percentilesMs: Object.fromEntries(PERCENTILES.map((p) => [`p${p}`, this.percentileMs(p)])),
      buckets: BUCKETS_MS.map((le, i) => ({ leMs: le, count: this.buckets[i] })),
      hdrBase64: hdr.encodeIntoCompressedBase64(this.histogram),
    };
  }

  /** The bucket counts as bars, one line per non-empty range. */
  textHistogram(width = 50): string {
    const max = Math.max(...this.buckets);
    if (max === 0) return '(no calls)';
    const first = this.buckets.findIndex((n) => n > 0);
    const last = this.buckets.length - 1 - [...this.buckets].reverse().findIndex((n) => n > 0);
    const lines: string[] = [];
    for (let i = first; i <= last; i++) {
      const low = i === 0 ? 0 : BUCKETS_MS[i - 1]!;
      const label = `${low}–${BUCKETS_MS[i]} ms`.padStart(16);
      const bar = '#'.repeat(Math.round((this.buckets[i]! / max) * width));
      lines.push(`${label} | ${bar} ${this.buckets[i]}`);
    }
    return lines.join('\n');
  }
}
