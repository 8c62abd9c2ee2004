import { status } from '@grpc/grpc-js';
import { isServiceError } from './error-rendering';
import { LatencyRecorder } from './latency-recorder';

/** One call the generator can make; it names its method and rejects with the call's error. */
export interface Operation {
  method: string;
  run(): Promise<unknown>;
}

export interface LoadSchedule {
  durationMs: number;
  /** Most calls in flight at once. */
  concurrency: number;
  /**
   * Calls started per second on a fixed timetable (open loop); 0 runs a
   * closed loop of `concurrency` callers, each starting its next call when the
   * last one ends.
   */
  rate: number;
  /** Picks the next call; called once per arrival. */
  next(): Operation;
  /** Aborted: no new call starts (Ctrl-C); the calls in flight finish. */
  signal?: AbortSignal | undefined;
}

/** What a run recorded: every call's latency, overall and by method. */
export interface LoadResult {
  elapsedMs: number;
  overall: LatencyRecorder;
  byMethod: Map<string, LatencyRecorder>;
  /** Arrivals that waited for a free slot (open loop: the server fell behind the rate). */
  queuedArrivals: number;
}

/** A look at a run in progress, for the live line. */
export interface LoadProgress {
  elapsedMs: number;
  overall: LatencyRecorder;
}

/**
 * Runs calls for `durationMs`. With a rate, arrivals are due at fixed
 * intervals from the start and each call's latency counts from when it was
 * due, not from when a slot freed up: a server that stalls shows its stall in
 * every call that queued behind it, instead of the generator politely waiting
 * (coordinated omission).
 */
export async function runLoad(
  schedule: LoadSchedule,
  onProgress: (progress: LoadProgress) => void,
  progressEveryMs = 1000,
): Promise<LoadResult> {
  const overall = new LatencyRecorder();
  const byMethod = new Map<string, LatencyRecorder>();
  const started = performance.now();
  const end = started + schedule.durationMs;
  let queuedArrivals = 0;

  const record = (method: string, dueAt: number, outcome: string) => {
    const latency = performance.now() - dueAt;
    overall.record(latency, outcome);
    let recorder = byMethod.get(method);
    if (!recorder) byMethod.set(method, (recorder = new LatencyRecorder()));
    recorder.record(latency, outcome);
  };
  const issue = async (dueAt: number) => {
    const operation = schedule.next();
    try {
      await operation.run();
      record(operation.method, dueAt, 'OK');
    } catch (error) {
      record(
        operation.method,
        dueAt,
        isServiceError(error) ? (status[error.code] ?? 'UNKNOWN') : 'CLIENT_ERROR',
      );
    }
  };

  const progress = setInterval(
    () => onProgress({ elapsedMs: performance.now() - started, overall }),
    progressEveryMs,
  );
  try {
    if (schedule.rate > 0) {
      queuedArrivals = await openLoop(schedule, started, end, issue);
    } else {
      await Promise.all(
        Array.from({ length: schedule.concurrency }, async () => {
          while (performance.now() < end && !schedule.signal?.aborted)
            await issue(performance.now());
        }),
      );
    }
  } finally {
    clearInterval(progress);
  }
  return { elapsedMs: performance.now() - started, overall, byMethod, queuedArrivals };
}

/** Arrivals every 1/rate s from `started` until `end`; each waits for a slot if all are busy. */
function openLoop(
  schedule: LoadSchedule,
  started: number,
  end: number,
  issue: (dueAt: number) => Promise<void>,
): Promise<number> {
  const interval = 1000 / schedule.rate;
  const waiting: number[] = [];
  let arrivals = 0;
  let inFlight = 0;
  let queued = 0;
  return new Promise((resolve) => {
    const finishedArriving = () =>
      schedule.signal?.aborted === true || started + arrivals * interval >= end;
    const pump = () => {
      while (inFlight < schedule.concurrency && waiting.length > 0) {
        const dueAt = waiting.shift()!;
        inFlight++;
        void issue(dueAt).finally(() => {
          inFlight--;
          pump();
        });
      }
      if (finishedArriving() && waiting.length === 0 && inFlight === 0) resolve(queued);
    };
    const tick = () => {
      const now = performance.now();
      for (
        let due = started + arrivals * interval;
        due <= now && due < end && !schedule.signal?.aborted;
        due = started + arrivals * interval
      ) {
        waiting.push(due);
        arrivals++;
      }
      queued += Math.max(0, waiting.length - (schedule.concurrency - inFlight));
      pump();
      if (!finishedArriving())
        setTimeout(tick, Math.max(0, started + arrivals * interval - performance.now()));
    };
    tick();
  });
}
