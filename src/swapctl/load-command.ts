import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { CommandRunner } from './command-runner';
import { call, type Connection, parseDuration } from './connection';
import { EXIT } from './exit-codes';
import { PERCENTILES, type LatencyRecorder } from './latency-recorder';
import { type LoadProgress, type LoadResult, type Operation, runLoad } from './load-generator';
import {
  scheduleDifferences,
  snapshotSchedule,
  swapCandidates,
  validCandidates,
} from './load-workload';
import type { Output } from './output';
import { table } from './output';
import { SwapCycle } from './swap-cycle';
import { integerFlag } from './flags';
import { UsageError } from './usage-error';

const MIX_KINDS = ['execute', 'validate', 'list'] as const;
type MixKind = (typeof MIX_KINDS)[number];

/** `swapctl load`: a load generator against any address, that leaves the schedule as it found it. */
export function registerLoadCommand(program: Command, runner: CommandRunner): void {
  runner.bind(
    program
      .command('load')
      .description(
        "execute and roll back valid swaps found in the server's schedule, validate and list, then check the schedule is unchanged",
      )
      .option('--duration <duration>', 'how long to send calls', '10s')
      .option('--concurrency <n>', 'most calls in flight', '8')
      .option(
        '--rate <calls/s>',
        'open loop: start this many calls a second (0: closed loop)',
        '50',
      )
      .option(
        '--mix <weights>',
        'relative weights of execute (execute or roll back), validate, list',
        'execute=1,validate=2,list=1',
      )
      .option('--weeks <n>', 'weeks of schedule to read for swaps and the consistency check', '16')
      .option('--swaps <n>', 'most distinct swaps to cycle through', '8')
      .option('--out <file>', 'write the raw figures as JSON'),
    async ({ connection, output, options: o }) => {
      const durationMs = parseDuration('--duration', o.duration as string);
      const concurrency = integerFlag('--concurrency', o.concurrency as string, 1, 10_000);
      const rate = Number(o.rate);
      if (!(rate >= 0))
        throw new UsageError(`--rate must be a number of calls a second, got "${String(o.rate)}"`);
      const mix = parseMix(o.mix as string);
      const weeks = integerFlag('--weeks', o.weeks as string, 2, 26);
      const swapLimit = integerFlag('--swaps', o.swaps as string, 1, 1000);

      const before = await snapshotSchedule(connection, weeks);
      const candidates =
        mix.execute > 0 ? await validCandidates(connection, swapCandidates(before), swapLimit) : [];
      output.note(
        `schedule read: ${before.schedules.size} faculty, ${weeks} weeks from ${before.firstWeek}; ` +
          `${candidates.length} valid swap(s) to execute and roll back`,
      );
      if (mix.execute > 0 && candidates.length === 0)
        output.note('no valid swap found: execute calls are replaced by validate calls');
      const cycle = new SwapCycle(connection, candidates);
      const next = operationPicker(connection, cycle, mix);

      // Ctrl-C stops new calls; the schedule is still restored and checked below.
      const interrupt = new AbortController();
      const onInterrupt = () => {
        output.note('interrupted: finishing the calls in flight, then rolling back and checking');
        interrupt.abort();
      };
      process.once('SIGINT', onInterrupt);
      let result: LoadResult;
      try {
        result = await runLoad(
          { durationMs, concurrency, rate, next, signal: interrupt.signal },
          (p) => output.note(progressLine(p)),
        );
      } finally {
        process.off('SIGINT', onInterrupt);
      }
      const unrestored = await cycle.restore();
      const after = await snapshotSchedule(connection, weeks, before.firstWeek);
      const differences = scheduleDifferences(before, after);
      const consistent = differences.length === 0 && unrestored.length === 0;
      const report = reportOf(
        result,
        { durationMs, concurrency, rate, mix },
        { consistent, differences, unrestored },
      );
      if (o.out) writeFileSync(o.out as string, `${JSON.stringify(report, null, 2)}\n`);
      printReport(output, result, report);
      return consistent && (result.overall.statuses.get('OK') ?? 0) > 0
        ? EXIT.ok
        : EXIT.loadCheckFailed;
    },
  );
}

function parseMix(text: string): Record<MixKind, number> {
  const mix: Record<MixKind, number> = { execute: 0, validate: 0, list: 0 };
  for (const part of text.split(',')) {
    const [kind, weight] = part.split('=').map((s) => s.trim());
    const value = Number(weight);
    if (!MIX_KINDS.includes(kind as MixKind) || !(value >= 0))
      throw new UsageError(
        `--mix takes ${MIX_KINDS.map((k) => `${k}=<weight>`).join(',')}; got "${part}"`,
      );
    mix[kind as MixKind] = value;
  }
  if (mix.execute + mix.validate + mix.list === 0) throw new UsageError('--mix: every weight is 0');
  return mix;
}

function operationPicker(
  connection: Connection,
  cycle: SwapCycle,
  mix: Record<MixKind, number>,
): () => Operation {
  const total = mix.execute + mix.validate + mix.list;
  const validate = (): Operation => {
    const candidate = cycle.anyCandidate();
    return {
      method: 'ValidateSwap',
      run: () =>
        candidate
          ? call(connection, connection.swaps.validateSwap.bind(connection.swaps), {
              ...candidate,
              reason: 'swapctl load',
              requestId: '',
            })
          : call(connection, connection.schedule.listFaculty.bind(connection.schedule), {
              weekFrom: '',
            }),
    };
  };
  const list = (): Operation => ({
    method: 'ListSwaps',
    run: () =>
      call(connection, connection.swaps.listSwaps.bind(connection.swaps), {
        facultyId: '',
        weekFrom: '',
        weekTo: '',
        status: 0,
        pageSize: 20,
        pageToken: '',
        view: 0,
      }),
  });
  return () => {
    const roll = Math.random() * total;
    if (roll < mix.execute) return cycle.nextMutation() ?? validate();
    if (roll < mix.execute + mix.validate) return validate();
    return list();
  };
}

function progressLine({ elapsedMs, overall }: LoadProgress): string {
  const errors = [...overall.statuses].filter(([s]) => s !== 'OK').map(([s, n]) => `${s}=${n}`);
  return (
    `${(elapsedMs / 1000).toFixed(1)}s  ${(overall.count / (elapsedMs / 1000)).toFixed(1)} calls/s  ` +
    `ok ${overall.statuses.get('OK') ?? 0}  errors ${errors.length ? errors.join(' ') : 0}  ` +
    `p50 ${overall.percentileMs(50).toFixed(1)} ms  p99 ${overall.percentileMs(99).toFixed(1)} ms`
  );
}

interface Check {
  consistent: boolean;
  differences: string[];
  unrestored: string[];
}

/** What `--out` writes: the settings, raw figures per method, and the consistency check. */
export type LoadReport = ReturnType<typeof reportOf>;

function reportOf(
  result: LoadResult,
  settings: { durationMs: number; concurrency: number; rate: number; mix: Record<MixKind, number> },
  check: Check,
) {
  return {
    settings: { ...settings, openLoop: settings.rate > 0 },
    elapsedMs: result.elapsedMs,
    calls: result.overall.count,
    throughputPerSecond: result.overall.count / (result.elapsedMs / 1000),
    queuedArrivals: result.queuedArrivals,
    overall: result.overall.toJSON(),
    byMethod: Object.fromEntries([...result.byMethod].map(([m, r]) => [m, r.toJSON()])),
    consistency: check,
  };
}

function printReport(
  output: Output,
  result: LoadResult,
  report: ReturnType<typeof reportOf>,
): void {
  const row = (name: string, r: LatencyRecorder) => [
    name,
    r.count,
    r.errors,
    ...PERCENTILES.map((p) => r.percentileMs(p).toFixed(2)),
    (r.histogram.maxValue / 1000).toFixed(2),
  ];
  output.result(report, () =>
    [
      `${report.calls} calls in ${(report.elapsedMs / 1000).toFixed(1)} s: ${report.throughputPerSecond.toFixed(1)} calls/s` +
        (report.settings.openLoop
          ? ` (open loop at ${report.settings.rate}/s; latency from each call's due time; ${report.queuedArrivals} arrivals waited for a slot)`
          : ' (closed loop)'),
      table(
        ['method', 'calls', 'errors', ...PERCENTILES.map((p) => `p${p} ms`), 'max ms'],
        [...[...result.byMethod].sort().map(([m, r]) => row(m, r)), row('all', result.overall)],
      ),
      `statuses: ${[...result.overall.statuses].map(([s, n]) => `${s}=${n}`).join(' ') || 'none'}`,
      'latency histogram (all calls):',
      result.overall.textHistogram(),
      report.consistency.consistent
        ? 'consistency check: PASSED (the schedule read through the API is the same as before the run)'
        : `consistency check: FAILED: ${report.consistency.differences.length} faculty week(s) differ` +
          `${report.consistency.differences.length ? ` (${report.consistency.differences.slice(0, 5).join(', ')})` : ''}` +
          `${report.consistency.unrestored.length ? `; not rolled back: ${report.consistency.unrestored.join(', ')}` : ''}`,
    ].join('\n'),
  );
}
